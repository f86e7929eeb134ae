"""StyleGAN2 training (Karras et al. 2020): non-saturating logistic loss, lazy R1 (Mescheder et al. 2018),
path-length regularisation (Sec. 3.2), style mixing, EMA generator, Adam(0, 0.99) with the lazy-regularisation
correction of the learning rate and betas (Sec. 4 and App. B of StyleGAN2)."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..checkpoints import (
    TRAINING_RECORD,
    CheckpointError,
    build_checked,
    load_discriminator,
    load_generator,
    save_discriminator,
    save_generator,
)
from ..configs import config_from_dict
from ..models.stylegan2 import Discriminator, Generator
from .loop import (
    PRECISIONS,
    LoopConfig,
    Processes,
    Progress,
    autocast,
    begin,
    ema_update,
    from_preset,
    keep_snapshot,
    load_states,
    read_training_state,
    requires_grad,
    restore,
    save_training_state,
    seed_everything,
    state_path,
)


@dataclass
class GANConfig(LoopConfig):
    """StyleGAN2 training settings; defaults are the ``synthfaces64`` preset."""

    out_dir: str = "runs/gan"
    data: str = "synthfaces"  # "synthfaces" or a folder / .zip of images
    data_seed: int = 0  # SynthFaces seed (held-out evaluation uses other seeds)
    size: int = 64  # image resolution
    style_dim: int = 128  # dimension of z and w
    n_mlp: int = 4  # mapping network depth
    channel_multiplier: float = 0.125  # channels = min(channel_max, 16384 * channel_multiplier / res)
    channel_max: int = 128  # upper bound of the channels at any resolution
    batch_size: int = 16
    total_steps: int = 100000
    lr: float = 0.0025  # Adam learning rate of G and D (betas 0, 0.99)
    r1_gamma: float = 0.05  # R1 weight gamma (StyleGAN2-ADA 'auto': 0.0002 * res^2 / batch)
    r1_every: int = 16  # lazy R1 interval
    pl_weight: float = 2.0  # path-length weight
    pl_every: int = 4  # lazy path-length interval
    pl_batch_shrink: int = 2  # the path-length batch is batch_size / pl_batch_shrink
    mixing_prob: float = 0.9  # probability of style mixing (two w at a random crossover layer)
    ema_kimg: float = 10.0  # EMA half-life in thousands of images
    ema_rampup: float = 0.05  # half-life <= rampup * images seen (0 = off)
    mbstd_group: int = 4  # minibatch-stddev group size of D
    xflip: bool = False  # random horizontal flips of real images
    precision: str = "fp32"  # "bf16": autocast the main G / D passes (R1 and path length stay fp32)
    init: str = ""  # branch off a run (folder / training_state.pt) or an exported model (name / folder)
    sample_every: int = 1000  # steps between sample grids written to out_dir
    snapshot_every: int = 0  # steps between kept copies of the checkpoint in out_dir/snapshots/ (0 = none)

    # fields that do not change the weights
    RUN_ONLY: ClassVar[frozenset[str]] = LoopConfig.RUN_ONLY | {"sample_every", "snapshot_every"}
    NUMERICS: ClassVar[frozenset[str]] = frozenset({"precision"})  # may be switched when resuming

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"GANConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")


PRESETS: dict[str, dict] = {
    "synthfaces64": {},
    # For users with FFHQ at 256x256 and a GPU: StyleGAN2-ADA 'paper256'-like settings.
    "ffhq256": dict(
        out_dir="runs/ffhq256",
        data="",
        size=256,
        style_dim=512,
        n_mlp=8,
        channel_multiplier=1,
        channel_max=512,
        batch_size=64,
        total_steps=390_000,
        lr=0.0025,
        r1_gamma=1.0,
        ema_kimg=20.0,
        ema_rampup=0.0,
        mbstd_group=8,
        xflip=True,
        sample_every=5000,
    ),
    # A few channels at 32x32: for tests and the live demo in notebook 01.
    "tiny": dict(
        out_dir="runs/tiny",
        size=32,
        style_dim=16,
        n_mlp=2,
        channel_multiplier=0.125,
        channel_max=16,
        batch_size=4,
        total_steps=20,
        r1_every=2,
        pl_every=2,
        ema_kimg=0.1,
        checkpoint_every=10,
        sample_every=0,
        log_every=1,
    ),
}


def preset(name: str, **overrides) -> GANConfig:
    return from_preset(GANConfig, PRESETS, name, "GAN", **overrides)


class RealImages:
    """Real batches as a pure function of the step: SynthFaces indices or a seeded per-epoch permutation."""

    def __init__(self, cfg: GANConfig, rank: int, world_size: int) -> None:
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        if cfg.data == "synthfaces":
            from ..data.synthfaces import SynthFaces

            self.dataset = SynthFaces(size=cfg.size, seed=cfg.data_seed, length=2**62)
        else:
            if not cfg.data:
                raise ValueError("GANConfig.data is empty: give 'synthfaces' or a folder / .zip of images")
            from ..data.images import ImageFolderDataset

            self.dataset = ImageFolderDataset(cfg.data, size=cfg.size)

    def batch(self, step: int) -> torch.Tensor:
        """Images [batch_size, 3, size, size] in [-1, 1] for this process at ``step``."""
        b = self.cfg.batch_size
        start = (step * self.world_size + self.rank) * b
        if self.cfg.data == "synthfaces":
            images = self.dataset.get_batch(range(start, start + b))["image"]
        else:
            n = len(self.dataset)
            idx = []
            for j in range(start, start + b):
                epoch, pos = divmod(j, n)
                perm = torch.randperm(
                    n, generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
                )
                idx.append(int(perm[pos]))
            images = torch.stack([self.dataset[i]["image"] for i in idx])
        images = torch.as_tensor(images, dtype=torch.float32)
        if self.cfg.xflip:
            flip = torch.rand(b, generator=torch.Generator().manual_seed(start)) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images


def build_models(cfg: GANConfig) -> tuple[Generator, Discriminator]:
    G = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier, cfg.channel_max)
    D = Discriminator(cfg.size, cfg.channel_multiplier, cfg.channel_max, stddev_group=cfg.mbstd_group)
    return G, D


def load_run_generator(run: str | os.PathLike, which: str = "G") -> Generator:
    """The raw generator ``"G"`` (or ``"G_ema"``) of a GAN run, from its ``training_state.pt`` (the file or
    its run folder), in eval mode on the CPU; ``G.training_record`` holds the step (and images seen). The raw
    G shows where training is now; G_ema (what ``generator.pt`` holds) lags it by about ``ema_kimg`` thousand
    images."""
    if which not in ("G", "G_ema"):
        raise ValueError(f"which must be 'G' or 'G_ema', got {which!r}")
    state = read_training_state(run)
    if "G" not in state or "config" not in state:
        raise CheckpointError(f"{run}: a training state without a generator; not a GAN run")
    known = {f.name for f in dataclasses.fields(GANConfig)}
    cfg = config_from_dict(GANConfig, {k: v for k, v in state["config"].items() if k in known})
    G = build_checked(lambda: build_models(cfg)[0], state[which], run, "GAN run's generator", state["config"])
    G.load_state_dict(state[which])
    G.training_record = {k: int(state[k]) for k in TRAINING_RECORD if k in state}
    return G.eval()


ARCHITECTURE = ("size", "style_dim", "n_mlp", "channel_multiplier", "channel_max")


def branch_from(cfg: GANConfig, G, D, G_ema, g_opt, d_opt) -> dict:
    """Start a run as a branch of ``cfg.init``: G, D, G_ema, Adam moments, path-length mean and step from that
    run's training state, everything else (learning rate, regularisation, EMA, batch, ...) from ``cfg``. The
    step count carries on, so a branch's checkpoints and data order line up with its parent's.

    ``cfg.init`` may also be an exported model, a pretrained name (``"synthfaces64"``) or a folder holding
    ``generator.pt`` and ``discriminator.pt``: then G and G_ema start from its G_ema, D from its D, Adam
    afresh, and the step from the generator's training record (fine-tuning a bundled model)."""
    path = Path(cfg.init)
    if path.is_file() or state_path(path).is_file():
        state = read_training_state(path)
        parent = state.get("config", {})
    else:
        state = exported_state(cfg.init)
        parent = state["generator_config"]
    if differ := {
        k: (parent.get(k), getattr(cfg, k)) for k in ARCHITECTURE if parent.get(k) != getattr(cfg, k)
    }:
        raise CheckpointError(
            f"init {cfg.init}: the parent run has another architecture {differ} (parent, now)"
        )
    optimizers = dict(g_opt=g_opt, d_opt=d_opt) if "g_opt" in state else {}
    load_states(state, dict(G=G, D=D, G_ema=G_ema), optimizers, keep_hyperparameters=True)
    return state


