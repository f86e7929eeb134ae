"""Training of CLCAE stage 1 (``ganinv/models/contrastive.py``); its held-out retrieval evaluation, run at the
end of a run, is :func:`ganinv.eval.retrieval.evaluate_retrieval`.

Pairs ``(G(w), w)`` are made on the fly by a frozen generator (:mod:`ganinv.data.pairs`): ``z ~ N(0, I)``,
``w = mapping(z)`` (optionally truncated), ``I = G(w)`` with per-layer noise (``noise_mode``), average-pooled
to the encoder's image size. The z and noise of process ``rank`` at ``step`` come from a ``torch.Generator``
seeded by ``(TRAIN_STREAM, data_seed, step * world_size + rank)``, so the data are a pure function of the step
and a resumed run sees exactly the batches an uninterrupted one would. Held-out pairs use another stream
(``EVAL_STREAM``), so they never coincide with training pairs whatever the seeds. The release trained on a
fixed set of 100K pairs; fresh pairs every step are the same distribution without a finite pool.

Adam (the paper; the release uses two Ranger optimisers, one per encoder, which is the same as one Adam
here since Adam has no cross-parameter state) with a linear warm-up and cosine decay instead of the
release's ReduceLROnPlateau. After each step the temperature is clamped (see the model's docstring).
Under ``torchrun`` the embeddings of all processes are gathered so that negatives are the global batch; as
in the release, remote embeddings carry no gradient.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from ..checkpoints import CheckpointError, load_generator, save_generator
from ..common import write_json
from ..data.pairs import TRAIN_STREAM, make_pairs, pair_seed
from ..eval.retrieval import evaluate_retrieval
from ..models.contrastive import (
    ContrastiveAligner,
    ContrastiveModelConfig,
    info_nce,
    save_contrastive,
    top_k_accuracy,
)
from ..models.encoders import EncoderConfig
from ..models.stylegan2 import Generator
from .loop import (
    LoopConfig,
    Processes,
    Progress,
    begin,
    from_preset,
    restore,
    save_training_state,
    seed_everything,
)

TINY_RANDOM = "tiny-random"  # generator name: a randomly initialised 32 px generator (tests, demos)


@dataclass
class ContrastiveConfig(LoopConfig):
    """Stage-1 training settings; defaults are the ``synthfaces64`` preset."""

    out_dir: str = "runs/contrastive"
    generator: str = "synthfaces64"  # bundled name, checkpoint path, or "tiny-random"
    data_seed: int = 0  # seeds the z and noise of the training pairs
    truncation: float = 1.0  # psi of the training pairs (the release's value is unknown)
    noise_mode: str = "random"  # per-layer noise of G(w): "random", "const" or "none"
    image_size: int = 0  # encoder input size; 0 = G.size, else G's images are average-pooled to it
    backbone: str = "small"  # h_I trunk: "tiny", "small" or "ir_se50" (ganinv.models.encoders.BACKBONES)
    latent_blocks: int = 3  # residual blocks of h_w
    latent_ffn: int = 0  # h_w feed-forward width; 0 = 2 * style_dim
    embed_dim: int = 0  # joint embedding dimension; 0 = style_dim
    dropout: float = 0.1  # dropout in h_w (release: 0.1)
    temperature: float = 0.07  # initial temperature
    min_temperature: float = 0.01  # lower clamp of the learnable temperature
    learn_temperature: bool = True  # learn the InfoNCE temperature (else keep it fixed)
    batch_size: int = 256  # pairs per process and step (the paper: 256)
    total_steps: int = 3000  # a 200-step, 64-pair run already retrieves ~95% top-1 of 500 held-out pairs
    checkpoint_every: int = 250
    lr: float = 3e-4  # peak Adam learning rate
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.05  # final lr / peak lr of the cosine decay
    weight_decay: float = 0.0  # L2 in Adam
    threads: int = 0  # torch.set_num_threads on CPU (0 = torch's default)
    eval_n: int = 1000  # at the end, retrieval on this many held-out pairs -> eval.json (0 = off)

    RUN_ONLY: ClassVar[frozenset[str]] = LoopConfig.RUN_ONLY | {"threads", "eval_n"}  # not the weights


PRESETS: dict[str, dict] = {
    "synthfaces64": {},
    # The release's setting for a 1024 px FFHQ generator: IR-SE50 at 256 px, 32 pairs x 8 processes.
    "ffhq": dict(
        out_dir="runs/contrastive_ffhq",
        generator="",
        image_size=256,
        backbone="ir_se50",
        batch_size=32,
        lr=1e-4,
        total_steps=100_000,
        checkpoint_every=2500,
    ),
    # A few steps of tiny networks on a random 32 px generator: for tests.
    "tiny": dict(
        out_dir="runs/contrastive_tiny",
        generator=TINY_RANDOM,
        backbone="tiny",
        latent_blocks=1,
        embed_dim=16,
        batch_size=8,
        total_steps=4,
        lr=1e-3,
        warmup_steps=1,
        checkpoint_every=2,
        log_every=1,
        eval_n=0,
    ),
}


def preset(name: str, **overrides) -> ContrastiveConfig:
    return from_preset(ContrastiveConfig, PRESETS, name, "contrastive", **overrides)


def build_generator(spec: str, seed: int = 0) -> Generator:
    """The frozen generator of the pairs: ``"tiny-random"`` (32 px, style_dim 16, initialised from ``seed``),
    a bundled name or a checkpoint path."""
    if spec == TINY_RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            G = Generator(32, 16, 2, channel_multiplier=0.125, channel_max=16)
    elif not spec:
        raise ValueError("no generator given: pass --generator (a bundled name or a checkpoint path)")
    else:
        try:
            G = load_generator(spec)
        except CheckpointError as e:
            raise CheckpointError(
                f"{e}. Stage 1 learns from (G(w), w) pairs of this generator: train one with "
                "`ganinv train gan`, or pass --generator PATH"
            ) from None
    return G.eval().requires_grad_(False)


def export_generator(spec: str, G: Generator, out_dir: str | os.PathLike, is_main: bool = True) -> str:
    """How a run's exports name their generator: ``spec``, except that "tiny-random" (made from a seed,
    not loadable by that name) is saved as ``out_dir/generator.pt`` (by the main process) and named by that
    path."""
    if spec != TINY_RANDOM:
        return spec
    path = str(Path(out_dir) / "generator.pt")
    if is_main:
        save_generator(path, G)
    return path


def model_config(cfg: ContrastiveConfig, G: Generator) -> ContrastiveModelConfig:
    d = G.style_dim
    return ContrastiveModelConfig(
        backbone=EncoderConfig.preset(cfg.backbone, size=cfg.image_size or G.size),
        style_dim=d,
        latent_blocks=cfg.latent_blocks,
        latent_ffn=cfg.latent_ffn or 2 * d,
        embed_dim=cfg.embed_dim or d,
        dropout=cfg.dropout,
        temperature=cfg.temperature,
        min_temperature=cfg.min_temperature,
        learn_temperature=cfg.learn_temperature,
    )


def build_model(cfg: ContrastiveConfig, G: Generator) -> ContrastiveAligner:
    """The untrained model of ``cfg`` (weights from the global RNG, averages from ``G``)."""
    return ContrastiveAligner.from_generator(G, model_config(cfg, G))


# ---------------------------------------------------------------------------------------------------------
# Pairs


def training_pairs(G: Generator, cfg: ContrastiveConfig, size: int, step: int, rank: int = 0, world: int = 1):
    """The pairs of process ``rank`` at ``step``."""
    seed = pair_seed(TRAIN_STREAM, cfg.data_seed, step * world + rank)
    return make_pairs(G, cfg.batch_size, seed, size, cfg.truncation, cfg.noise_mode)


def learning_rate(cfg: ContrastiveConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(max((step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps), 0.0), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _gather(x: torch.Tensor, procs: Processes) -> torch.Tensor:
    """Concatenate ``x`` over processes; only the local part keeps its gradient (as the release)."""
    if procs.world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(procs.world_size)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    parts[procs.rank] = x
    return torch.cat(parts)


@torch.no_grad()
def _average_buffers(model: torch.nn.Module, procs: Processes) -> None:
    if procs.world_size > 1:
        for b in model.buffers():
            if b.is_floating_point():
                b.copy_(procs.mean(b))


# ---------------------------------------------------------------------------------------------------------
# Training


def train(cfg: ContrastiveConfig) -> dict:
    """Train (or resume) stage 1; writes ``training_state.pt``, ``contrastive.pt`` (fp32; plus
    ``generator.pt`` for "tiny-random") and, if ``eval_n``, ``eval.json`` into ``cfg.out_dir``."""
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (in-batch negatives), got {cfg.batch_size}")
    procs = begin(cfg)
    dev = procs.device
    G = build_generator(cfg.generator, cfg.seed).to(dev)
    G.get_w_avg()
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    model = build_model(cfg, G).to(dev).train()
    size = model.image_size
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    seed_everything(cfg.seed, procs.rank)
    step, wall_s, _ = restore(cfg, procs.rank, {"model": model}, {"opt": opt})
    generator_ref = export_generator(cfg.generator, G, cfg.out_dir, procs.is_main)

    t0 = time.perf_counter() - wall_s
    world_batch = cfg.batch_size * procs.world_size
    bar = Progress(
        cfg.total_steps, step, world_batch, cfg.progress and procs.is_main, "train contrastive", "pairs/s"
    )
    logs: dict[str, float] = {}
    history: list[dict[str, float]] = []  # logs every log_every steps (for plots)

    def checkpoint() -> None:
        _average_buffers(model, procs)  # BatchNorm statistics differ between processes: keep their mean
        wall = round(time.perf_counter() - t0, 1)
        state = dict(config=cfg.to_dict(), step=step, model=model.state_dict(), opt=opt.state_dict())
        save_training_state(cfg.out_dir, {**state, "wall_s": wall}, procs.rank)
        if procs.is_main:
            save_contrastive(
                f"{cfg.out_dir}/contrastive.pt",
                model,
                generator=generator_ref,
                step=step,
                pairs_seen=step * world_batch,
                wall_s=wall,
            )

    while step < cfg.total_steps:
        images, w = training_pairs(G, cfg, size, step, procs.rank, procs.world_size)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        e_image = _gather(model.embed_image(images), procs)  # [world_batch, embed_dim]
        e_latent = _gather(model.embed_latent(w), procs)
        out = info_nce(e_image, e_latent, model.temperature)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        procs.average_gradients(model.parameters())
        opt.step()
        model.clamp_temperature_()
        step += 1
        log = step % cfg.log_every == 0 or step == cfg.total_steps
        if log:
            acc = top_k_accuracy(out.logits.detach(), 1)
            logs = {"loss": out.loss.item(), "acc": sum(acc) / 2, "tau": model.temperature.item()}
            history.append({"step": step, **logs})
        bar.update(logs if log else None)
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            checkpoint()
    bar.close()
    result: dict = {"step": step, "wall_s": round(time.perf_counter() - t0, 1), **logs, "history": history}
    if procs.is_main and cfg.eval_n > 0:
        ev = evaluate_retrieval(model, G, n=cfg.eval_n, truncation=cfg.truncation, noise_mode=cfg.noise_mode)
        result["eval"] = ev
        write_json({**ev, "generator": generator_ref, "step": step}, Path(cfg.out_dir) / "eval.json")
    procs.barrier()
    procs.close()
    return result
