"""Configs of StyleGAN2 checkpoints that store none (rosinality, pSp / e4e decoders, NVIDIA pickles),
inferred from the tensor shapes of a rosinality-layout state dict; shared by :mod:`ganinv.checkpoints` and
the NVIDIA reader, so that neither imports the other."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .errors import CheckpointError
from .models.stylegan2 import channel_table

DEFAULT_BLUR = [1, 3, 3, 1]
DEFAULT_LR_MLP = 0.01  # cannot be read from weights; rosinality, pSp, e4e and NVIDIA all use 0.01


def _short(items: list, n: int = 8) -> str:
    return ", ".join(map(str, items[:n])) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def blur_from_kernel(kernel: torch.Tensor) -> list[float]:
    """The 1-D blur kernel behind a 2-D (separable, any gain) FIR buffer; [1, 3, 3, 1] when it is that."""
    k2 = kernel.detach().double()
    k2 = k2 / k2.sum()
    k1 = k2.sum(1)
    if not torch.allclose(torch.outer(k1, k1), k2, atol=1e-6):
        raise CheckpointError(f"non-separable FIR kernel {k2.tolist()} is not supported")
    ref = torch.tensor(DEFAULT_BLUR, dtype=torch.float64)
    if k1.shape == ref.shape and torch.allclose(k1, ref / ref.sum(), atol=1e-6):
        return list(DEFAULT_BLUR)
    return [float(x) for x in k1]


def fit_channel_table(size: int, table: dict[int, int]) -> tuple[float, int]:
    """(channel_multiplier, channel_max) with ``channel_table(size, cm, cmax) == table``."""
    cmax = max(table.values())
    cands: list[float] = [2, 1]
    cands += sorted({c * r / 16384 for r, c in table.items() if c < cmax})
    cands += [cmax * size / 16384, 4, 0.5]
    for cm in cands:
        cm = int(cm) if float(cm).is_integer() else cm
        if cm > 0 and channel_table(size, cm, cmax) == table:
            return cm, cmax
    raise CheckpointError(
        f"unsupported channel table {dict(sorted(table.items()))}: no (channel_multiplier, "
        "channel_max) gives min(channel_max, 16384 * channel_multiplier // res)"
    )


def _indices(sd: Mapping[str, Any], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def _need(sd: Mapping[str, Any], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"not a StyleGAN2 {what} state dict: no {key!r} (keys: {_short(sorted(sd))})")
    return sd[key]


def infer_generator_config(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Generator config from a rosinality-layout state dict (``lr_mlp`` can't be inferred: 0.01)."""
    inp = _need(state_dict, "input.input", "generator")
    style_dim = _need(state_dict, "style.1.weight", "generator").shape[1]
    n_mlp = len(_indices(state_dict, r"style\.(\d+)\.weight"))
    log_size = len(_indices(state_dict, r"to_rgbs\.(\d+)\.conv\.weight")) + 2
    size = 2**log_size
    table = {4: inp.shape[1]}
    for k in range(log_size - 2):
        table[2 ** (k + 3)] = _need(state_dict, f"convs.{2 * k}.conv.weight", "generator").shape[1]
    cm, cmax = fit_channel_table(size, table)
    kernel = state_dict.get("convs.0.conv.blur.kernel", state_dict.get("to_rgbs.0.upsample.kernel"))
    blur = DEFAULT_BLUR if kernel is None else blur_from_kernel(kernel)
    return dict(
        size=size,
        style_dim=int(style_dim),
        n_mlp=n_mlp,
        channel_multiplier=cm,
        channel_max=cmax,
        blur_kernel=list(blur),
        lr_mlp=DEFAULT_LR_MLP,
    )


def infer_discriminator_config(state_dict: Mapping[str, torch.Tensor], stddev_group: int = 4) -> dict:
    """Discriminator config from a rosinality-layout state dict (``stddev_group`` can't be inferred)."""
    table = {}
    n_blocks = len(_indices(state_dict, r"convs\.(\d+)\.conv1\.0\.weight"))
    size = 4 * 2**n_blocks
    table[size] = _need(state_dict, "convs.0.0.weight", "discriminator").shape[0]
    for j in range(1, n_blocks + 1):
        table[size >> j] = _need(state_dict, f"convs.{j}.conv2.1.weight", "discriminator").shape[0]
    _need(state_dict, "final_linear.1.weight", "discriminator")
    cm, cmax = fit_channel_table(size, table)
    kernel = state_dict.get("convs.1.conv2.0.kernel")
    blur = DEFAULT_BLUR if kernel is None else blur_from_kernel(kernel)
    return dict(
        size=size, channel_multiplier=cm, channel_max=cmax, blur_kernel=list(blur), stddev_group=stddev_group
    )
