"""The ``ganinv`` command line: ``ganinv {sample,info,convert,invert,inpaint,train,eval,reproduce} ...``
(the ``eval`` commands live in :mod:`ganinv.cli_eval`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch

from .cli_eval import _device, add_eval_parser, finite_float, positive_int
from .devices import resolve_device

MAX_SAMPLES = 1024  # largest `ganinv sample -n` (one grid image) without --no-limit
MAX_COMPLETIONS = 256  # largest `ganinv inpaint -n` without --no-limit
MAX_EDIT_SIGMAS = 50.0  # largest |strength| of `--edit ATTRIBUTE=SIGMAS` (edits live within a few sigma)
BATCH = 32  # images generated per forward pass by `ganinv sample`


def check_count(n: int, limit: int, no_limit: bool) -> None:
    if n > limit and not no_limit:
        raise ValueError(f"-n {n} is above the limit of {limit} (memory and disk grow with it); "
                         "pass --no-limit to run it anyway")  # fmt: skip


def output_file(path: str | os.PathLike, option: str = "--out", example: str = "samples.png") -> Path:
    """A file to write later: refused now, before any work, if it is a folder or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder: give a file name such as {path / example}")
    if not path.suffix:
        raise ValueError(
            f"{option} {path}: give a file extension ({Path(example).suffix}, ...) to choose the format"
        )
    writable_location(path.parent, path, option)
    return path


