"""Training of SFN, the SynthFaces feature network (``ganinv/models/sfn.py``); its held-out evaluation is
:func:`ganinv.eval.sfn.evaluate_sfn`.

Each step renders ``batch_size`` SynthFaces samples (indices a pure function of the step, so resume is
exact) and, for each, a *positive*: the same face re-rendered with its non-identity factors
(:data:`ganinv.data.identity.NUISANCE_FACTORS`) redrawn from the prior. Both views are used for

* the attribute losses: BCE on binary attributes, MSE on continuous factors in normalised units (0..1 over
  the factor's range; ``eye_color`` is masked out where the eyes are closed and it cannot be seen), and
  cross-entropy on categorical factors;
* the identity loss: InfoNCE over the ``2 * batch_size`` embeddings (temperature ``temperature``), whose
  positive for each view is the other view of the same face and whose negatives are all other faces.
  The embedding so becomes invariant to expression, pose, lighting, background and glasses (like ArcFace)
  and sensitive to the identity factors (:data:`ganinv.data.identity.IDENTITY_FACTORS`).

Light augmentation, so that SFN also reads GAN samples, which are softer, noisier and not pixel-exactly
where the renderer puts faces: every view is shifted by up to ``translate`` pixels (replicate padding);
with probability ``blur_prob`` it is softened by resampling through a random lower resolution (a factor
``U(blur_scale, 1)`` of the size, antialiased down, bilinear up); and Gaussian noise with a per-image
standard deviation ``U(0, noise_std)`` is added. No colour augmentation: colours are factors.

Adam with a linear warm-up and a cosine decay of the learning rate; the shared loop (``loop.py``) gives
atomic checkpoints, resume and the progress bar.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..data import synthfaces as sf
from ..data.identity import NUISANCE_SEED_OFFSET, identity_pairs
from ..eval.sfn import evaluate_sfn
from ..models.sfn import SFN, SFNConfig, save_sfn
from .loop import (
    LoopConfig,
    Progress,
    begin,
    from_preset,
    restore,
    save_training_state,
    seed_everything,
)


@dataclass
class SFNTrainConfig(LoopConfig):
    """SFN training settings; defaults are the ``sfn64`` preset (the bundled model)."""

    out_dir: str = "runs/sfn"
    data_seed: int = 0  # SynthFaces seed of the training faces
    size: int = 64  # render and model resolution
    widths: str = "32,64,128,192"  # channels of the stride-2 stages (comma-separated)
    pool: int = 4  # the last map is pooled to pool x pool
    hidden: int = 256  # pooled feature dimension
    embed_dim: int = 128  # identity embedding dimension
    batch_size: int = 128  # faces per step (each also rendered as a positive: 2x images)
    total_steps: int = 3000
    lr: float = 2e-3  # peak Adam learning rate
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.02  # final lr / peak lr of the cosine decay
    weight_decay: float = 0.0  # L2 in Adam
    continuous_weight: float = 10.0  # MSE is on 0..1 targets: scale it up to the BCE/CE level
    id_weight: float = 1.0  # weight of the InfoNCE identity loss
    temperature: float = 0.1  # InfoNCE temperature
    translate: int = 3  # random shift of each view, in pixels (0 = off)
    blur_prob: float = 0.5  # probability of softening a view by resampling through a lower resolution
    blur_scale: float = 0.7  # smallest relative resolution of that resampling
    noise_std: float = 0.03  # largest standard deviation of the added Gaussian noise (0 = off)
    threads: int = 0  # torch.set_num_threads on CPU (0 = leave torch's default)
    eval_n: int = 0  # at the end, evaluate on this many held-out faces and write eval.json (0 = off)

    RUN_ONLY: ClassVar[frozenset[str]] = LoopConfig.RUN_ONLY | {"threads", "eval_n"}  # not the weights


PRESETS: dict[str, dict] = {
    "sfn64": dict(out_dir="runs/sfn64", checkpoint_every=250, eval_n=2000),
    # A few steps of a tiny network at 32x32: for tests.
    "tiny": dict(
        out_dir="runs/sfn_tiny",
        size=32,
        widths="4,8",
        pool=2,
        hidden=16,
        embed_dim=8,
        batch_size=4,
        total_steps=4,
        warmup_steps=1,
        checkpoint_every=2,
        log_every=1,
    ),
}


def preset(name: str, **overrides) -> SFNTrainConfig:
    return from_preset(SFNTrainConfig, PRESETS, name, "SFN", **overrides)


def model_config(cfg: SFNTrainConfig) -> SFNConfig:
    try:
        widths = tuple(int(w) for w in str(cfg.widths).split(",") if w.strip())
    except ValueError:
        raise ValueError(
            f"widths must be comma-separated integers like '32,64', got {cfg.widths!r}"
        ) from None
    return SFNConfig(size=cfg.size, widths=widths, pool=cfg.pool, hidden=cfg.hidden, embed_dim=cfg.embed_dim)


# ---------------------------------------------------------------------------------------------------------
# Data


def _targets(factors: dict) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.asarray(v)) for k, v in factors.items()}
    out["_eye_color_visible"] = torch.from_numpy(sf.observable(factors)["eye_color"])
    return out


def _shift(images: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by a random integer offset in [-pixels, pixels]^2 (replicate padding)."""
    if pixels <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    off = torch.randint(0, 2 * pixels + 1, (n, 2), generator=gen)
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(off.tolist())])