def exported_state(ref: str) -> dict:
    """The training-state entries an exported G_ema / D pair supplies (``ref``: a pretrained name or a folder
    with ``generator.pt`` and ``discriminator.pt``): G and G_ema both from G_ema, step and images seen from
    the generator's record (step 0 when it has none), path-length mean 0."""
    G_ema, D = load_generator(ref), load_discriminator(ref)
    sd = G_ema.state_dict()
    entries = dict(generator_config=G_ema.config, G=sd, G_ema=sd, D=D.state_dict(), pl_mean=0.0)
    return {"step": 0, **G_ema.training_record, **entries}


def lazy_adam(params, lr: float, every: int) -> torch.optim.Adam:
    """Adam(0, 0.99) with the lazy-regularisation correction c = every / (every + 1)."""
    c = every / (every + 1) if every > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(0.0, 0.99**c), eps=1e-8)


def r1_penalty(D: Discriminator, real: torch.Tensor) -> torch.Tensor:
    """sum over pixels of |grad_x D(x)|^2 on real images, averaged over the batch."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def discriminator_step(
    D: Discriminator,
    d_opt: torch.optim.Optimizer,
    procs: Processes,
    real: torch.Tensor,
    fake: torch.Tensor,
    r1_gamma: float,
    r1_every: int,
    d_step: int,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One D update on the non-saturating loss ``softplus(D(fake)) + softplus(-D(real))`` (``fake`` carries no
    graph to G), then, when ``d_step`` is a multiple of ``r1_every`` (> 0), the lazy R1 update
    ``r1_gamma / 2 * R1 * r1_every`` on the reals (always fp32; ``precision`` applies to the main loss).
    Returns (D loss, R1 penalty or None)."""
    with autocast(precision, real.device):
        logits_fake, logits_real = D(fake).float(), D(real).float()
    d_loss = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    procs.average_gradients(D.parameters())
    d_opt.step()
    r1 = None
    if r1_every > 0 and d_step % r1_every == 0:
        r1 = r1_penalty(D, real)
        d_opt.zero_grad(set_to_none=True)
        (r1_gamma / 2 * r1 * r1_every).backward()
        procs.average_gradients(D.parameters())
        d_opt.step()
    return d_loss, r1