def output_dir(path: str | os.PathLike) -> Path:
    """A folder to write into later: refused now, before any work, if it is a file or cannot be written
    (it is created by the first file written into it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder: choose a folder name")
    writable_location(path, path, "--out")
    return path


def writable_location(folder: Path, out: Path, option: str) -> None:
    """The nearest existing folder of ``folder`` must be writable (``option out``: what the user gave)."""
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{option} {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(13, "cannot write there (permission denied)", str(probe))


def cmd_sample(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .checkpoints import load_generator
    from .data.images import save_image

    check_count(args.n, MAX_SAMPLES, args.no_limit)
    out = output_file(args.out)
    device = _device(args.device)
    G = load_generator(args.checkpoint, device=device)
    z = torch.randn(args.n, G.style_dim, generator=torch.Generator().manual_seed(args.seed))  # [n, D]
    batches = tqdm(z.split(BATCH), desc="sample", unit="batch", disable=args.n <= BATCH, file=sys.stderr)
    with torch.no_grad():
        images = torch.cat([
            G(zb.to(device), truncation=args.truncation, noise_mode=args.noise_mode).cpu() for zb in batches
        ])  # fmt: skip
    save_image(images, out, nrow=args.nrow)
    print(f"wrote {args.n} samples of {args.checkpoint} to {out}")


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


def cmd_half(args: argparse.Namespace) -> None:
    from .checkpoints import half_copy

    ckpt = half_copy(args.checkpoint, args.out)
    step = f", step {ckpt['step']:,}" if isinstance(ckpt.get("step"), int) else ""
    print(f"wrote {args.out}: {ckpt['kind']}{step}, fp16 weights")


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
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder: choose a folder name for the output")
    G = load_generator(args.checkpoint)  # before the folder exists: a bad checkpoint leaves nothing behind
    try:
        D = load_discriminator(args.checkpoint)
    except CheckpointError:
        D = None
    created = not out.exists()
    try:
        output_dir(out)
        save_generator(out / "generator.pt", G, half=args.half, **provenance("generator"))
        if D is not None:
            save_discriminator(out / "discriminator.pt", D, half=args.half, **provenance("discriminator"))
    except BaseException:
        if created:  # a failed convert leaves no half-filled folder
            shutil.rmtree(out, ignore_errors=True)
        raise
    written = ["generator.pt"] + (["discriminator.pt"] if D is not None else [])
    print(f"wrote {', '.join(written)} to {out}")


def cmd_align(args: argparse.Namespace) -> None:
    from .data.align import MIN_SCORE, LandmarkDetector, align_face, detect_faces
    from .data.images import open_rgb, pil_to_tensor, save_image

    out = output_dir(args.out)
    detector = LandmarkDetector()  # AlignError naming the packages to install when they are missing
    written = []
    for path in map(Path, args.photos):
        photo = open_rgb(path, str(path))
        try:
            faces = detect_faces(photo, detector)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if not faces:
            raise ValueError(f"{path}: no face found (0 detections with a score >= {MIN_SCORE}); "
                             "try a larger or sharper photo")  # fmt: skip
        faces = sorted(faces, key=lambda f: -f.area)[: 1 if args.largest else None]
        for i, face in enumerate(faces):
            name = path.stem if len(faces) == 1 else f"{path.stem}_{i:02d}"
            aligned = align_face(photo, args.size, landmarks=face.landmarks)
            written.append(save_image(pil_to_tensor(aligned), out / f"{name}.png"))
        if len(faces) > 1:
            print(f"{path}: {len(faces)} faces, aligned each (--largest keeps one)", file=sys.stderr)
    print(f"wrote {len(written)} aligned {args.size}x{args.size} faces to {out}")


def aligned_copies(paths: list[str], size: int, folder: Path) -> list[str]:
    """``--align``: the largest face of each photo, FFHQ-aligned at ``size``, saved in ``folder``."""
    from .data.align import LandmarkDetector, align_largest
    from .data.images import open_rgb, pil_to_tensor, save_image

    detector, copies = LandmarkDetector(), []
    for path in map(Path, paths):
        try:
            aligned, note = align_largest(open_rgb(path, str(path)), size, detector)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if note:
            print(f"{path}: {note}", file=sys.stderr)
        copies.append(str(save_image(pil_to_tensor(aligned), folder / f"{path.stem}.png")))
    return copies


def cmd_invert(args: argparse.Namespace) -> None:
    from .inversion import invert_files

    hyper = {k: getattr(args, k) for k in ("steps", "lr", "seed") if getattr(args, k) is not None}
    if args.method.startswith("optim"):
        from .inversion import default_loss

        hyper["loss"] = default_loss(args.perceptual, _device(args.device))
    elif hyper:
        sys.exit(f"ganinv invert: error: --steps / --lr / --seed apply to optim-* methods, not {args.method}")
    output_dir(args.out)
    encoder = args.encoder
    if args.latent_avg or args.image_avg:  # a released CLCAE file carries neither average
        from .official_checkpoints import load_encoder

        released = encoder or args.generator
        encoder = load_encoder(
            released, _device(args.device), latent_avg=args.latent_avg, image_avg=args.image_avg
        )
    images = args.images
    if args.align:  # the generator's size: load it once here for that
        from .checkpoints import load_generator

        images = aligned_copies(images, load_generator(args.generator).size, Path(args.out) / "aligned")
    written = invert_files(
        images, args.out, args.method, args.generator, encoder, _device(args.device),
        batch_size=args.batch_size, log=lambda m: print(m, file=sys.stderr), noise_mode=args.noise_mode,
        **hyper,
    )  # fmt: skip
    print(f"wrote {len(written)} files (reconstruction .png and latent .pt per image) to {args.out}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field (default: the preset's value), documented by the
    field's comment in the config class."""
    from .training.loop import field_docs

    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        text = docs.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        if f.type in (bool, "bool"):
            parser.add_argument(flag, type=_parse_bool, default=None, metavar="BOOL", help=text)
        else:
            kind = {"int": int, "float": finite_float, "str": str}.get(str(f.type), f.type)
            parser.add_argument(flag, type=kind, default=None, help=text)


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


def cmd_train_encoder(args: argparse.Namespace) -> None:
    from .training import encoders

    if args.kind not in (None, args.encoder_kind):
        sys.exit(f"ganinv train {args.encoder_kind}: error: --kind {args.kind} contradicts the subcommand")
    overrides = {**config_overrides(args, encoders.EncoderTrainConfig), "kind": args.encoder_kind}
    cfg = encoders.preset(args.preset, **overrides)
    result = encoders.train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        export = Path(cfg.out_dir) / encoders.EXPORT_FILES[cfg.kind]
        print(f"trained {cfg.kind} to step {result['step']}; encoder in {export}")


def _generator_and_output(args: argparse.Namespace, file: str) -> tuple:
    """The fitting commands' start: (G in eval mode on ``--device``, the output path: ``--out``, or for a
    bundled ``--generator`` data/pretrained/<name>/``file``)."""
    from .checkpoints import bundled_name, load_generator, pretrained_dir

    name = bundled_name(args.generator)
    if args.out is None and name is None:
        raise ValueError(f"--out is required when --generator is a path (a bundled name defaults to "
                         f"data/pretrained/<name>/{file})")  # fmt: skip
    out = Path(args.out) if args.out is not None else pretrained_dir() / name / file
    return load_generator(args.generator, device=_device(args.device)).eval(), out


