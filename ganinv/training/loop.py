"""The loop every trainer shares: config base class, device and processes, RNG state, atomic training
checkpoints with exact resume, a progress bar, and gradient averaging across ``torchrun`` processes.

Resume contract: a run stopped after a checkpoint at step k and resumed continues with the same weights,
optimiser state, RNG state and data order as an uninterrupted run, so both give identical weights at step N.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..checkpoints import CheckpointError, atomic_save, check_torch_file
from ..configs import config_from_dict
from ..devices import resolve_device

STATE_FILE = "training_state.pt"
SNAPSHOT_DIR = "snapshots"  # kept copies of checkpoints: out_dir/snapshots/step_NNNNNN/


@dataclass
class LoopConfig:
    """Fields every trainer has (trainers subclass this)."""

    out_dir: str = "runs/run"  # where training_state.pt, exported checkpoints and samples go
    total_steps: int = 1000  # optimisation steps (each sees batch_size * world_size samples)
    batch_size: int = 8  # per process
    seed: int = 0  # seeds model init, data order and noise
    device: str = "auto"  # "auto" = cuda:<local rank> when available, else cpu
    checkpoint_every: int = 500  # steps between atomic training checkpoints (and at the end)
    log_every: int = 10  # steps between progress-bar updates of the losses
    resume: bool = False  # continue from out_dir/training_state.pt when it exists
    overwrite: bool = False  # start over in an out_dir that holds a run (its training state is replaced)
    progress: bool = True  # show a tqdm progress bar (main process only)

    # Fields that steer a run (length, logging, checkpoints, device) but never change the trained weights: a
    # resumed run may give them other values. Trainers add their own (e.g. ``threads``, ``eval_n``).
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "out_dir",
            "total_steps",
            "device",
            "checkpoint_every",
            "log_every",
            "resume",
            "overwrite",
            "progress",
        }
    )
    # Fields that change only the arithmetic (e.g. a GAN's ``precision``), not the model or the objective: a
    # resumed run may switch them, with a warning, and is from then on not bit-identical to an unswitched run.
    NUMERICS: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Refuse, before any work, what would fail later or throw a run away: counts below 1, an unknown
        or absent device, an ``out_dir`` that is a file, and an ``out_dir`` holding a run that is neither
        resumed nor explicitly overwritten."""
        for name in ("total_steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        resolve_device(self.device)
        out = Path(self.out_dir)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out_dir {out} is a file, not a folder: choose another --out-dir")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite contradict each other: choose one")
        if state_path(out).exists() and not (self.resume or self.overwrite):
            raise FileExistsError(
                f"{out} already holds a run ({STATE_FILE}): pass --resume true to continue it, --overwrite "
                "true to start over (its training state is replaced), or choose another --out-dir"
            )


PRECISIONS = ("fp32", "bf16")  # a trainer's ``precision`` field


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The mixed-precision context of a trainer's main forward passes: bfloat16 autocast for ``"bf16"`` (fast
    on GPUs and on CPUs with bf16 instructions, e.g. AVX512-BF16 / AMX), a no-op for ``"fp32"``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


_FIELD_COMMENT = re.compile(r"^    (\w+)\s*:[^=#]+=[^#]*#\s*(.+?)\s*$")


def field_docs(cls: type) -> dict[str, str]:
    """``{field: its trailing comment}`` from the source of config dataclass ``cls`` and its bases (the
    documented defaults, reused as ``--help`` texts); fields without a comment are left out."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # subclasses override their bases' texts
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_comments(klass))
    return docs


@functools.cache
def _own_field_comments(klass: type) -> dict[str, str]:
    """The field comments written in ``klass`` itself, read once per process (every ``ganinv`` command builds
    the trainers' option lists, the encoder one several times)."""
    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):  # defined without a source file (e.g. interactively)
        return {}
    return {m.group(1): m.group(2) for m in map(_FIELD_COMMENT.match, source.splitlines()) if m}


