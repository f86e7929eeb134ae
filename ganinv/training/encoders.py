"""Training of the stage-2 inversion encoders on one loop: CLCAE (Sec. 3.2-3.3 of Liu et al., CVPR 2023;
``docs/papers/clcae.md`` §2, §3, §5-§7) and its pSp and e4e baselines (``kind``); their held-out evaluation,
run at the end of a run, is :func:`ganinv.eval.encoder.evaluate_encoder`.

**Data** (a pure function of the step, so a resumed run sees the batches of an uninterrupted one): a batch of
``batch_size`` holds first ``round(generated_fraction * batch_size)`` generated images G(w), whose z and noise
are seeded by ``(GEN_STREAM, data_seed, step * world + rank)`` (:func:`ganinv.data.pairs.make_pairs`; their
w is known), then real images: SynthFaces of ``data_seed`` in index order, or an image folder, as the GAN
trainer's :class:`~.gan.RealImages`, flipped horizontally with p = 0.5 when ``flip`` (real images only, so the
known w of the generated ones stays valid). Mixing synthetic and real images in every batch follows FS, on
which the release builds (docs/papers/clcae.md §3). Evaluation uses SynthFaces of ``EVAL_SEED`` or the
held-out pair stream (:func:`ganinv.data.pairs.held_out_pairs`): never training data.

**Objectives**, all at the encoder size S (G's outputs average-pooled to S, the release's ``face_pool``):

* ``clcae``: sum over I in {G(w), G(w+), G(w+, f)} of L_rec(I, x) = λ_2 MSE + λ_LPIPS LPIPS-SFN + λ_ID
  (1 - ID-SFN) (:class:`~ganinv.losses.ReconstructionLoss`), plus λ_freg MSE(f, sg(G^f_res(w+))) and
  λ_align L_align(G(w), w) with the frozen stage-1 model (on G(w) as the release's code; the paper aligns the
  input, quirk 4). f enters G blended by s = ``f_blend_at(step, f_ramp_steps)``: the release restarts the
  ramp every epoch (quirk 7); an endless stream has no epochs, so s ramps once unless ``f_ramp_restart``.
  The F target is G's own feature under w+ with the same noise, read off the G(w+) pass (quirk 8).
* ``psp``: L_rec(G(w+), x).  ``e4e``: plus λ_delta L_d-reg, with the progressive stage
  ``stage_for_step(step, e4e_stage_every)``; e4e's latent discriminator is omitted.
* ``lambda_latent`` (0 by default; analysis only, no real-image method could use it): MSE between the
  predicted codes and the known w of the generated images.

Training reconstructions use random per-layer noise (one draw per step, seeded like the data and shared by
the three outputs and the F target), evaluation constant noise, as the release. **Optimiser**: Adam on the
encoder only, lr 1e-4 as the release (which uses Ranger with ReduceLROnPlateau; we keep the rate constant,
so a resumed run with a larger ``total_steps`` continues exactly). G, SFN and the stage-1 model are frozen.
**Initialisation** (quirk 9, chosen explicitly): ``backbone_init="contrastive"`` copies the stage-1 image
backbone into CLCAE (the paper's intent; the release's loader silently skips it); the w head stays zero, so
w starts at w_avg. ``"random"`` is what the release effectively does. pSp / e4e always start at random.

CLI: ``ganinv train clcae|psp|e4e --preset synthfaces64|tiny [--field value ...]`` (one option per config
field, e.g. ``--attention multi``, ``--use-align false``); ``ganinv eval encoder --checkpoint FILE``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import torch
from torch import nn

from ..checkpoints import CheckpointError, load_checkpoint
from ..common import EVAL_SEED, write_json
from ..data.images import pool_to
from ..data.pairs import make_pairs, pair_seed
from ..eval.encoder import evaluate_encoder
from ..losses import LossWeights, ReconstructionLoss, feature_regulariser
from ..models.clcae import (
    ATTENTION_MODES,
    CLCAE,
    CLCAEConfig,
    CLCAEOutput,
    f_blend_at,
    load_clcae,
    save_clcae,
)
from ..models.contrastive import ContrastiveAligner, alignment_loss, load_contrastive
from ..models.encoders import E4EEncoder, PSPEncoder, WPlusEncoderConfig, load_encoder, save_encoder
from ..models.sfn import load_sfn
from ..models.stylegan2 import Generator
from .contrastive import (
    TINY_RANDOM,
    _average_buffers,
    build_generator,
    export_generator,
)
from .gan import RealImages
from .loop import (
    PRECISIONS,
    LoopConfig,
    Progress,
    autocast,
    begin,
    from_preset,
    keep_snapshot,
    restore,
    save_training_state,
    seed_everything,
)

KINDS = ("clcae", "psp", "e4e")
EXPORT_FILES = {"clcae": "clcae.pt", "psp": "psp_encoder.pt", "e4e": "e4e_encoder.pt"}
GEN_STREAM, NOISE_STREAM = 3, 4  # seed words of generated training images and reconstruction noise


@dataclass
class EncoderTrainConfig(LoopConfig):
    """Stage-2 encoder training settings; the defaults are the ``synthfaces64`` preset for CLCAE."""

    out_dir: str = ""  # "" = runs/<kind>
    kind: str = "clcae"  # "clcae", "psp" or "e4e"
    generator: str = "synthfaces64"  # bundled name, checkpoint path, or "tiny-random"
    sfn: str = "sfn"  # SFN for LPIPS-SFN and ID-SFN (name or path); "" = none (then those weights must be 0)
    lpips: str = "sfn"  # perceptual term: "sfn" (LPIPS-SFN) or "alex" / "vgg" (real LPIPS, local weights)
    contrastive: str = "synthfaces64"  # stage-1 model (name or path) for L_align and backbone_init
    use_align: bool = True  # CLCAE's L_align (False: the "w/o L_align" ablation)
    backbone_init: str = "contrastive"  # CLCAE backbone: "contrastive" (stage-1 h_I) or "random"
    data: str = "synthfaces"  # real images: "synthfaces" or an image folder / .zip
    data_seed: int = 0  # SynthFaces seed and seed of the generated images (evaluation uses EVAL_SEED)
    generated_fraction: float = 0.5  # share of each batch that is G(w) with known w
    truncation: float = 1.0  # psi of the generated training images
    noise_mode: str = "random"  # per-layer noise of the generated training images
    flip: bool = True  # horizontal flips (p = 0.5) of the real images (the release's augmentation)
    recon_noise: str = "random"  # noise of the training reconstructions: "random" (release) or "const"
    backbone: str = "small"  # "tiny", "small" or "ir_se50"
    image_size: int = 0  # encoder input size S; 0 = G.size
    f_res: int = 16  # CLCAE: resolution of the F space
    attention: str = "single"  # CLCAE: "single" (release) or "multi"
    use_wplus_attention: bool = True  # CLCAE ablation switches (docs/papers/clcae.md §6)
    use_f_attention: bool = True  # CLCAE: cross-attention for F (else F from image features only)
    use_f: bool = True  # predict and use the F feature (else W+ only)
    heads: int = 4  # attention heads of the cross-attention blocks
    dropout: float = 0.1  # dropout in the cross-attention blocks
    lambda_mse: float = 1.0  # loss weights: the release's README values (ganinv.losses.LossWeights)
    lambda_lpips: float = 0.2  # perceptual term (its network: ``lpips``)
    lambda_id: float = 0.1  # identity term (ID-SFN)
    lambda_freg: float = 0.01  # F regulariser MSE(f, sg(G_f(w+)))
    lambda_align: float = 0.1  # CLCAE L_align: InfoNCE of (G(w), w) under the frozen stage-1 model
    lambda_delta: float = 2e-4  # e4e's delta_norm_lambda
    lambda_latent: float = 0.0  # analysis only: MSE to the known w of the generated images
    f_ramp_steps: int = 1000  # CLCAE: f blend s ramps 0 -> 1 over this many steps
    f_ramp_restart: bool = False  # restart the ramp every f_ramp_steps + 1 steps (the release's epochs)
    e4e_stage_every: int = 500  # e4e: one more delta every this many steps
    batch_size: int = 8
    total_steps: int = 20_000
    checkpoint_every: int = 500
    lr: float = 1e-4  # Adam learning rate
    threads: int = 0  # torch.set_num_threads on CPU (0 = torch's default)
    eval_n: int = 500  # at the end, evaluate_encoder on this many held-out SynthFaces -> eval.json (0 = off)
    precision: str = "fp32"  # "bf16": autocast the step's forward passes (encoder, G, SFN) to bfloat16
    compile: bool = False  # torch.compile G's synthesis passes (minutes of compiling first, then faster)
    snapshot_steps: str = ""  # comma-separated steps whose export is kept in snapshots/step_NNNNNN/

    def __post_init__(self) -> None:
        if not self.out_dir:
            self.out_dir = f"runs/{self.kind}"

    RUN_ONLY: ClassVar[frozenset[str]] = LoopConfig.RUN_ONLY | {"threads", "eval_n", "snapshot_steps"}
    NUMERICS: ClassVar[frozenset[str]] = frozenset({"precision", "compile"})  # may be switched when resuming


PRESETS: dict[str, dict] = {
    "synthfaces64": {},
    # A few steps of a tiny encoder on a random 32 px generator (tests, demos); no stage-1 model needed.
    "tiny": dict(
        generator=TINY_RANDOM,
        contrastive="",
        use_align=False,
        backbone_init="random",
        backbone="tiny",
        batch_size=4,
        total_steps=4,
        checkpoint_every=2,
        log_every=1,
        lr=1e-3,
        f_ramp_steps=2,
        e4e_stage_every=2,
        eval_n=0,
    ),
}


def preset(name: str, **overrides) -> EncoderTrainConfig:
    return from_preset(EncoderTrainConfig, PRESETS, name, "encoder", **overrides)


def check_config(cfg: EncoderTrainConfig) -> None:
    """ValueError naming the option for settings that cannot work (before anything is loaded)."""
    choices = dict(
        kind=KINDS,
        backbone_init=("contrastive", "random"),
        lpips=("sfn", "alex", "vgg"),
        recon_noise=("random", "const"),
        attention=ATTENTION_MODES,
    )
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(
                f"unknown {name} {getattr(cfg, name)!r} (--{name.replace('_', '-')}); "
                f"choose one of {', '.join(allowed)}"
            )
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r} (--precision); choose one of {PRECISIONS}")
    snapshot_steps(cfg)
    if not 0 <= cfg.generated_fraction <= 1:
        raise ValueError(f"--generated-fraction must be in [0, 1], got {cfg.generated_fraction}")
    if cfg.data == "synthfaces" and cfg.data_seed == EVAL_SEED and cfg.generated_fraction < 1:
        raise ValueError(f"--data-seed {EVAL_SEED} is the held-out evaluation seed; train on another")
    if not cfg.sfn and (cfg.lambda_id > 0 or (cfg.lpips == "sfn" and cfg.lambda_lpips > 0)):
        raise ValueError(
            "--lambda-id and --lambda-lpips (with --lpips sfn) need an SFN: pass --sfn NAME|PATH "
            "or set those weights to 0"
        )
    if cfg.kind == "clcae" and cfg.use_align and cfg.batch_size < 2:
        raise ValueError(f"L_align needs batch_size >= 2 (in-batch negatives), got {cfg.batch_size}")


def snapshot_steps(cfg: EncoderTrainConfig) -> set[int]:
    """The steps of ``cfg.snapshot_steps`` ("1200,3000" -> {1200, 3000}); ValueError for anything else."""
    try:
        steps = {int(part) for part in cfg.snapshot_steps.replace(" ", "").split(",") if part}
    except ValueError:
        steps = {0}
    if any(step < 1 for step in steps):
        raise ValueError(
            f"--snapshot-steps takes whole steps >= 1 separated by commas (e.g. 1200,3000), "
            f"got {cfg.snapshot_steps!r}"
        )
    return steps


def load_aligner(cfg: EncoderTrainConfig, G: Generator, device) -> ContrastiveAligner | None:
    """The frozen stage-1 model if CLCAE's L_align or ``backbone_init="contrastive"`` needs it, else None."""
    wanted = {
        "--use-align true": cfg.use_align,
        "--backbone-init contrastive": cfg.backbone_init == "contrastive",
    }
    needs = [name for name, on in wanted.items() if on]
    if cfg.kind != "clcae" or not needs:
        return None
    why = " and ".join(needs)
    if not cfg.contrastive:
        raise ValueError(
            f"{why} need(s) a stage-1 contrastive model: pass --contrastive NAME|PATH (a "
            "contrastive.pt from `ganinv train contrastive`), or --use-align false "
            "--backbone-init random for the ablation without it"
        )
    try:
        aligner = load_contrastive(cfg.contrastive, device)
    except CheckpointError as e:
        raise CheckpointError(
            f"{e} (--contrastive, needed by {why}; train one with `ganinv train contrastive`)"
        ) from None
    if aligner.cfg.style_dim != G.style_dim or not torch.allclose(aligner.w_avg, G.w_avg, 1e-3, 1e-3):
        raise ValueError(
            f"--contrastive {cfg.contrastive!r} was trained for another generator than "
            f"--generator {cfg.generator!r} (style_dim or w_avg differ)"
        )
    return aligner