def cmd_train_directions(args: argparse.Namespace) -> None:
    from .editing import save_directions, sfn_reader
    from .eval.editing import fit_directions
    from .models.sfn import load_sfn

    G, out = _generator_and_output(args, "directions.pt")
    device = G.w_avg.device
    if args.layers is not None and not 0 <= args.layers[0] < args.layers[1] <= G.n_latent:
        raise ValueError(f"--layers must satisfy 0 <= START < END <= {G.n_latent}, got {args.layers}")
    reader = sfn_reader(load_sfn(args.sfn, device))
    dirs = fit_directions(
        G, reader, n=args.n, components=args.components, seed=args.seed, pca_n=args.pca_n,
        ambiguous=args.ambiguous, layers=tuple(args.layers) if args.layers else None,
        generator=str(args.generator),
    )  # fmt: skip
    save_directions(out, dirs, generator=str(args.generator), generator_config=G.config)
    print(f"wrote {len(dirs)} directions ({', '.join(dirs)}) to {out}")


def cmd_train_nonlinear(args: argparse.Namespace) -> None:
    from .editing import sfn_reader
    from .models.sfn import load_sfn
    from .nonlinear_editing import ClassifierConfig, nonlinear_directions, save_nonlinear

    G, out = _generator_and_output(args, "nonlinear.pt")
    device = G.w_avg.device
    cfg = ClassifierConfig(hidden=args.hidden, epochs=args.epochs, seed=args.seed)
    reader = sfn_reader(load_sfn(args.sfn, device))
    dirs = nonlinear_directions(G, reader, n=args.n, cfg=cfg, generator=str(args.generator), progress=True,
                                log=print)  # fmt: skip
    save_nonlinear(out, dirs)
    print(f"wrote non-linear directions ({', '.join(dirs)}) to {out}")


def cmd_train_inpaint(args: argparse.Namespace) -> None:
    from .training import inpainting

    cfg = inpainting.preset(args.preset, **config_overrides(args, inpainting.InpaintTrainConfig))
    result = inpainting.train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained stage {cfg.stage} to step {result['step']}; model in {cfg.out_dir}/inpainter.pt")


def parse_edit(spec: str) -> tuple[str, float]:
    """``ATTRIBUTE=SIGMAS`` (the ``--edit`` option of ``ganinv inpaint``) -> (name, strength in sigmas)."""
    name, sep, value = spec.partition("=")
    try:
        strength = float(value)
    except ValueError:
        strength = math.nan
    if not (sep and name and math.isfinite(strength)):
        raise ValueError(f"--edit {spec!r}: expected ATTRIBUTE=SIGMAS, e.g. smiling=6")
    if abs(strength) > MAX_EDIT_SIGMAS:
        raise ValueError(f"--edit {spec!r}: {strength:g} sigma leaves the generator's range; "
                         f"use at most {MAX_EDIT_SIGMAS:g} (edits work within a few sigma)")  # fmt: skip
    return name, strength