def from_preset(cls: type, presets: dict[str, dict], name: str, what: str, **overrides):
    """Config ``cls`` from the preset ``name`` with ``overrides``; a clear error for an unknown name."""
    if name not in presets:
        raise ValueError(f"unknown {what} preset {name!r}; choose one of {sorted(presets)}")
    return config_from_dict(cls, {**presets[name], **overrides})


def begin(cfg: LoopConfig) -> Processes:
    """Start a trainer's run: check ``cfg`` (:meth:`LoopConfig.check`), remove the temporary files that a
    save killed midway left in ``out_dir`` (main process), and set up the processes."""
    cfg.check()
    if int(os.environ.get("RANK", "0")) == 0 and Path(cfg.out_dir).is_dir():
        for leftover in Path(cfg.out_dir).glob(".*.tmp"):  # atomic_save's names: .<file>.<random>.tmp
            leftover.unlink(missing_ok=True)
    return Processes(cfg.device, getattr(cfg, "threads", 0))


class Processes:
    """Single process, or one of ``torchrun --nproc_per_node=N`` processes (gloo on CPU, nccl on GPU).

    Gradients are averaged by an explicit all-reduce after each backward (as NVIDIA's StyleGAN2-ADA does),
    which also works for the double-backward regularisers. ``threads`` > 0 sets this process's
    ``torch.set_num_threads`` first (a trainer's ``threads`` field; 0 leaves torch's default).
    """

    def __init__(self, device: str = "auto", threads: int = 0) -> None:
        if threads > 0:  # torch.set_num_threads of this process on CPU (0 = torch's default)
            torch.set_num_threads(threads)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device, local_rank)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        if self.world_size == 1:
            return
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.flatten() for p in params])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p))

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over processes."""
        if self.world_size == 1:
            return x
        x = x.clone()
        torch.distributed.all_reduce(x)
        return x / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def seed_everything(seed: int, rank: int = 0) -> None:
    random.seed(seed * 1000 + rank)
    torch.manual_seed(seed * 1000 + rank)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_path(out_dir: str | os.PathLike, rank: int = 0) -> Path:
    name = STATE_FILE if rank == 0 else f"training_state.rank{rank}.pt"
    return Path(out_dir) / name


def save_training_state(out_dir: str | os.PathLike, state: dict, rank: int = 0) -> Path:
    """Atomically write the training state (models, optimisers, step, RNG) of one process."""
    path = state_path(out_dir, rank)
    atomic_save({"format": "ganinv-training", "version": 1, **state, "rng": rng_state()}, path)
    return path


def keep_snapshot(out_dir: str | os.PathLike, step: int, files: Iterable[str | os.PathLike]) -> Path:
    """Keep the checkpoint ``files`` a run just wrote in ``out_dir/snapshots/step_NNNNNN/``, so that
    evaluations and branches can use a fixed step while the run goes on. The files are hard links (no second
    write; copies where the file system has none): safe because every checkpoint is written by
    ``atomic_save``, a new file renamed over the old one, which leaves the linked file as it was. The folder
    appears whole or not at all (filled under a temporary name, then renamed); a resumed run that reaches the
    step again replaces it with identical files."""
    out = Path(out_dir) / SNAPSHOT_DIR / f"step_{step:06d}"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src in map(Path, files):
        try:
            os.link(src, tmp / src.name)
        except OSError:
            shutil.copy2(src, tmp / src.name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def read_training_state(path: str | os.PathLike) -> dict:
    """A training state file (``training_state.pt``, or the run folder holding one) read onto the CPU."""
    path = Path(path)
    path = state_path(path) if path.is_dir() else path
    check_torch_file(path)  # no more memory than the file holds (a clear CheckpointError otherwise)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"{path}: cannot read the training state ({e}); delete it to start over") from e
    if not isinstance(state, dict) or state.get("format") != "ganinv-training":
        raise CheckpointError(f"{path}: not a ganinv training state")
    return state


def load_training_state(out_dir: str | os.PathLike, config: LoopConfig, rank: int = 0) -> dict | None:
    """The saved state for this process, or None if there is none; checks the config matches (all fields
    but ``config.RUN_ONLY``; a change of a ``config.NUMERICS`` field is allowed with a warning)."""
    path = state_path(out_dir, rank)
    if not path.exists():
        return None
    state = read_training_state(path)
    saved, now = state["config"], config.to_dict()
    # A field the saved config lacks was added after that run started: it ran with the field's default.
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    diff = {
        k: (saved.get(k, defaults.get(k)), v)
        for k, v in now.items()
        if k not in config.RUN_ONLY and saved.get(k, defaults.get(k)) != v
    }
    if switched := {k: diff.pop(k) for k in sorted(set(diff) & config.NUMERICS)}:
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in switched.items())
        warnings.warn(f"{path}: resuming step {state.get('step')} with {changes}", stacklevel=2)
    if diff:
        raise CheckpointError(
            f"{path}: the saved run used a different config {diff} (saved, now); resume with the same "
            "settings or choose another out_dir"
        )
    return state


def restore(
    cfg: LoopConfig,
    rank: int,
    modules: dict[str, nn.Module | None],
    optimizers: dict[str, torch.optim.Optimizer | None],
    partial: Collection[str] = (),
) -> tuple[int, float, dict | None]:
    """Resume process ``rank`` from its training state in ``cfg.out_dir`` when ``cfg.resume`` and one exists
    (its config must match ``cfg`` but for ``cfg.RUN_ONLY``): load the state dicts saved under the names of
    ``modules`` and ``optimizers`` (None entries are skipped; the modules named in ``partial`` non-strictly,
    e.g. a model saved without its frozen generator), then the RNG state. Returns ``(step, wall_s, state)``
    (``state`` for the trainer's other entries), or ``(0, 0.0, None)`` for a fresh start."""
    state = load_training_state(cfg.out_dir, cfg, rank) if cfg.resume else None
    if state is None:
        return 0, 0.0, None
    load_states(state, modules, optimizers, partial)
    set_rng_state(state["rng"])
    return int(state["step"]), float(state.get("wall_s", 0.0)), state


def load_states(
    state: dict,
    modules: dict[str, nn.Module | None],
    optimizers: dict[str, torch.optim.Optimizer | None],
    partial: Collection[str] = (),
    keep_hyperparameters: bool = False,
) -> None:
    """Load the state dicts saved in ``state`` under the names of ``modules`` and ``optimizers`` (None entries
    skipped; modules in ``partial`` non-strictly). ``keep_hyperparameters``: the optimisers keep their own
    learning rate, betas, ... and take only the saved moments (a run branched off another with new
    settings)."""
    for name, module in modules.items():
        if module is not None:
            module.load_state_dict(state[name], strict=name not in partial)
    for name, opt in optimizers.items():
        if opt is None:
            continue
        groups = opt.param_groups if keep_hyperparameters else []
        own = [{k: v for k, v in g.items() if k != "params"} for g in groups]
        opt.load_state_dict(state[name])
        for group, settings in zip(opt.param_groups, own):
            group.update(settings)


class Progress:
    """tqdm bar over steps with losses and samples/s in the postfix (main process only); ``rate`` names the
    rate ("img/s", or e.g. "pairs/s")."""

    def __init__(
        self, total: int, start: int, samples_per_step: int, enabled: bool, desc: str, rate: str = "img/s"
    ) -> None:
        self.samples_per_step, self.rate = samples_per_step, rate
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)
        self.t0, self.n = time.perf_counter(), 0

    def update(self, losses: dict[str, float] | None = None) -> None:
        self.n += 1
        if self.bar is None:
            return
        self.bar.update(1)
        if losses is not None:
            rate = self.n * self.samples_per_step / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()}, self.rate: f"{rate:.1f}"})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def requires_grad(model: nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