def path_lengths(G: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """|J_w^T y| for y ~ N(0, I) / sqrt(H W): the per-sample path length of Eq. 4."""
    img = G.synthesis(w_plus, noise_mode="random")
    y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * y).sum(), w_plus, create_graph=True)
    return grad.pow(2).sum(2).mean(1).sqrt()


def train(cfg: GANConfig) -> dict:
    """Train (or resume); return the final losses and their history. Writes training_state.pt, generator.pt,
    discriminator.pt (G_ema and D in the ganinv format) and sample grids into ``cfg.out_dir``, and every
    ``cfg.snapshot_every`` steps a kept copy of those three files in ``snapshots/step_NNNNNN/`` (for
    ``ganinv eval gan`` and ``--init`` branches at a fixed step while the run goes on)."""
    procs = begin(cfg)
    dev = procs.device
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    G, D = build_models(cfg)
    G, D = G.to(dev).train(), D.to(dev).train()
    G_ema = copy.deepcopy(G).eval()
    requires_grad(G_ema, False)
    g_opt, d_opt = (
        lazy_adam(G.parameters(), cfg.lr, cfg.pl_every),
        lazy_adam(D.parameters(), cfg.lr, cfg.r1_every),
    )
    pl_mean = torch.zeros((), device=dev)
    seed_everything(cfg.seed, procs.rank)
    step, _, state = restore(cfg, procs.rank, dict(G=G, D=D, G_ema=G_ema), dict(g_opt=g_opt, d_opt=d_opt))
    if state is None and cfg.init:
        state = branch_from(cfg, G, D, G_ema, g_opt, d_opt)
        step = int(state["step"])
    if state is not None:
        pl_mean.fill_(float(state["pl_mean"]))

    data = RealImages(cfg, procs.rank, procs.world_size)
    world_batch = cfg.batch_size * procs.world_size
    images_seen = int(state.get("images_seen", step * world_batch)) if state is not None else 0
    sample_z = torch.randn(16, cfg.style_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(dev)
    bar = Progress(cfg.total_steps, step, world_batch, cfg.progress and procs.is_main, "train gan")
    losses: dict[str, float] = {}
    history: list[dict[str, float]] = []  # losses every log_every steps (for plots)

    def checkpoint() -> list[Path]:
        """Write this process's training state (and, on the main process, G_ema and D); the files written."""
        written = save_training_state(
            cfg.out_dir,
            dict(
                config=cfg.to_dict(),
                step=step,
                G=G.state_dict(),
                D=D.state_dict(),
                G_ema=G_ema.state_dict(),
                g_opt=g_opt.state_dict(),
                d_opt=d_opt.state_dict(),
                pl_mean=float(pl_mean),
                images_seen=images_seen,
            ),
            procs.rank,
        )
        if not procs.is_main:
            return [written]
        G_ema.w_avg.fill_(float("nan"))
        G_ema.get_w_avg()  # store the truncation centre of the current weights
        exports = Path(cfg.out_dir, "generator.pt"), Path(cfg.out_dir, "discriminator.pt")
        save_generator(exports[0], G_ema, step=step, images_seen=images_seen)
        save_discriminator(exports[1], D, step=step, images_seen=images_seen)
        return [written, *exports]

    while step < cfg.total_steps:
        real = data.batch(step).to(dev)
        z = torch.randn(cfg.batch_size, cfg.style_dim, device=dev)

        # Discriminator: softplus(D(G(z))) + softplus(-D(x)), plus lazy R1 every r1_every steps.
        requires_grad(G, False)
        requires_grad(D, True)
        with torch.no_grad(), autocast(cfg.precision, dev):
            fake = G.synthesis(G.random_mixing_w_plus(z, cfg.mixing_prob), noise_mode="random").float()
        d_loss, r1 = discriminator_step(
            D, d_opt, procs, real, fake, cfg.r1_gamma, cfg.r1_every, step, cfg.precision
        )
        losses["d"] = d_loss.item()
        if r1 is not None:
            losses["r1"] = r1.item()

        # Generator: softplus(-D(G(z))), plus lazy path-length regularisation every pl_every steps.
        requires_grad(G, True)
        requires_grad(D, False)
        with autocast(cfg.precision, dev):
            fake = G.synthesis(G.random_mixing_w_plus(z, cfg.mixing_prob), noise_mode="random")
            logits = D(fake).float()
        g_loss = F.softplus(-logits).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        procs.average_gradients(G.parameters())
        g_opt.step()
        losses["g"] = g_loss.item()
        if cfg.pl_every > 0 and cfg.pl_weight > 0 and step % cfg.pl_every == 0:
            n = max(1, cfg.batch_size // cfg.pl_batch_shrink)
            w_plus = G.random_mixing_w_plus(torch.randn(n, cfg.style_dim, device=dev), cfg.mixing_prob)
            lengths = path_lengths(G, w_plus)
            pl_mean.copy_(pl_mean.lerp(procs.mean(lengths.mean().detach()), 0.01))
            pl_penalty = (lengths - pl_mean).pow(2).mean()
            g_opt.zero_grad(set_to_none=True)
            (cfg.pl_weight * cfg.pl_every * pl_penalty).backward()
            procs.average_gradients(G.parameters())
            g_opt.step()
            losses["pl"] = pl_penalty.item()

        # EMA of the generator weights, half-life ema_kimg thousand images (ramped up early in training).
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup > 0:
            ema_nimg = min(ema_nimg, (step + 1) * world_batch * cfg.ema_rampup)
        ema_update(G_ema, G, 0.5 ** (world_batch / max(ema_nimg, 1e-8)))

        step += 1
        images_seen += world_batch
        if step % cfg.log_every == 0:
            history.append({"step": step, **losses})
        bar.update(losses if step % cfg.log_every == 0 else None)
        snapshot = cfg.snapshot_every > 0 and step % cfg.snapshot_every == 0
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps or snapshot:
            written = checkpoint()
            if procs.is_main and snapshot:
                keep_snapshot(cfg.out_dir, step, written)
        if procs.is_main and cfg.sample_every > 0 and step % cfg.sample_every == 0:
            from ..data.images import save_image

            with torch.no_grad():
                save_image(G_ema(sample_z).cpu(), f"{cfg.out_dir}/samples_{step:06d}.png", nrow=8)
    bar.close()
    procs.barrier()
    procs.close()
    return {"step": step, **losses, "history": history}
