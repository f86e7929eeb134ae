"""Saving and loading StyleGAN2 checkpoints.

Formats understood by :func:`load_generator` / :func:`load_discriminator`:

1. **ganinv** (written by :func:`save_checkpoint`): a ``torch.save`` zip holding
   ``{"format": "ganinv", "version": 1, "kind", "config", "state_dict", **extra}``; the generator file adds
   ``"latent_avg"`` (the truncation centre ``G.w_avg``) when it is known. Loaded with ``weights_only=True``.
2. **rosinality** ``.pt`` files ``{"g_ema", "latent_avg"?, "g", "d", "args", optimiser states, ...}``
   (``args`` is an ``argparse.Namespace``: allow-listed for ``weights_only=True`` loading), and pSp / e4e /
   HFGI files ``{"state_dict": {"encoder.*", "decoder.*", ...}, "opts", "latent_avg"}`` whose generator is
   the ``decoder.*`` weights. A bare rosinality state dict also works. The config is inferred from the
   tensor shapes (:func:`infer_generator_config`); ``latent_avg`` of shape ``[S]`` or ``[n, S]`` becomes
   ``G.w_avg`` (row 0 of the 2-D form: pSp/e4e store ``latent_avg.repeat(n_styles, 1)``, so rows agree).
3. **NVIDIA** stylegan2-ada-pytorch / stylegan3 (``--cfg stylegan2``) network pickles, read by an
   allow-listed unpickler that neither imports nor executes NVIDIA code (``ganinv/_nvidia_pickle.py``).
   ``conv_clamp`` and fp16 settings are ignored (outputs differ only where ``|activation| > 256``).

Loading is strict except for ``noises.*`` and ``*.kernel`` buffers, which older rosinality files lack or
carry extra (missing noise buffers stay random, with a warning; the kernels follow from the config). The
rosinality discriminator's ``stddev_group`` (4) and the generator's ``lr_mlp`` (0.01) cannot be read from
the weights and take those defaults.

Pretrained artefacts live in ``PRETRAINED_DIR/<name>/generator.pt`` and ``.../discriminator.pt`` (ganinv
format); ``load_generator("<name>")`` resolves a bare name there. ``$GANINV_PRETRAINED_DIR`` overrides the
directory. Every failure raises :class:`CheckpointError` naming the file, the problem and what to do.

Files never get to allocate more than they hold (:mod:`ganinv.checkpoint_guard`): ``check_torch_file``
refuses tensors and storages that declare more memory than the file's bytes (before ``torch.load``), the
NVIDIA reader does the same for its tensors, and ``build_checked`` refuses a stored config that describes a
model far larger than the file's weights (sized on the meta device, before the model is built).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_config import (
    _short,
    infer_discriminator_config,
    infer_generator_config,
)
from .checkpoint_guard import TORCH_LEGACY_MAGIC, ZIP_MAGIC, build_checked, check_torch_file
from .errors import CheckpointError
from .models.stylegan2 import Discriminator, Generator

FORMAT, VERSION = "ganinv", 1
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "data" / "pretrained"
PRETRAINED_ENV = "GANINV_PRETRAINED_DIR"
RESERVED_KEYS = ("format", "version", "kind", "config", "state_dict")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


# ---------------------------------------------------------------------------------------------------------
# Locating files


def pretrained_dir() -> Path:
    """Directory of bundled artefacts: ``$GANINV_PRETRAINED_DIR`` if set, else ``PRETRAINED_DIR``."""
    env = os.environ.get(PRETRAINED_ENV)
    return Path(env).expanduser() if env else PRETRAINED_DIR


def available_pretrained() -> list[str]:
    """Names ``n`` with ``pretrained_dir()/n/generator.pt`` or ``.../discriminator.pt``."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(
        d.name for d in root.iterdir() if (d / "generator.pt").is_file() or (d / "discriminator.pt").is_file()
    )