def build_encoder(
    cfg: EncoderTrainConfig, G: Generator, aligner: ContrastiveAligner | None = None
) -> nn.Module:
    """The untrained encoder of ``cfg`` for ``G`` (weights from the global RNG, averages from ``G``)."""
    size = cfg.image_size or G.size
    if cfg.kind == "clcae":
        switches = ("attention", "heads", "dropout", "use_wplus_attention", "use_f", "use_f_attention")
        mcfg = CLCAEConfig.for_generator(
            G, cfg.backbone, size, cfg.f_res, **{k: getattr(cfg, k) for k in switches}
        )
        model = CLCAE.from_generator(G, mcfg)
        if cfg.backbone_init == "contrastive" and aligner is not None:
            try:
                model.load_backbone_from(aligner)
            except ValueError as e:
                raise ValueError(
                    f"{e}; --contrastive {cfg.contrastive!r}: use the same --backbone and "
                    "--image-size, or --backbone-init random"
                ) from None
        return model
    encoder = (PSPEncoder if cfg.kind == "psp" else E4EEncoder)(
        WPlusEncoderConfig.for_generator(G, cfg.backbone, size)
    )
    encoder.set_w_avg(G.get_w_avg())
    return encoder


def build_reconstruction_loss(cfg: EncoderTrainConfig, device) -> ReconstructionLoss:
    weights = LossWeights(cfg.lambda_mse, cfg.lambda_lpips, cfg.lambda_id, cfg.lambda_freg, cfg.lambda_align)
    sfn = load_sfn(cfg.sfn, device) if cfg.sfn else None
    return ReconstructionLoss(weights, sfn, None if cfg.lpips == "sfn" else cfg.lpips)


