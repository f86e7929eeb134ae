"""The ``ganinv`` command line: ``ganinv {sample,info,convert,reproduce} ...``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def cmd_sample(args: argparse.Namespace) -> None:
    from .checkpoints import load_generator
    from .data.images import save_image

    device = _device(args.device)
    G = load_generator(args.checkpoint, device=device)
    z = torch.randn(args.n, G.style_dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
    with torch.no_grad():
        images = G(z, truncation=args.truncation, noise_mode=args.noise_mode)
    save_image(images.cpu(), args.out, nrow=args.nrow)
    print(f"wrote {args.n} samples of {args.checkpoint} to {args.out}")


def cmd_info(args: argparse.Namespace) -> None:
    from .checkpoints import CheckpointError, load_discriminator, load_generator

    G = load_generator(args.checkpoint)
    n_params = sum(p.numel() for p in G.parameters())
    print(f"generator: {G.config}  ({n_params:,} parameters, n_latent {G.n_latent})")
    has_avg = not torch.isnan(G.w_avg).any()
    print(f"w_avg: {'stored in the checkpoint' if has_avg else 'not stored (computed on demand)'}")
    try:
        D = load_discriminator(args.checkpoint)
        print(f"discriminator: {D.config}  ({sum(p.numel() for p in D.parameters()):,} parameters)")
    except CheckpointError as e:
        print(f"discriminator: none ({str(e).splitlines()[0]})")


def cmd_convert(args: argparse.Namespace) -> None:
    from .checkpoints import (
        CheckpointError,
        load_checkpoint,
        load_discriminator,
        load_generator,
        resolve_checkpoint,
        save_discriminator,
        save_generator,
    )

    def provenance(kind: str) -> dict:
        """Training step and images seen, carried over from a ganinv checkpoint (other formats have none)."""
        try:
            ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint, kind), kind)
        except CheckpointError:
            return {}
        return {k: ckpt[k] for k in ("step", "images_seen") if k in ckpt}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator(args.checkpoint)
    save_generator(out / "generator.pt", G, half=args.half, **provenance("generator"))
    written = ["generator.pt"]
    try:
        D = load_discriminator(args.checkpoint)
        save_discriminator(out / "discriminator.pt", D, half=args.half, **provenance("discriminator"))
        written.append("discriminator.pt")
    except CheckpointError:
        pass
    print(f"wrote {', '.join(written)} to {out}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field (default: the preset's value)."""
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, type=_parse_bool, default=None, metavar="BOOL")
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), f.type)
            parser.add_argument(flag, type=kind, default=None)


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def config_overrides(args: argparse.Namespace, cls: type) -> dict:
    return {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None
    }


def cmd_train_gan(args: argparse.Namespace) -> None:
    from .training import gan

    cfg = gan.preset(args.preset, **config_overrides(args, gan.GANConfig))
    result = gan.train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"trained to step {result['step']}; G_ema and D in {cfg.out_dir}/generator.pt, discriminator.pt"
        )


def cmd_train_sfn(args: argparse.Namespace) -> None:
    from .training import sfn

    cfg = sfn.preset(args.preset, **config_overrides(args, sfn.SFNTrainConfig))
    result = sfn.train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result['step']}; SFN in {cfg.out_dir}/sfn.pt")


def cmd_train_contrastive(args: argparse.Namespace) -> None:
    from .training import contrastive

    cfg = contrastive.preset(args.preset, **config_overrides(args, contrastive.ContrastiveConfig))
    result = contrastive.train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result['step']}; encoders in {cfg.out_dir}/contrastive.pt")


def cmd_eval_contrastive(args: argparse.Namespace) -> None:
    import json

    from .checkpoints import load_checkpoint
    from .models.contrastive import load_contrastive
    from .training.contrastive import build_generator, evaluate_retrieval, write_json

    device = _device(args.device)
    model = load_contrastive(args.checkpoint, device=device)
    generator = args.generator or load_checkpoint(args.checkpoint, "contrastive").get("generator", "")
    G = build_generator(generator).to(device)
    result = evaluate_retrieval(model, G, n=args.n, seed=args.seed, truncation=args.truncation)
    result["generator"] = str(generator)
    if args.json:
        write_json(result, args.json)
    print(json.dumps(result, indent=2))


def cmd_eval_sfn(args: argparse.Namespace) -> None:
    import json

    from .models.sfn import load_sfn
    from .training.sfn import evaluate

    model = load_sfn(args.checkpoint, device=_device(args.device))
    result = evaluate(model, n=args.n, seed=args.seed, json_path=args.json)
    print(json.dumps(result, indent=2))