def bundled_name(ref) -> str | None:
    """``ref`` as a string if it reads as a bundled name (``data/pretrained/<name>/``) rather than an existing
    path, else None."""
    name = str(ref)
    return name if _NAME_RE.fullmatch(name) and not Path(name).exists() else None


def resolve_checkpoint(path_or_name: str | os.PathLike, kind: str = "generator") -> Path:
    """A file path, a directory in the pretrained layout (``<dir>/<kind>.pt``) or a pretrained name."""
    p = Path(path_or_name).expanduser()
    if p.is_dir():
        p = p / f"{kind}.pt"
    elif not p.exists() and isinstance(path_or_name, str) and _NAME_RE.fullmatch(path_or_name):
        root = pretrained_dir()
        p = root / path_or_name / f"{kind}.pt"
        if not p.is_file():
            names = available_pretrained()
            raise CheckpointError(
                f"{p}: no pretrained model {path_or_name!r} in {root} "
                f"(available: {_short(names) or 'none'}); pass a checkpoint path, or set "
                f"${PRETRAINED_ENV} to a directory holding {path_or_name}/{kind}.pt"
            )
    if not p.is_file():
        raise CheckpointError(
            f"{p}: no such checkpoint file; pass an existing .pt/.pkl path or one of the "
            f"pretrained names ({_short(available_pretrained()) or 'none available'})"
        )
    return p


# ---------------------------------------------------------------------------------------------------------
# Writing


def _check_safe(obj: Any, where: str) -> None:
    """Raise TypeError unless ``obj`` can be read back by ``torch.load(weights_only=True)``."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.dtype, torch.Size)):
        return
    if isinstance(obj, torch.Tensor):
        if type(obj) not in (torch.Tensor, nn.Parameter):
            raise TypeError(
                f"{where}: tensor subclass {type(obj).__name__} cannot be saved; use a plain tensor"
            )
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_safe(v, f"{where}[{i}]")
        return
    if type(obj) is dict:
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: dict key {k!r} must be str or int")
            _check_safe(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where}: {type(obj).__name__} is not loadable with weights_only=True; store tensors, "
        "numbers, strings, None and lists/tuples/dicts of them"
    )


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename itself durable (best effort)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached on the CPU; copied if it has more elements than its storage (an expanded view), which
    the loaders refuse."""
    t = t.detach().cpu()
    return t.contiguous() if t.numel() * t.element_size() > t.untyped_storage().nbytes() else t


def save_checkpoint(
    path: str | os.PathLike,
    kind: str,
    config: dict,
    state_dict: Mapping[str, torch.Tensor],
    *,
    half: bool = False,
    **extra: Any,
) -> None:
    """Write a ganinv checkpoint atomically (temp file in the same directory, fsync, ``os.replace``).

    ``kind`` is any identifier ("generator", "discriminator", "sfn", ...); ``config`` the constructor
    arguments; ``half`` stores floating tensors of the state dict as fp16 (loaders cast back to fp32).
    ``extra`` values must be tensors, numbers, strings, None or containers of them (TypeError otherwise).
    """
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ValueError(f"kind must be an identifier-like string, got {kind!r}")
    clash = [k for k in extra if k in RESERVED_KEYS]
    if clash:
        raise ValueError(f"extra keys {clash} are reserved by the ganinv format")
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    _check_safe(config, "config")
    sd = {}
    for k, v in state_dict.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise TypeError(f"state_dict[{k!r}]: expected str -> tensor, got {type(v).__name__}")
        v = _dense(v)
        sd[k] = v.half() if half and v.is_floating_point() else v
    for k, v in extra.items():
        _check_safe(v, f"extra[{k!r}]")
    extra = {k: _dense(v) if isinstance(v, torch.Tensor) else v for k, v in extra.items()}
    ckpt = {"format": FORMAT, "version": VERSION, "kind": kind, "config": config, "state_dict": sd, **extra}
    atomic_save(ckpt, path)