def _soften(images: torch.Tensor, prob: float, min_scale: float, gen: torch.Generator) -> torch.Tensor:
    """Resample each image, with probability ``prob``, through a random resolution ``U(min_scale, 1) * S``."""
    if prob <= 0:
        return images
    n, _, h, w = images.shape
    pick = (torch.rand(n, generator=gen) < prob).tolist()
    scale = (min_scale + (1 - min_scale) * torch.rand(n, generator=gen)).tolist()
    out = images.clone()
    for i in range(n):
        small = (max(2, round(h * scale[i])), max(2, round(w * scale[i])))
        if pick[i] and small != (h, w):
            low = F.interpolate(images[i : i + 1], size=small, mode="bilinear", antialias=True)
            out[i] = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


def augment(images: torch.Tensor, cfg: SFNTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Shift, soften and add noise (see the module docstring); randomness only from ``gen``."""
    images = _shift(images, cfg.translate, gen)
    images = _soften(images, cfg.blur_prob, cfg.blur_scale, gen)
    if cfg.noise_std > 0:
        std = cfg.noise_std * torch.rand(images.shape[0], 1, 1, 1, generator=gen)
        images = images + std * torch.randn(images.shape, generator=gen)
    return images


def training_batch(cfg: SFNTrainConfig, step: int, rank: int = 0, world_size: int = 1):
    """(images [2B, 3, S, S], targets {factor: [2B]}) of this process at ``step``: B faces then their
    positives. A pure function of ``(cfg, step, rank)``."""
    b = cfg.batch_size
    start = (step * world_size + rank) * b
    idx = np.arange(start, start + b)
    anchor, positive = identity_pairs(cfg.data_seed, idx, cfg.data_seed + NUISANCE_SEED_OFFSET)
    both = {k: np.concatenate([anchor[k], positive[k]]) for k in sf.FACTOR_NAMES}
    images = torch.from_numpy(sf.render(both, cfg.size)[0])
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start)
    return augment(images, cfg, gen), _targets(both)


# ---------------------------------------------------------------------------------------------------------
# Losses


def info_nce(embedding: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over ``2B`` embeddings where rows ``i`` and ``i + B`` are the two views of one face."""
    z = F.normalize(embedding, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def sfn_losses(model: SFN, out: dict, targets: dict, cfg: SFNTrainConfig) -> dict[str, torch.Tensor]:
    mc = model.cfg
    dev = out["embedding"].device
    t = {k: v.to(dev) for k, v in targets.items()}
    bce = torch.stack([F.binary_cross_entropy_with_logits(out[n], t[n].float()) for n in mc.binary]).mean()
    mse = []
    for name, lo, hi in mc.continuous:
        err = (out[name] - (t[name].float() - lo) / (hi - lo)).pow(2)
        if name == "eye_color":
            mask = t["_eye_color_visible"].float()
            mse.append((err * mask).sum() / mask.sum().clamp_min(1))
        else:
            mse.append(err.mean())
    mse = torch.stack(mse).mean()
    ce = torch.stack([F.cross_entropy(out[n], t[n].long()) for n, _ in mc.categorical]).mean()
    nce = info_nce(out["embedding"], cfg.temperature)
    total = bce + cfg.continuous_weight * mse + ce + cfg.id_weight * nce
    return {"loss": total, "bce": bce, "mse": mse, "ce": ce, "nce": nce}


def learning_rate(cfg: SFNTrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio`` at ``total_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    t = min(max(t, 0.0), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


# ---------------------------------------------------------------------------------------------------------
# Training


def train(cfg: SFNTrainConfig) -> dict:
    """Train (or resume) SFN; writes ``training_state.pt``, ``sfn.pt`` (fp32) and, if ``eval_n``,
    ``eval.json`` into ``cfg.out_dir``. Returns the final step and losses (and the evaluation)."""
    procs = begin(cfg)
    dev = procs.device
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    # Default (contiguous) memory format: channels-last corrupted the heap in backward with oneDNN's AVX2
    # kernels (torch 2.14.1, CPUs without AVX-512); tests/test_native_paths.py runs this trainer under AVX2.
    model = SFN(model_config(cfg)).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    seed_everything(cfg.seed, procs.rank)
    # wall_s: training seconds summed over all sessions of this run
    step, wall_s, _ = restore(cfg, procs.rank, {"model": model}, {"opt": opt})

    t0 = time.perf_counter() - wall_s
    world_batch = 2 * cfg.batch_size * procs.world_size
    bar = Progress(cfg.total_steps, step, world_batch, cfg.progress and procs.is_main, "train sfn")
    losses: dict[str, float] = {}

    def checkpoint() -> None:
        wall = round(time.perf_counter() - t0, 1)
        save_training_state(
            cfg.out_dir,
            dict(
                config=cfg.to_dict(),
                step=step,
                model=model.state_dict(),
                opt=opt.state_dict(),
                wall_s=wall,
            ),
            procs.rank,
        )
        if procs.is_main:
            images = step * world_batch
            save_sfn(f"{cfg.out_dir}/sfn.pt", model, half=False, step=step, images_seen=images, wall_s=wall)

    while step < cfg.total_steps:
        images, targets = training_batch(cfg, step, procs.rank, procs.world_size)
        images = images.to(dev)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        terms = sfn_losses(model, model(images), targets, cfg)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        procs.average_gradients(model.parameters())
        opt.step()
        step += 1
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            losses = {k: v.item() for k, v in terms.items()}
        bar.update(losses if step % cfg.log_every == 0 else None)
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            checkpoint()
    bar.close()
    result: dict = {"step": step, "wall_s": round(time.perf_counter() - t0, 1), **losses}
    if procs.is_main and cfg.eval_n > 0:
        result["eval"] = evaluate_sfn(model.eval(), n=cfg.eval_n, json_path=f"{cfg.out_dir}/eval.json")
    procs.barrier()
    procs.close()
    return result