def cmd_eval_gan(args: argparse.Namespace) -> None:
    import json

    from .checkpoints import load_generator
    from .data.images import save_image
    from .models.sfn import load_sfn
    from .training.gan_eval import evaluate_gan, generate

    device = _device(args.device)
    G = load_generator(args.checkpoint, device=device)
    result = evaluate_gan(G, load_sfn(args.sfn, device=device), n=args.n, seed=args.seed)
    result["checkpoint"] = str(args.checkpoint)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    if args.grid:
        save_image(generate(G, 32, args.seed), args.grid, nrow=8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ganinv", description="StyleGAN2 inversion, editing and inpainting."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a grid of generated images")
    p.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path (.pt / NVIDIA .pkl)")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--nrow", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="samples.png")
    p.set_defaults(fn=cmd_sample)

    p = sub.add_parser("info", help="describe a checkpoint (any supported format)")
    p.add_argument("checkpoint")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("convert", help="convert rosinality / NVIDIA checkpoints to the ganinv format")
    p.add_argument("checkpoint")
    p.add_argument("out", help="output folder (generator.pt, discriminator.pt)")
    p.add_argument("--half", action="store_true", help="store fp16 weights")
    p.set_defaults(fn=cmd_convert)

    p = sub.add_parser("train", help="train a model (see `ganinv train gan --help`)")
    train_sub = p.add_subparsers(dest="model", required=True)
    from .training.gan import PRESETS, GANConfig

    t = train_sub.add_parser(
        "gan", help="train StyleGAN2 (torchrun --nproc_per_node=N for several processes)"
    )
    t.add_argument("--preset", default="synthfaces64", choices=sorted(PRESETS))
    add_config_arguments(t, GANConfig)
    t.set_defaults(fn=cmd_train_gan)

    from .training.sfn import EVAL_SEED, SFNTrainConfig
    from .training.sfn import PRESETS as SFN_PRESETS

    t = train_sub.add_parser("sfn", help="train SFN, the SynthFaces feature network")
    t.add_argument("--preset", default="sfn64", choices=sorted(SFN_PRESETS))
    add_config_arguments(t, SFNTrainConfig)
    t.set_defaults(fn=cmd_train_sfn)

    from .training.contrastive import PRESETS as CONTRASTIVE_PRESETS
    from .training.contrastive import ContrastiveConfig

    t = train_sub.add_parser("contrastive", help="train CLCAE stage 1 (image / w contrastive alignment)")
    t.add_argument("--preset", default="synthfaces64", choices=sorted(CONTRASTIVE_PRESETS))
    add_config_arguments(t, ContrastiveConfig)
    t.set_defaults(fn=cmd_train_contrastive)

    p = sub.add_parser("eval", help="evaluate a model on held-out data (see `ganinv eval sfn --help`)")
    eval_sub = p.add_subparsers(dest="model", required=True)
    e = eval_sub.add_parser("sfn", help="held-out attribute accuracy / R^2 and identity retrieval of SFN")
    e.add_argument("--checkpoint", default="sfn", help="bundled name or path of an sfn.pt")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("-n", type=int, default=2000, help="held-out faces")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out SynthFaces seed")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_sfn)
    from .training.contrastive import EVAL_SEED as CONTRASTIVE_EVAL_SEED

    e = eval_sub.add_parser("contrastive", help="held-out image <-> w retrieval of CLCAE stage 1")
    e.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path of a contrastive.pt")
    e.add_argument(
        "--generator", default=None, help="generator of the pairs (default: the one it was trained on)"
    )
    e.add_argument("-n", type=int, default=1000, help="held-out pairs")
    e.add_argument("--seed", type=int, default=CONTRASTIVE_EVAL_SEED, help="held-out seed")
    e.add_argument("--truncation", type=float, default=1.0)
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_contrastive)
    e = eval_sub.add_parser("gan", help="FID-SFN vs SynthFaces, blurred-data scale, attribute frequencies")
    e.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path of a generator")
    e.add_argument("--sfn", default="sfn", help="bundled name or path of the SFN used for the metrics")
    e.add_argument("-n", type=int, default=5000, help="images per set")
    e.add_argument("--seed", type=int, default=0, help="seed of the generated z")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--grid", default=None, help="also write a grid of 32 samples to this PNG")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_gan)

    p = sub.add_parser("reproduce", help="execute every notebook and regenerate figures/ (make reproduce)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=lambda a: __import__("ganinv.reproduce", fromlist=["main"]).main(a.rest))

    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except Exception as e:  # clear one-line errors for the known failure kinds
        from .checkpoints import CheckpointError

        if isinstance(e, CheckpointError | ValueError | FileNotFoundError):
            sys.exit(f"ganinv {args.command}: error: {e}")
        raise


if __name__ == "__main__":
    main()