def save_generator(path: str | os.PathLike, G: Generator, *, half: bool = False, **extra: Any) -> None:
    """Save ``G`` (config, state dict and, if known, ``w_avg`` as ``latent_avg``) in the ganinv format."""
    if not torch.isnan(G.w_avg).any():
        extra.setdefault("latent_avg", G.w_avg.detach().float())
    save_checkpoint(path, "generator", G.config, G.state_dict(), half=half, **extra)


def save_discriminator(
    path: str | os.PathLike, D: Discriminator, *, half: bool = False, **extra: Any
) -> None:
    """Save ``D`` (config and state dict) in the ganinv format."""
    save_checkpoint(path, "discriminator", D.config, D.state_dict(), half=half, **extra)


# ---------------------------------------------------------------------------------------------------------
# Reading


def _sniff(path: Path) -> str:
    """'torch' for torch.save files (zip or legacy), 'pickle' for plain pickles (NVIDIA .pkl)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ZIP_MAGIC) or head.startswith(TORCH_LEGACY_MAGIC):
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    raise CheckpointError(
        f"{path}: not a readable checkpoint (truncated or corrupt?): neither a torch.save "
        f"file nor a pickle (starts with {head[:8]!r}); re-download or re-export it"
    )


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with ``argparse.Namespace`` allowed (rosinality's ``args``), after
    :func:`check_torch_file` has made sure the file declares no more memory than it holds."""
    check_torch_file(path)
    safe = getattr(torch.serialization, "safe_globals", None)
    ctx = safe([argparse.Namespace]) if safe else contextlib.nullcontext()
    try:
        with ctx:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            m = re.search(r"global:? GLOBAL ([\w.]+)", str(e))
            what = f"the global {m.group(1)}" if m else "Python objects"
            raise CheckpointError(
                f"{path}: refers to {what}, which safe (weights_only=True) loading refuses; re-save only the "
                "tensors (e.g. torch.save({'g_ema': ckpt['g_ema']}, ...)) in a trusted environment"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {e}") from None
    except Exception as e:  # truncated zip, bad records, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None


def _validate(ckpt: dict, path: Path, kind: str | None) -> dict:
    version = ckpt.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: ganinv checkpoint without a valid format version ({version!r})")
    if version > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer ganinv (format version {version} > {VERSION}); "
            "upgrade ganinv to read it"
        )
    found = ckpt.get("kind")
    if kind is not None and found != kind:
        hint = f"; use load_{found}()" if found in ("generator", "discriminator") else ""
        raise CheckpointError(f"{path}: holds a {found!r} checkpoint, expected {kind!r}{hint}")
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path}: ganinv checkpoint without a 'config' dict; re-save it")
    sd = ckpt.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: ganinv checkpoint without a tensor 'state_dict'; re-save it")
    return ckpt


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Read and validate a ganinv-format file (format, version, ``kind`` if given); tensors on the CPU."""
    path = resolve_checkpoint(path, kind or "generator")
    if _sniff(path) != "torch":
        raise CheckpointError(
            f"{path}: a plain pickle, not a ganinv checkpoint; for NVIDIA .pkl files use "
            "load_generator / load_discriminator / load_nvidia_pickle"
        )
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = _short(sorted(map(str, ckpt))) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: not a ganinv-format checkpoint (found {keys}); "
            "load_generator / load_discriminator also read rosinality, pSp and NVIDIA files"
        )
    return _validate(ckpt, path, kind)


def half_copy(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Write ``src`` (a ganinv checkpoint of any kind: a generator, an encoder, an inpainter ...) to ``dst``
    with fp16 weights, config and metadata unchanged: how the bundled files in ``data/pretrained`` are made
    small. Returns the checkpoint as read (fp32 or fp16 state dict, as stored in ``src``)."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file (give the path of a ganinv .pt checkpoint)")
    ckpt = load_checkpoint(src)
    extra = {k: v for k, v in ckpt.items() if k not in RESERVED_KEYS}
    save_checkpoint(dst, ckpt["kind"], ckpt["config"], ckpt["state_dict"], half=True, **extra)
    return ckpt


def load_nvidia_pickle(path: str | os.PathLike) -> dict[str, dict]:
    """Convert an NVIDIA StyleGAN2 network pickle without NVIDIA code.

    Returns, for each of "G_ema", "G", "D" present, ``{"config", "state_dict" (our names), "w_avg"}``.
    """
    from . import _nvidia_pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if _sniff(path) != "pickle":
        raise CheckpointError(f"{path}: a torch.save file, not an NVIDIA pickle; use load_generator")
    return _nvidia_pickle.load(path)


# ---------------------------------------------------------------------------------------------------------
# Building models


def _soft_key(k: str) -> bool:
    """Buffers rosinality files may lack or carry extra (docs/stylegan2.md §1.5): noise and FIR kernels."""
    return k.startswith("noises.") or k.endswith(".kernel")


def _as_fp32(state_dict: Mapping[str, Any], source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict with fp16 (or any floating) tensors cast to fp32; CheckpointError for non-tensors."""
    sd = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{source}: state dict entry {k!r} is a {type(v).__name__}, not a tensor")
        sd[k] = v.float() if v.is_floating_point() else v
    return sd