def cmd_inpaint(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .checkpoints import load_generator
    from .data.images import load_image, save_image
    from .data.masks import load_mask
    from .editing import apply_edit, load_directions
    from .models.inpainting import load_inpainter, stack_samples
    from .viz import outline

    check_count(args.n, MAX_COMPLETIONS, args.no_limit)
    edit = parse_edit(args.edit) if args.edit else None
    out = output_dir(args.out)
    device = _device(args.device)
    G = load_generator(args.generator, device=device) if args.generator else None
    model = load_inpainter(args.model, G=G, device=device)
    directions = None
    if edit is not None:  # the generator's directions, unless --directions names others
        ref = args.directions or args.generator or model.generator_ref
        if ref is None:
            raise ValueError(f"--edit: {args.model} records no generator; pass --directions")
        if args.nonlinear is not None:  # the attribute classifiers' gradient walk (ganinv.nonlinear_editing)
            from .nonlinear_editing import load_nonlinear

            directions = load_nonlinear(args.nonlinear or ref, model.G)
        else:
            directions = load_directions(ref, model.G)
        if edit[0] not in directions:
            raise ValueError(f"--edit: no direction {edit[0]!r}; this file has {sorted(directions)}")
    size = model.cfg.size
    image = aligned_copies([args.image], size, out)[0] if args.align else args.image  # out/<stem>.png
    x = load_image(image, size=size)[None].to(device)  # [1, 3, S, S]
    mask = load_mask(args.mask, size=size)[None].to(device)  # [1, 1, S, S]
    if bool(mask.min() == 1):
        raise ValueError(f"--mask {args.mask} has no hole (every pixel white = keep): nothing to inpaint; "
                         "paint the holes black")  # fmt: skip
    if bool(mask.max() == 0):
        warnings.warn(
            f"--mask {args.mask} is all hole (black): the completions ignore the image", stacklevel=1
        )
    # --paste: the known pixels onto every result (edits too), seamlessly unless "hard"
    known = (x, mask, args.paste == "seamless") if args.paste != "none" else ()
    d = directions[edit[0]] if directions is not None else None  # the --edit direction
    save_image((x * mask)[0].cpu(), out / "erased.png")
    results, edited = [], []  # [3, S, S] each, on the CPU: the grids
    outputs = model.iter_outputs(x, mask, n=args.n, seed=args.seed, stage=args.stage)
    for i, o in enumerate(tqdm(outputs, total=args.n, desc="inpaint", disable=args.n <= 8, file=sys.stderr)):
        y = stack_samples([o.image], *known)[0, 0].clamp(-1, 1).cpu()  # [3, S, S]
        save_image(y, out / f"result_{i:02d}.png")
        results.append(y)
        if directions is not None:
            with torch.no_grad():  # pasted, the edit shows in the holes only
                e = stack_samples([apply_edit(model.G, o, d, edit[1] * d.std)["image"]], *known)[0, 0]
            edited.append(e.clamp(-1, 1).cpu())

    def grid(images: list[torch.Tensor]) -> torch.Tensor:
        g = torch.stack(images)  # [n, 3, S, S]
        return outline(g, mask.cpu()) if args.outline else g

    save_image(grid(results), out / "grid.png", nrow=min(args.n, 8))
    what = f"grid.png, result_*.png ({'raw' if args.paste == 'none' else args.paste + ' paste'}), erased.png"
    if edited:
        save_image(grid(edited), out / "edited_grid.png", nrow=min(args.n, 8))
        how = ", non-linear" if args.nonlinear is not None else ""
        what += f", edited_grid.png ({edit[0]} {edit[1]:+g} sigma{how})"
    print(f"wrote {args.n} completions of {args.image} to {out} ({what})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ganinv", description="StyleGAN2 inversion, editing and inpainting."
    )
    debug_help = "show the traceback of an error (anywhere on the line; or GANINV_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a grid of generated images")
    p.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path (.pt / NVIDIA .pkl)")
    p.add_argument(
        "-n", type=positive_int, default=16, help=f"samples (at most {MAX_SAMPLES} unless --no-limit)"
    )
    p.add_argument("--no-limit", action="store_true", help=f"allow -n above {MAX_SAMPLES}")
    p.add_argument("--nrow", type=positive_int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=finite_float, default=1.0)
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

    p = sub.add_parser(
        "half", help="copy a ganinv checkpoint of any kind with fp16 weights (the bundled files)"
    )
    p.add_argument("checkpoint", help="a ganinv .pt file, e.g. runs/clcae/snapshots/step_012000/clcae.pt")
    p.add_argument("out", help="the fp16 copy (.pt); metadata, config and step are kept")
    p.set_defaults(fn=cmd_half)

    from .inversion import METHODS

    p = sub.add_parser("align", help="FFHQ-align the faces of photos (dlib landmarks; the [faces] extra)")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files (any size)")
    p.add_argument("--out", required=True, help="output folder: <photo>.png, or <photo>_NN.png per face")
    p.add_argument("--size", type=positive_int, default=1024, help="side of the aligned squares (FFHQ: 1024)")
    p.add_argument("--largest", action="store_true", help="only the largest face of each photo")
    p.set_defaults(fn=cmd_align)

    p = sub.add_parser("invert", help="invert images: reconstruction PNG and latent .pt per image")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="square image files (resized to fit)")
    methods = "; ".join(f"{k}: {v}" for k, v in METHODS.items())
    p.add_argument("--method", default="clcae-f", choices=list(METHODS), help=methods)
    p.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    p.add_argument("--encoder", default=None, help="encoder name or path (default: the generator's name)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--steps", type=positive_int, default=None, help="optimisation steps (optim-*; default 1000)"
    )
    p.add_argument("--lr", type=finite_float, default=None, help="peak learning rate (optim-*; default 0.1)")
    p.add_argument("--seed", type=int, default=None, help="seed of the latent noise (optim-*)")
    p.add_argument("--perceptual", default="sfn", choices=["sfn", "alex", "vgg"], help="optim-* loss term")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    p.add_argument("--align", action="store_true", help="FFHQ-align each photo first (largest face)")
    p.add_argument(
        "--latent-avg", default=None, help="released CLCAE: the StyleGAN2 file whose w_avg it used"
    )
    p.add_argument("--image-avg", default=None, help="released CLCAE: its average image (default: G(w_avg))")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--device", default="auto")
    p.set_defaults(fn=cmd_invert)

    from .models.inpainting import PASTE_MODES

    p = sub.add_parser("inpaint", help="diverse completions of an image with holes (white = keep in MASK)")
    p.add_argument("image", metavar="IMAGE", help="square image file (resized to the model's size)")
    p.add_argument("--mask", required=True, help="mask image: white = keep, black = hole")
    p.add_argument(
        "-n", type=positive_int, default=8, help=f"completions (at most {MAX_COMPLETIONS} unless --no-limit)"
    )
    p.add_argument("--no-limit", action="store_true", help=f"allow -n above {MAX_COMPLETIONS}")
    p.add_argument("--out", required=True, help="output folder: grid.png, result_XX.png, erased.png")
    p.add_argument("--model", default="synthfaces64", help="bundled name or path of an inpainter.pt")
    p.add_argument("--generator", default=None, help="default: the generator the model was trained with")
    p.add_argument("--seed", type=int, default=0, help="seed of the random latents (one per completion)")
    p.add_argument("--stage", type=int, default=2, choices=[1, 2], help="2 adds the skip features")
    align_help = "FFHQ-align the photo first (written as OUT/<image>.png; MASK is for that crop)"
    p.add_argument("--align", action="store_true", help=align_help)
    p.add_argument(
        "--paste",
        nargs="?",
        const="seamless",
        default="seamless",
        choices=PASTE_MODES,
        help="how the known pixels go onto the results (and the edited ones): 'seamless' (default: Poisson "
        "paste, no colour step at the hole border), 'hard' (plain copy) or 'none' (raw generator outputs)",
    )
    p.add_argument("--outline", action="store_true", help="draw the hole border (yellow) on the grids")
    p.add_argument(
        "--edit",
        default=None,
        metavar="ATTRIBUTE=SIGMAS",
        help="also write edited_grid.png: each completion edited along a direction (smiling=6)",
    )
    p.add_argument("--directions", default=None, help="directions.pt for --edit (default: the generator's)")
    p.add_argument("--nonlinear", nargs="?", const="", default=None, metavar="NONLINEAR_PT",
                   help="--edit with the non-linear edit (attribute classifiers on W; default file: the "
                   "generator's nonlinear.pt) instead of the InterFaceGAN direction")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.set_defaults(fn=cmd_inpaint)

    p = sub.add_parser("train", help="train a model (see `ganinv train gan --help`)")
    train_sub = p.add_subparsers(dest="model", required=True)
    from .training.gan import PRESETS, GANConfig

    t = train_sub.add_parser(
        "gan", help="train StyleGAN2 (torchrun --nproc_per_node=N for several processes)"
    )
    t.add_argument("--preset", default="synthfaces64", choices=sorted(PRESETS))
    add_config_arguments(t, GANConfig)
    t.set_defaults(fn=cmd_train_gan)

    from .training.sfn import PRESETS as SFN_PRESETS
    from .training.sfn import SFNTrainConfig

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

    from .training.encoders import PRESETS as ENCODER_PRESETS
    from .training.encoders import EncoderTrainConfig

    for kind, what in (("clcae", "CLCAE stage 2 (cross-attention W+ / F encoder)"),
                       ("psp", "the pSp baseline encoder"), ("e4e", "the e4e baseline encoder")):  # fmt: skip
        t = train_sub.add_parser(kind, help=f"train {what}; export in OUT_DIR/{kind}*.pt")
        t.add_argument("--preset", default="synthfaces64", choices=sorted(ENCODER_PRESETS))
        add_config_arguments(t, EncoderTrainConfig)
        t.set_defaults(fn=cmd_train_encoder, encoder_kind=kind)

    from .training.inpainting import PRESETS as INPAINT_PRESETS
    from .training.inpainting import InpaintTrainConfig

    t = train_sub.add_parser("inpaint", help="train the diverse inpainter (stage 1, or --stage 2 --init)")
    t.add_argument("--preset", default="synthfaces64", choices=sorted(INPAINT_PRESETS))
    add_config_arguments(t, InpaintTrainConfig)
    t.set_defaults(fn=cmd_train_inpaint)

    t = train_sub.add_parser(
        "directions", help="InterFaceGAN directions of the SFN attributes + GANSpace PCs (directions.pt)"
    )
    t.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    t.add_argument("--sfn", default="sfn", help="SFN whose binary attributes label the samples")
    t.add_argument("--n", "-n", type=positive_int, default=4000, help="labelled samples for InterFaceGAN")
    t.add_argument("--components", type=positive_int, default=10, help="GANSpace principal components")
    t.add_argument("--pca-n", type=positive_int, default=10000, help="sampled w for the PCA")
    t.add_argument(
        "--ambiguous", type=finite_float, default=0.2, help="drop samples with |P - 0.5| below this"
    )
    t.add_argument("--layers", type=int, nargs=2, default=None, metavar=("START", "END"),
                   help="w+ layers [START, END) of the GANSpace edits (default: all)")  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="default: data/pretrained/<generator>/directions.pt")
    t.add_argument("--device", default="auto")
    t.set_defaults(fn=cmd_train_directions)

    t = train_sub.add_parser(
        "nonlinear",
        help="attribute classifiers on W for non-linear edits of the SFN attributes (nonlinear.pt)",
    )
    t.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    t.add_argument("--sfn", default="sfn", help="SFN whose binary attributes label the samples")
    t.add_argument("--n", "-n", type=positive_int, default=12000, help="labelled samples")
    t.add_argument("--hidden", type=positive_int, default=128, help="width of the MLPs' hidden layers")
    t.add_argument("--epochs", type=positive_int, default=40)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="default: data/pretrained/<generator>/nonlinear.pt")
    t.add_argument("--device", default="auto")
    t.set_defaults(fn=cmd_train_nonlinear)

    add_eval_parser(sub)

    p = sub.add_parser("reproduce", help="execute every notebook and regenerate figures/ (make reproduce)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=lambda a: __import__("ganinv.reproduce", fromlist=["main"]).main(a.rest))

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("GANINV_DEBUG", "") not in ("", "0")
    args = parser.parse_args([a for a in argv if a != "--debug"])  # --debug may stand anywhere
    command = f"{args.command} {args.model}" if args.command in ("train", "eval") else args.command
    warnings.showwarning = _one_line_warning(command)
    try:
        if getattr(args, "device", None) is not None:  # checked before any work starts
            args.device = str(resolve_device(args.device))
        for option, example in (("json", "results.json"), ("figure", "figure.png")):  # eval outputs
            if getattr(args, option, None):
                output_file(getattr(args, option), f"--{option}", example)
        if command in ("train directions", "train nonlinear") and args.out is not None:
            output_file(args.out, "--out", f"{args.model}.pt")
        args.fn(args)
    except KeyboardInterrupt:
        sys.exit(f"ganinv {command}: interrupted")
    except Exception as e:  # one line per error; the traceback with --debug or GANINV_DEBUG=1
        if debug:
            raise
        sys.exit(f"ganinv {command}: error: {describe_error(e)}")


def describe_error(e: Exception) -> str:
    """One line for an exception: the message of the project's own errors, the path and reason of an OS
    error, and the exception's type with a pointer to ``--debug`` for anything unexpected."""
    from .checkpoints import CheckpointError

    if isinstance(e, OSError) and e.filename:  # e.g. a read-only or full output location
        name = e.filename2 or e.filename  # a failed rename: the destination, not the temporary file
        return f"{name}: {(e.strerror or type(e).__name__).lower()}"
    if isinstance(e, MemoryError | torch.OutOfMemoryError):
        return "out of memory: lower -n or --batch-size, or use a smaller model"
    if isinstance(e, CheckpointError | ValueError | OSError):
        return str(e)
    return f"{type(e).__name__}: {e} (unexpected: run again with --debug for the traceback and report it)"


def _one_line_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"ganinv {command}: warning: {message}", file=sys.stderr)

    return show


if __name__ == "__main__":
    main()