# ---------------------------------------------------------------------------------------------------------
# Data and objective


class TrainingData:
    """The batches of process ``rank`` as a pure function of the step (see the module docstring)."""

    def __init__(
        self, cfg: EncoderTrainConfig, G: Generator, size: int, rank: int = 0, world: int = 1
    ) -> None:
        self.cfg, self.G, self.size, self.rank, self.world = cfg, G, size, rank, world
        self.n_gen = round(cfg.generated_fraction * cfg.batch_size)
        self.n_real = cfg.batch_size - self.n_gen
        spec = SimpleNamespace(data=cfg.data, size=size, data_seed=cfg.data_seed, batch_size=self.n_real,
                               seed=cfg.seed, xflip=cfg.flip)  # the fields RealImages reads  # fmt: skip
        self.real = RealImages(spec, rank, world) if self.n_real else None

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        """(x [B, 3, S, S] generated first, w_true [n_gen, style_dim], reconstruction noise or None)."""
        G, cfg, index = self.G, self.cfg, step * self.world + self.rank
        dev = G.w_avg.device
        parts, w = [], torch.zeros(0, G.style_dim, device=dev)
        if self.n_gen:
            seed = pair_seed(GEN_STREAM, cfg.data_seed, index)
            images, w = make_pairs(G, self.n_gen, seed, self.size, cfg.truncation, cfg.noise_mode)
            parts.append(images)
        if self.real is not None:
            parts.append(self.real.batch(step).to(dev))
        noise = None
        if cfg.recon_noise == "random":
            gen = torch.Generator().manual_seed(pair_seed(NOISE_STREAM, cfg.data_seed, index))
            shapes = [b.shape[1:] for b in G.make_noise(1, "const")]
            noise = [torch.randn(cfg.batch_size, *s, generator=gen).to(dev) for s in shapes]
        return torch.cat(parts), w, noise