def _mismatch(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], ignore) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of ``sd`` against ``own`` (keys for which
    ``ignore(key)`` is true may be missing or extra)."""
    problems = []
    if missing := [k for k in own if k not in sd and not ignore(k)]:
        problems.append(f"missing keys: {_short(missing)}")
    if extra := [k for k in sd if k not in own and not ignore(k)]:
        problems.append(f"unexpected keys: {_short(extra)}")
    if shapes := [
        f"{k} {list(sd[k].shape)} vs {list(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]:
        problems.append(f"shape mismatches (file vs model): {_short(shapes)}")
    return problems


def stored_config(ckpt: Mapping[str, Any], from_dict, source: str | Path, what: str):
    """``from_dict(ckpt["config"])``, or a CheckpointError saying the stored ``what`` config is invalid."""
    try:
        return from_dict(ckpt["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{source}: the stored {what} config is invalid ({e})") from None


def load_state_strict(
    model: nn.Module, state_dict: Mapping[str, Any], source: str | Path, skip_prefix: tuple[str, ...] = ()
) -> None:
    """Load a ganinv-format state dict (fp16 allowed) into ``model``: every key must match in name and shape,
    except keys starting with ``skip_prefix`` (e.g. a frozen generator left out of the file), which keep the
    model's values. CheckpointError naming the offending keys otherwise."""
    sd = _as_fp32(state_dict, source)
    own = model.state_dict()
    if problems := _mismatch(own, sd, lambda k: k.startswith(skip_prefix) if skip_prefix else False):
        raise CheckpointError(
            f"{source}: state dict does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict({**{k: v for k, v in own.items() if k not in sd}, **sd}, strict=True)


def load_state_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Strict load tolerating missing/extra ``noises.*`` and ``*.kernel`` buffers; CheckpointError else."""
    own = model.state_dict()
    sd = _as_fp32(state_dict, source)
    missing = [k for k in own if k not in sd]
    if problems := _mismatch(own, sd, _soft_key):
        raise CheckpointError(
            f"{source}: state dict does not fit {type(model).__name__}({model.config}): "
            + "; ".join(problems)
            + ". Check the config (size, channel_multiplier, channel_max, n_mlp) or the file."
        )
    if noise := [k for k in missing if k.startswith("noises.")]:
        warnings.warn(
            f"{source}: {len(noise)} noise buffers missing (older rosinality file?); keeping random "
            "ones, so noise_mode='const' images differ from the original's",
            stacklevel=3,
        )
    sd = {k: v for k, v in sd.items() if k in own}
    sd.update({k: own[k] for k in missing})
    model.load_state_dict(sd, strict=True)


def _build(cls: type, config: dict, state_dict: Mapping[str, torch.Tensor], path: Path) -> Any:
    model = build_checked(lambda: cls(**config), state_dict, path, cls.__name__, config)
    load_state_into(model, state_dict, path)
    return model


def _w_avg(t: Any, style_dim: int, path: Path) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[-1] != style_dim:
        shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise CheckpointError(f"{path}: latent_avg {shape} is not [{style_dim}] or [n, {style_dim}]")
    return t.detach().float().reshape(-1, style_dim)[0]


def _infer(fn: Any, sd: Mapping[str, torch.Tensor], path: Path) -> dict:
    try:
        return fn(sd)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (AttributeError, TypeError, IndexError, ValueError) as e:  # non-tensor entries, odd shapes
        raise CheckpointError(f"{path}: not a StyleGAN2 state dict ({type(e).__name__}: {e})") from None


TRAINING_RECORD = ("step", "images_seen")  # what the trainers write beside the weights


def _read_torch(path: Path, kind: str) -> tuple[dict, Mapping[str, torch.Tensor], Any, dict[str, int]]:
    """(config, state dict, latent_avg, training record) of a ganinv / rosinality / pSp-style torch file; the
    record (:data:`TRAINING_RECORD` entries) is empty for files the ganinv trainers did not write."""
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: unknown checkpoint layout (a {type(ckpt).__name__}, not a dict)")
    if ckpt.get("format") == FORMAT:
        ckpt = _validate(ckpt, path, kind)
        record = {k: int(ckpt[k]) for k in TRAINING_RECORD if k in ckpt}
        return ckpt["config"], ckpt["state_dict"], ckpt.get("latent_avg"), record
    gen = kind == "generator"
    infer = infer_generator_config if gen else infer_discriminator_config
    key = "g_ema" if gen else "d"
    sd = None
    latent = ckpt.get("latent_avg") if gen else None
    if isinstance(ckpt.get(key), dict):
        sd = ckpt[key]
    elif (
        gen
        and isinstance(ckpt.get("state_dict"), dict)
        and any(k.startswith("decoder.") for k in ckpt["state_dict"])
    ):
        sd = {k[len("decoder.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("decoder.")}
    elif ("input.input" if gen else "final_linear.1.weight") in ckpt:
        sd, latent = ckpt, None
    if sd is None:
        keys = _short(sorted(map(str, ckpt)))
        raise CheckpointError(
            f"{path}: no {kind} weights found (top-level keys: {keys}); expected a ganinv {kind} file, a "
            f"rosinality file with {key!r}{', a pSp/e4e file with decoder.* weights' if gen else ''}, a bare "
            "state dict or an NVIDIA .pkl"
        )
    return _infer(infer, sd, path), sd, latent, {}


def load_generator(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """Generator in eval mode from a ganinv / rosinality / pSp-style / NVIDIA file or a pretrained name.

    ``G.w_avg`` is set from the file's ``latent_avg`` / ``mapping.w_avg`` when present (NaN otherwise), and
    ``G.training_record`` to the step / images seen a ganinv trainer wrote (empty for other files).
    """
    path = resolve_checkpoint(path_or_name, "generator")
    if _sniff(path) == "pickle":
        from . import _nvidia_pickle

        (net,) = _nvidia_pickle.load(path, which=("G_ema", "G"), first=True).values()
        config, sd, latent, record = net["config"], net["state_dict"], net["w_avg"], {}
    else:
        config, sd, latent, record = _read_torch(path, "generator")
    G = _build(Generator, config, sd, path)
    G.training_record = record
    if latent is not None:
        G.w_avg.copy_(_w_avg(latent, G.style_dim, path))
    return G.to(device).eval()


def load_discriminator(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> Discriminator:
    """Discriminator in eval mode from a ganinv / rosinality (``"d"``) / NVIDIA (``"D"``) file or a name."""
    path = resolve_checkpoint(path_or_name, "discriminator")
    if _sniff(path) == "pickle":
        from . import _nvidia_pickle

        net = _nvidia_pickle.load(path, which=("D",))["D"]
        config, sd = net["config"], net["state_dict"]
    else:
        config, sd, _, _ = _read_torch(path, "discriminator")
    return _build(Discriminator, config, sd, path).to(device).eval()
