"""Training of the diverse-inpainting models (``ganinv/models/inpainting.py``) with generated data: the
two-case set-up of Sec. 3 of Yildirim et al., "Diverse Inpainting and Editing with GAN Inversion", ICCV 2023
(``docs/papers/diverse_inpainting.md`` §4 and §5; beyond the abstract, every detail is unverified or ours).

Every step: ``z1 -> w1 = mapping(z1)`` (truncation ``truncation``), ``x = G(w1)`` (const noise, not
clamped, so case A can match it exactly), a free-form mask ``m`` (1 = keep) from
:func:`ganinv.data.masks.bucket_masks`; then, for the whole batch, one of

* **case A** (probability ``case_a_prob``): ``w_r = w1``, ``y = G(Mix(E(x*m, m), w1))``, reconstruction
  loss (λ_2 MSE + λ_LPIPS LPIPS-SFN + λ_ID ID-SFN) on **all** pixels: the hole can only come from ``w_r``;
* **case B**: ``w_r = mapping(z2)`` for a fresh ``z2``, the reconstruction loss on the **unerased** pixels
  only (the ``mask`` of :class:`ganinv.losses.ReconstructionLoss`) plus ``adv_weight`` times the
  non-saturating loss ``softplus(-D(y))``.

Stage 1 trains encoder and mixer; stage 2 (``stage=2``, ``init`` = the stage-1 ``inpainter.pt``) trains
only the skip encoder with the same two cases (``Inpainter.freeze_for_stage``).

Our choices where the paper is silent:

* ``case_a_prob = 0.5``: the two cases teach complementary things (A: take hole content from w_r; B: keep
  the known pixels under any w_r, and look real), neither is known to need more steps, so both get equal
  share. One case per batch (not per sample) so the batch of D and the loss normalisation stay simple;
  the case of a step is drawn from a seed of ``(data_seed, step)`` only, so all processes agree.
* The discriminator starts from the generator's own (bundled) D and is **fine-tuned** on case-B steps:
  "real" = the uncorrupted generated ``x``, "fake" = the case-B completion, softplus loss, lazy R1
  (γ ``r1_gamma``, every ``r1_every`` D steps) on the reals. A frozen D was trained to be fooled by G
  itself, so it scores any G output as roughly real and cannot see the seams between known region and
  hole that case B creates; "real" = generated (not dataset) images, because artefacts of G that the
  encoder cannot remove must not be penalised. The fine-tuned D is exported as ``discriminator.pt``.
* Loss weights: pSp's FFHQ encoding values (λ_2 1, λ_LPIPS 0.8, λ_ID 0.1), with SFN in the roles of
  AlexNet and ArcFace; ``adv_weight`` 0.01 (the lab's later work uses 0.001 at 500k steps; our runs are
  far shorter). Adam (betas 0.9, 0.999), constant learning rate (pSp uses Ranger at 1e-4).
* Masks: CoModGAN's free-form masks with hole ratio in (``hole_min``, ``hole_max``) = (0, 1), all sizes.
* ``noise_mode`` "const" for the training images: the model's outputs use G's const noise, so case A can
  reproduce ``x`` exactly. Truncation 1 (none) for both ``w1`` and ``w_r`` (recorded in the model config).

Data of process ``rank`` at ``step`` are a pure function of ``(data_seed, step * world + rank)``, so a
resumed run is identical to an uninterrupted one (``resume=True``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..checkpoints import CheckpointError, load_discriminator, save_discriminator
from ..common import write_json
from ..data.masks import bucket_masks
from ..data.pairs import pair_seed
from ..losses import LossWeights, ReconstructionLoss
from ..metrics import seam_excess
from ..models.inpainting import (
    FUSE_MASKS,
    Inpainter,
    InpaintingConfig,
    composite,
    load_inpainter,
    save_inpainter,
)
from ..models.sfn import SFN, SFNConfig, load_sfn
from ..models.stylegan2 import Discriminator, Generator
from .contrastive import TINY_RANDOM, build_generator, export_generator
from .gan import discriminator_step, lazy_adam
from .loop import (
    LoopConfig,
    Progress,
    begin,
    from_preset,
    requires_grad,
    restore,
    save_training_state,
    seed_everything,
)

TRAIN_STREAM, MASK_STREAM, CASE_STREAM = 11, 12, 13  # seed words of latents, masks and case choice


@dataclass
class InpaintTrainConfig(LoopConfig):
    """Stage-1 / stage-2 settings; defaults are the ``synthfaces64`` preset (the module docstring: why)."""

    out_dir: str = "runs/inpaint"
    stage: int = 1  # 1: encoder + mixer; 2: skip encoder only, from `init`
    init: str = ""  # stage 2: the stage-1 inpainter.pt (path or bundled name)
    f_res: str = ""  # stage 2: a fresh skip encoder fusing at e.g. "16,32,64" ("": train init's own further)
    fuse_mask: str = ""  # stage 2: "hard", "soft" or "feather" mask_r of a fresh skip encoder ("": init's)
    generator: str = "synthfaces64"  # bundled name, checkpoint path, or "tiny-random"
    discriminator: str = ""  # D of case B: "" = the generator's own, or a bundled name / path / "tiny-random"
    sfn: str = "sfn"  # feature net of LPIPS-SFN / ID-SFN: bundled name, path, "tiny-random" or "" (none)
    backbone: str = "small"  # erased encoder trunk ("tiny", "small", "ir_se50"); stage 1 only
    mixing: str = "gated"  # "gated", "ungated" or "none" (the no-mixing ablation); stage 1 only
    truncation: float = 1.0  # psi of w1 and w_r
    noise_mode: str = "const"  # per-layer noise of the training images x = G(w1)
    data_seed: int = 0  # seeds the z, w_r and masks of the training cases
    case_a_prob: float = 0.5  # probability that a batch is case A (w_r = w1, full-image loss)
    mask_kind: str = "mixed"  # "mixed", "brush" or "box"
    hole_min: float = 0.0  # hole ratio of training masks in the open interval (hole_min, hole_max)
    hole_max: float = 1.0  # (see hole_min)
    mse_weight: float = 1.0  # reconstruction losses on the target image
    lpips_weight: float = 0.8  # LPIPS-SFN
    id_weight: float = 0.1  # ID-SFN
    adv_weight: float = 0.01  # non-saturating adversarial loss of case B (0: no D at all)
    seam_weight: float = 0.0  # hinge seam loss at the hole border of the pasted output (seam_loss)
    d_lr: float = 2e-4  # D fine-tuning (Adam(0, 0.99) with lazy-R1 correction)
    r1_gamma: float = 0.05  # R1 weight of the D fine-tuning
    r1_every: int = 16  # in D steps
    lr: float = 2e-4  # Adam learning rate of the inpainter
    batch_size: int = 8
    total_steps: int = 20000
    checkpoint_every: int = 500
    threads: int = 0  # torch.set_num_threads on CPU (0 = torch's default)
    eval_n: int = 0  # at the end, evaluate_inpainting on this many held-out faces per bucket (0 = off)

    RUN_ONLY: ClassVar[frozenset[str]] = LoopConfig.RUN_ONLY | {"threads", "eval_n"}  # not the weights


PRESETS: dict[str, dict] = {
    "synthfaces64": {},
    # Tiny networks on a random 32 px generator, discriminator and SFN: tests and live demos.
    "tiny": dict(
        out_dir="runs/inpaint_tiny",
        generator=TINY_RANDOM,
        sfn=TINY_RANDOM,
        backbone="tiny",
        batch_size=4,
        total_steps=4,
        lr=1e-3,
        d_lr=1e-3,
        r1_every=2,
        checkpoint_every=2,
        log_every=1,
    ),
}


def preset(name: str, **overrides) -> InpaintTrainConfig:
    return from_preset(InpaintTrainConfig, PRESETS, name, "inpainting", **overrides)


def check_config(cfg: InpaintTrainConfig) -> None:
    """ValueError naming the first unusable setting."""
    weights = (cfg.mse_weight, cfg.lpips_weight, cfg.id_weight, cfg.adv_weight, cfg.seam_weight)
    problems = [
        (cfg.stage in (1, 2), f"stage must be 1 or 2, got {cfg.stage}"),
        (cfg.stage == 1 or bool(cfg.init), "stage 2 needs init= the stage-1 inpainter.pt"),
        (cfg.stage == 2 or not (cfg.f_res or cfg.fuse_mask), "f_res and fuse_mask are stage-2 settings"),
        (cfg.fuse_mask in ("", *FUSE_MASKS), f"fuse_mask must be one of {FUSE_MASKS}, got {cfg.fuse_mask!r}"),
        (0 <= cfg.case_a_prob <= 1, f"case_a_prob must lie in [0, 1], got {cfg.case_a_prob}"),
        (
            0 <= cfg.hole_min < cfg.hole_max <= 1,
            f"need 0 <= hole_min < hole_max <= 1, got {cfg.hole_min}, {cfg.hole_max}",
        ),
        (min(weights) >= 0, f"loss weights must be >= 0, got {weights}"),
        (cfg.sfn != "" or cfg.lpips_weight == cfg.id_weight == 0, "lpips/id weights > 0 need an sfn"),
        (cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}"),
    ]
    for ok, message in problems:
        if not ok:
            raise ValueError(f"InpaintTrainConfig: {message}")
    parse_resolutions(cfg.f_res)


def parse_resolutions(text: str) -> tuple[int, ...]:
    """``"16,32"`` -> (16, 32); ``""`` -> () (keep the init model's). ValueError names a bad entry."""
    try:
        return tuple(int(r) for r in text.replace(" ", "").split(",") if r)
    except ValueError:
        message = f"InpaintTrainConfig: f_res must be comma-separated integers, got {text!r}"
        raise ValueError(message) from None


# ---------------------------------------------------------------------------------------------------------
# Networks


def discriminator_spec(spec: str, generator: str) -> str:
    """``spec``, or for ``""`` the generator's own D: "tiny-random" for "tiny-random", ``discriminator.pt``
    beside a ``generator.pt`` file, else the generator's name / file (rosinality / NVIDIA files hold both)."""
    if spec or generator == TINY_RANDOM:
        return spec or TINY_RANDOM
    sibling = Path(generator).with_name("discriminator.pt")
    return str(sibling) if Path(generator).is_file() and sibling.is_file() else generator


def build_discriminator(spec: str, G: Generator, seed: int = 0) -> Discriminator:
    """D for case B: ``"tiny-random"`` (random, G's size, seeded) or a bundled name / discriminator path."""
    if spec == TINY_RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            D = Discriminator(G.size, channel_multiplier=0.125, channel_max=16)
    else:
        try:
            D = load_discriminator(spec)
        except CheckpointError as e:
            raise CheckpointError(f"{e}. Case B needs the discriminator trained with the generator") from None
    if D.size != G.size:
        raise ValueError(f"discriminator is {D.size} px but the generator {G.size} px")
    return D


def build_sfn(spec: str, seed: int = 0) -> SFN | None:
    """Feature net of the LPIPS-SFN / ID-SFN terms: ``""`` (none), ``"tiny-random"`` (a random 32 px SFN)
    or a bundled name / path."""
    if not spec:
        return None
    if spec == TINY_RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            net = SFN(SFNConfig(size=32, widths=(8, 16, 16), hidden=16, embed_dim=8))
        return net.eval().requires_grad_(False)
    return load_sfn(spec)


def build_model(cfg: InpaintTrainConfig, G: Generator) -> Inpainter:
    """Stage 1: a fresh model (weights from the global RNG); stage 2: the model ``cfg.init`` with its own
    skip encoder, or, when ``f_res`` or ``fuse_mask`` is given, with a fresh (zero-output) skip encoder for
    those settings. Encoder and mixer are always kept: stage 2 freezes them, so any stage-2 file holds its
    stage 1 unchanged, and ``--init`` of a stage-2 file with ``--f-res`` retrains stage 2 from scratch."""
    if cfg.stage == 2:
        model = load_inpainter(cfg.init, G=G, device=G.w_avg.device)
        if not (cfg.f_res or cfg.fuse_mask):
            return model
        f_res = parse_resolutions(cfg.f_res) or model.cfg.f_res
        fuse_mask = cfg.fuse_mask or model.cfg.fuse_mask
        new_cfg = dataclasses.replace(
            model.cfg, f_res=f_res, f_channels=tuple(G.channels.get(r, 0) for r in f_res), fuse_mask=fuse_mask
        )
        fresh = Inpainter(G, new_cfg)
        kept = {k: v for k, v in model.state_dict().items() if not k.startswith(("G.", "skip."))}
        missing, unexpected = fresh.load_state_dict(kept, strict=False)
        if unexpected or any(not k.startswith(("G.", "skip.")) for k in missing):
            raise ValueError(f"{cfg.init}: its stage 1 does not fit (missing {missing}, extra {unexpected})")
        return fresh
    return Inpainter(G, InpaintingConfig.for_generator(G, cfg.backbone, mixing=cfg.mixing,
                                                       truncation=cfg.truncation))  # fmt: skip


def reconstruction_loss(cfg: InpaintTrainConfig, sfn: SFN | None) -> ReconstructionLoss:
    weights = LossWeights(mse=cfg.mse_weight, lpips=cfg.lpips_weight, id=cfg.id_weight)
    return ReconstructionLoss(weights, feature_net=sfn)


# ---------------------------------------------------------------------------------------------------------
# Data


def is_case_a(cfg: InpaintTrainConfig, step: int) -> bool:
    """Whether ``step`` is a case-A batch: a pure function of ``(data_seed, step)`` (same on every rank)."""
    u = torch.rand(1, generator=torch.Generator().manual_seed(pair_seed(CASE_STREAM, cfg.data_seed, step)))
    return bool(u.item() < cfg.case_a_prob)


@torch.no_grad()
def training_batch(G: Generator, cfg: InpaintTrainConfig, step: int, rank: int = 0, world: int = 1) -> dict:
    """The batch of process ``rank`` at ``step``: ``x`` [B, 3, S, S] = G(w1), ``mask`` [B, 1, S, S],
    ``w1`` [B, D], ``z2`` [B, D] (case B's fresh latent) and ``case_a`` (bool)."""
    b, dev, index = cfg.batch_size, G.w_avg.device, step * world + rank
    gen = torch.Generator().manual_seed(pair_seed(TRAIN_STREAM, cfg.data_seed, index))
    z1, z2 = torch.randn(2, b, G.style_dim, generator=gen).to(dev)
    w1 = G.mapping(z1, cfg.truncation)
    noise = None
    if cfg.noise_mode == "random":  # drawn from the step's generator, not the global RNG
        noise = [torch.randn(b, *n.shape[1:], generator=gen).to(dev) for n in G.make_noise(1, "const")]
    x = G.synthesis(w1, noise_mode=cfg.noise_mode, noise=noise)  # not clamped: exactly G's own output
    mask_seed = pair_seed(MASK_STREAM, cfg.data_seed) >> 1
    mask = bucket_masks((cfg.hole_min, cfg.hole_max), b, G.size, mask_seed, cfg.mask_kind, offset=index * b)
    return dict(x=x, mask=mask.to(dev), w1=w1, z2=z2, case_a=is_case_a(cfg, step))


def case_losses(
    model: Inpainter,
    rec: ReconstructionLoss,
    batch: dict,
    stage: int = 1,
    D: Discriminator | None = None,
    adv_weight: float = 0.0,
    seam_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The loss of one batch. Case A: ``w_r = w1``, reconstruction on all pixels; case B: ``w_r =
    mapping(z2)``, reconstruction on unerased pixels + ``adv_weight * softplus(-D(y))``; both cases add
    ``seam_weight`` times the hinge seam loss of the pasted output (:func:`ganinv.metrics.seam_excess` with
    ``hinge=True``: every border pair whose colour step exceeds the original's). Returns the terms (``rec``,
    ``mse``, ``lpips``, ``id``, ``adv``, ``seam``, ``total``) and the output ``image``."""
    x, mask = batch["x"], batch["mask"]
    w_r = batch["w1"] if batch["case_a"] else model.map_random(batch["z2"])
    y = model(x, mask, w_r=w_r, stage=stage).image  # [B, 3, S, S]
    terms = rec(y, x, None if batch["case_a"] else mask)
    adv = y.new_zeros(())
    if not batch["case_a"] and D is not None and adv_weight > 0:
        adv = F.softplus(-D(y)).mean()
    seam = y.new_zeros(())
    if seam_weight > 0:
        seam = seam_excess(composite(x, mask, y), x, mask, hinge=True).mean()
    out = {k: terms[k] for k in ("mse", "lpips", "id")}
    total = terms["total"] + adv_weight * adv + seam_weight * seam
    return {**out, "rec": terms["total"], "adv": adv, "seam": seam, "total": total, "image": y}


# ---------------------------------------------------------------------------------------------------------
# Training


def _generator_ref(spec: str, out_dir: str) -> str:
    """How the exported inpainter names its generator: a file relative to out_dir, else the name."""
    if spec == TINY_RANDOM:
        return "generator.pt"
    p = Path(spec)
    return os.path.relpath(p.resolve(), Path(out_dir).resolve()) if p.is_file() else spec


def train(cfg: InpaintTrainConfig) -> dict:
    """Train (or resume) one stage; writes ``training_state.pt``, ``inpainter.pt`` (plus ``generator.pt``
    for "tiny-random"), ``discriminator.pt`` (the fine-tuned D) and, if ``eval_n``, ``eval.json``."""
    check_config(cfg)
    procs = begin(cfg)
    dev = procs.device
    G = build_generator(cfg.generator, cfg.seed).to(dev)
    G.get_w_avg()
    use_d = cfg.adv_weight > 0 and cfg.case_a_prob < 1
    d_spec = discriminator_spec(cfg.discriminator, cfg.generator)
    D = build_discriminator(d_spec, G, cfg.seed).to(dev).train() if use_d else None
    if D is not None and cfg.batch_size % min(cfg.batch_size, D.stddev_group):
        raise ValueError(
            f"batch_size {cfg.batch_size} must be a multiple of the discriminator's minibatch-stddev group "
            f"{D.stddev_group} (or smaller than it)"
        )
    sfn = build_sfn(cfg.sfn, cfg.seed)
    sfn = sfn.to(dev) if sfn is not None else None
    rec = reconstruction_loss(cfg, sfn)
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    model = build_model(cfg, G).to(dev).train()
    params = model.freeze_for_stage(cfg.stage)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    d_opt = lazy_adam(D.parameters(), cfg.d_lr, cfg.r1_every) if D is not None else None
    seed_everything(cfg.seed, procs.rank)
    # the saved model leaves out the frozen G ("G." keys): loaded non-strictly
    step, wall_s, state = restore(
        cfg, procs.rank, {"model": model, "D": D}, {"opt": opt, "d_opt": d_opt}, partial=("model",)
    )
    d_steps = int(state["d_steps"]) if state is not None else 0
    out = Path(cfg.out_dir)
    export_generator(cfg.generator, G, out, procs.is_main)  # "tiny-random": generator.pt beside the export
    generator_ref = _generator_ref(cfg.generator, cfg.out_dir)

    t0 = time.perf_counter() - wall_s
    world_batch = cfg.batch_size * procs.world_size
    bar = Progress(
        cfg.total_steps, step, world_batch, cfg.progress and procs.is_main, f"inpaint stage {cfg.stage}"
    )
    logs: dict[str, float] = {}
    history: list[dict[str, float]] = []

    def checkpoint() -> None:
        wall = round(time.perf_counter() - t0, 1)
        sd = {k: v for k, v in model.state_dict().items() if not k.startswith("G.")}
        state = dict(config=cfg.to_dict(), step=step, d_steps=d_steps, model=sd, opt=opt.state_dict())
        if D is not None:
            state.update(D=D.state_dict(), d_opt=d_opt.state_dict())
        save_training_state(cfg.out_dir, {**state, "wall_s": wall}, procs.rank)
        if procs.is_main:
            save_inpainter(out / "inpainter.pt", model, generator=generator_ref, stage=cfg.stage, step=step,
                           images_seen=step * world_batch, wall_s=wall)  # fmt: skip
            if D is not None:
                save_discriminator(out / "discriminator.pt", D, step=step)

    while step < cfg.total_steps:
        batch = training_batch(G, cfg, step, procs.rank, procs.world_size)
        if D is not None:
            requires_grad(D, False)
        losses = case_losses(model, rec, batch, cfg.stage, D, cfg.adv_weight, cfg.seam_weight)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        procs.average_gradients(params)
        opt.step()
        log = {k: losses[k].item() for k in ("rec", "adv", "seam")}
        if D is not None and not batch["case_a"]:  # D: real = the generated x, fake = the case-B output
            requires_grad(D, True)
            real, fake = batch["x"], losses["image"].detach()
            d_loss, _ = discriminator_step(D, d_opt, procs, real, fake, cfg.r1_gamma, cfg.r1_every, d_steps)
            log["d"] = d_loss.item()
            d_steps += 1
        step += 1
        history.append({"step": step, "case_a": float(batch["case_a"]), **log})
        is_log = step % cfg.log_every == 0 or step == cfg.total_steps
        if is_log:
            logs = log
        bar.update(logs if is_log else None)
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            checkpoint()
    bar.close()
    result: dict = {"step": step, "wall_s": round(time.perf_counter() - t0, 1), **logs, "history": history}
    if procs.is_main and cfg.eval_n > 0:
        from ..eval.inpainting import InpainterMethod, evaluate_inpainting

        model.eval()
        ev_sfn = sfn if sfn is not None else load_sfn("sfn").to(dev)
        ev = evaluate_inpainting(InpainterMethod(model, stage=cfg.stage), G, ev_sfn, n=cfg.eval_n)
        result["eval"] = ev
        write_json({**ev, "generator": generator_ref, "stage": cfg.stage, "step": step}, out / "eval.json")
    procs.barrier()
    procs.close()
    return result