class Objective:
    """The per-step loss of ``cfg.kind`` (module docstring): ``objective(model, x, w_true, step, noise)``
    gives the weighted terms (``"w"``, ``"w+"``, ``"f"``: L_rec of each output; ``"freg"``, ``"align"``,
    ``"delta"``, ``"latent"`` when active) and their sum ``"loss"``. ``aligner`` None = no L_align."""

    def __init__(
        self,
        cfg: EncoderTrainConfig,
        G: Generator,
        rec: ReconstructionLoss,
        aligner: ContrastiveAligner | None = None,
    ) -> None:
        self.cfg, self.G, self.rec, self.aligner = cfg, G, rec, aligner
        # G's passes are most of a step; compiled, their many small element-wise ops are fused
        self.synthesis = torch.compile(G.synthesis) if cfg.compile else G.synthesis

    def __call__(
        self, model: nn.Module, x: torch.Tensor, w_true: torch.Tensor, step: int, noise: list | None = None
    ) -> dict[str, torch.Tensor]:
        cfg, G, size = self.cfg, self.G, x.shape[-1]
        terms: dict[str, torch.Tensor] = {}

        def render(ws: torch.Tensor, **kw) -> torch.Tensor:  # [N, 3, S, S]
            return pool_to(self.synthesis(ws, noise=noise, **kw), size)

        if cfg.kind == "clcae":
            out: CLCAEOutput = model(x)
            if cfg.compile:  # as the w+ pass below, so that both share one compiled graph
                img_w = pool_to(
                    self.synthesis(G.broadcast(out.w), noise=noise, return_features=True)[0], size
                )
            else:
                img_w = render(out.w)
            img_wp, feats = self.synthesis(out.w_plus, noise=noise, return_features=True)
            images = {"w": img_w, "w+": pool_to(img_wp, size)}
            if out.f is not None:
                res = out.f.shape[-1]
                s = f_blend_at(step, cfg.f_ramp_steps, cfg.f_ramp_restart)
                s = (
                    torch.tensor(s, device=x.device) if cfg.compile else s
                )  # a float would recompile each step
                images["f"] = render(out.w_plus, f=out.f, f_res=res, f_blend=s)
                terms["freg"] = cfg.lambda_freg * feature_regulariser(out.f, feats[res])
            if self.aligner is not None:
                terms["align"] = cfg.lambda_align * alignment_loss(self.aligner, img_w, out.w)
            codes = [out.w.unsqueeze(1), out.w_plus]
        else:
            w_plus = model(x)  # [N, n_latent, style_dim]
            images = {"w+": render(w_plus)}
            if cfg.kind == "e4e":
                terms["delta"] = cfg.lambda_delta * model.delta_regulariser()
            codes = [w_plus]
        target = self.rec.prepare(x)  # the target's SFN outputs once for all reconstructions of it
        for name, image in images.items():
            terms[name] = self.rec(image, target)["total"]
        k = w_true.shape[0]
        if cfg.lambda_latent > 0 and k:
            terms["latent"] = cfg.lambda_latent * sum((c[:k] - w_true[:, None]).pow(2).mean() for c in codes)
        terms["loss"] = sum(terms.values())
        return terms


# ---------------------------------------------------------------------------------------------------------
# Training


def train(cfg: EncoderTrainConfig) -> dict:
    """Train (or resume) one encoder; writes ``training_state.pt``, the export (:data:`EXPORT_FILES`; plus
    ``generator.pt`` for "tiny-random") and, if ``eval_n``, ``eval.json`` into ``cfg.out_dir``. Returns
    ``{"step", "wall_s", <last logged terms>, "history": [{"step", "wall_s", <terms>}, ...], "eval"?}``."""
    check_config(cfg)
    procs = begin(cfg)
    dev = procs.device
    G = build_generator(cfg.generator, cfg.seed).to(dev)
    G.get_w_avg()
    aligner = load_aligner(cfg, G, dev)
    rec = build_reconstruction_loss(cfg, dev)
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    model = build_encoder(cfg, G, aligner).to(dev).train()
    objective = Objective(cfg, G, rec, aligner if cfg.use_align else None)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    seed_everything(cfg.seed, procs.rank)
    step, wall_s, _ = restore(cfg, procs.rank, {"model": model}, {"opt": opt})
    generator_ref = export_generator(cfg.generator, G, cfg.out_dir, procs.is_main)
    data = TrainingData(cfg, G, cfg.image_size or G.size, procs.rank, procs.world_size)
    t0 = time.perf_counter() - wall_s
    world_batch = cfg.batch_size * procs.world_size
    bar = Progress(cfg.total_steps, step, world_batch, cfg.progress and procs.is_main, f"train {cfg.kind}")
    logs: dict[str, float] = {}
    history: list[dict] = []  # the logged terms of this call, one dict per log step
    export = Path(cfg.out_dir) / EXPORT_FILES[cfg.kind]
    snapshots = snapshot_steps(cfg)

    def checkpoint() -> None:
        _average_buffers(model, procs)  # BatchNorm statistics differ between processes: keep their mean
        wall = round(time.perf_counter() - t0, 1)
        state = dict(config=cfg.to_dict(), step=step, model=model.state_dict(), opt=opt.state_dict())
        save_training_state(cfg.out_dir, {**state, "wall_s": wall}, procs.rank)
        if procs.is_main:
            extra = dict(
                generator=generator_ref,
                contrastive=cfg.contrastive if aligner is not None else "",
                step=step,
                images_seen=step * world_batch,
                wall_s=wall,
                train_config=cfg.to_dict(),
            )
            (save_clcae if cfg.kind == "clcae" else save_encoder)(export, model, **extra)

    while step < cfg.total_steps:
        x, w_true, noise = data.batch(step)
        if cfg.kind == "e4e":
            model.set_stage(model.stage_for_step(step, cfg.e4e_stage_every))
        with autocast(cfg.precision, x.device):
            terms = objective(model, x, w_true, step, noise)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        procs.average_gradients(model.parameters())
        opt.step()
        step += 1
        log = step % cfg.log_every == 0 or step == cfg.total_steps
        if log:
            logs = {k: v.item() for k, v in terms.items()}
            history.append({"step": step, "wall_s": time.perf_counter() - t0, **logs})
        bar.update(logs if log else None)
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps or step in snapshots:
            checkpoint()
            if step in snapshots and procs.is_main:
                keep_snapshot(cfg.out_dir, step, [export])
    bar.close()
    result: dict = {"step": step, "wall_s": round(time.perf_counter() - t0, 1), **logs, "history": history}
    if procs.is_main and cfg.eval_n > 0:
        ev = evaluate_encoder(model, G, rec.feature_net or load_sfn("sfn", dev), n=cfg.eval_n)
        result["eval"] = ev
        write_json(
            {**ev, "kind": cfg.kind, "generator": generator_ref, "step": step},
            Path(cfg.out_dir) / "eval.json",
        )
    procs.barrier()
    procs.close()
    return result


def load_trained_encoder(path_or_name, kind: str = "auto", device="cpu") -> tuple[nn.Module, str]:
    """(encoder in eval mode, the generator it was trained for) from an export of :func:`train`; ``kind``
    "auto" reads it from the file (a bundled name needs an explicit kind)."""
    if kind == "auto":
        kind = "clcae"
        if Path(path_or_name).is_file():
            found = load_checkpoint(path_or_name).get("kind")
            kind = {"psp_encoder": "psp", "e4e_encoder": "e4e"}.get(found, found)
    if kind not in KINDS:
        raise ValueError(f"unknown encoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    file_kind = {"clcae": "clcae", "psp": "psp_encoder", "e4e": "e4e_encoder"}[kind]
    generator = load_checkpoint(path_or_name, file_kind).get("generator", "")
    model = (
        load_clcae(path_or_name, device) if kind == "clcae" else load_encoder(path_or_name, file_kind, device)
    )
    return model, generator
