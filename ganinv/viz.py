"""Figure helpers for the notebooks: labelled image grids, part maps, ToRGB skip read-outs, and atomic saving.

Images everywhere are float tensors ``[N, 3, H, W]`` in ``[-1, 1]`` (the generator's range). Figures are kept
small (low dpi, no interpolation) so committed notebooks and PNGs stay light.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.images import to_uint8


def _hwc(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    x = images.detach().float().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 3, H, W] or [N, 1, H, W], got shape {tuple(images.shape)}")
    u8 = to_uint8(x).permute(0, 2, 3, 1).numpy()
    return np.repeat(u8, 3, axis=3) if u8.shape[3] == 1 else u8


def image_grid(
    rows: Sequence[torch.Tensor] | dict[str, torch.Tensor],
    col_titles: Sequence[str] | None = None,
    scale: float = 1.0,
    title: str | None = None,
):
    """A matplotlib figure with one row per tensor ``[K, 3, H, W]`` (a dict's keys label the rows).

    Rows may have different lengths; images smaller than the largest are shown at their own resolution,
    upsampled by nearest neighbour so every cell has the same size.
    """
    import matplotlib.pyplot as plt

    labels = list(rows.keys()) if isinstance(rows, dict) else [None] * len(rows)
    tensors = list(rows.values()) if isinstance(rows, dict) else list(rows)
    if not tensors:
        raise ValueError("image_grid needs at least one row")
    arrays = [_hwc(t) for t in tensors]
    ncol = max(len(a) for a in arrays)
    side = 1.1 * scale
    fig, axes = plt.subplots(
        len(arrays),
        ncol,
        figsize=(side * ncol + (0.9 if labels[0] else 0), side * len(arrays) + 0.3),
        squeeze=False,
    )
    for r, (array, label) in enumerate(zip(arrays, labels)):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(array):
                ax.imshow(array[c], interpolation="nearest")
            if c == 0 and label:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_titles is not None and c < len(col_titles):  # wrapped to the cell's width
                ax.set_title(textwrap.fill(str(col_titles[c]), max(8, round(13 * scale))), fontsize=8)
    if title:  # above the grid: tight_layout keeps the top 0.3 inch free for it
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / fig.get_figheight())
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight() if title else 1))
    return fig


def ablation_grid(
    x: torch.Tensor,
    outputs: dict[str, torch.Tensor],
    errors: bool = True,
    col_titles: Sequence[str] | None = None,
    scale: float = 1.0,
    shown: tuple[str, torch.Tensor] | None = None,
):
    """The inputs ``x`` [N, 3, H, W], then for each labelled output [N, 3, H, W] its row of images and (with
    ``errors``) a row of its error maps |x - output| (mean over RGB, one colour scale and colour bar for all
    maps, clipped at their 99th percentile), so that a full and an ablated model are compared on the same
    faces at a glance. ``shown`` (a label and images) replaces the first row, e.g. by an inpainter's erased
    inputs; the errors stay against ``x``."""
    import matplotlib.pyplot as plt

    if not outputs:
        raise ValueError("ablation_grid needs at least one output")
    for label, y in outputs.items():
        if y.shape != x.shape:
            raise ValueError(f"output {label!r} has shape {list(y.shape)}, the inputs {list(x.shape)}")
    first_label, first = shown if shown is not None else ("input", x)
    rows: list[tuple[str, np.ndarray, bool]] = [(first_label, _hwc(first), False)]
    maps = {label: (y.float().cpu() - x.float().cpu()).abs().mean(1).numpy() for label, y in outputs.items()}
    # one scale for all maps, clipped at the 99th percentile: a few extreme pixels do not darken the rest
    top = float(np.quantile(np.concatenate([m.ravel() for m in maps.values()]), 0.99)) if errors else 1.0
    for label, y in outputs.items():
        rows.append((label, _hwc(y), False))
        if errors:
            rows.append((f"|error|, {label}", maps[label], True))
    n, side = x.shape[0], 1.1 * scale
    fig, axes = plt.subplots(len(rows), n, figsize=(side * n + 2.4, side * len(rows) + 0.3), squeeze=False)
    image = None
    for r, (label, array, is_map) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if is_map:
                image = ax.imshow(array[c], cmap="magma", vmin=0, vmax=top, interpolation="nearest")
            else:
                ax.imshow(array[c], interpolation="nearest")
            if c == 0:
                ax.set_ylabel(textwrap.fill(label, 22), rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(str(col_titles[c]), fontsize=8)
    fig.tight_layout(pad=0.2)
    if image is not None:
        fig.colorbar(
            image, ax=axes, fraction=0.03, pad=0.02, label="|x − x̂|, mean over RGB (images in [−1, 1])"
        )
    return fig


PART_COLOURS = np.array(
    [
        [40, 40, 40],  # background
        [240, 190, 150],  # skin
        [120, 70, 30],  # hair
        [30, 120, 230],  # eyes
        [90, 50, 20],  # brows
        [220, 40, 60],  # mouth
        [160, 160, 170],  # glasses
        [60, 140, 60],  # beard
    ],
    dtype=np.uint8,
)


def part_map(parts) -> torch.Tensor:
    """Part labels [N, H, W] (``ganinv.data.synthfaces.PARTS`` order) -> colour images [N, 3, H, W]."""
    labels = np.asarray(parts)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.min() < 0 or labels.max() >= len(PART_COLOURS):
        raise ValueError(
            f"part labels must be in 0..{len(PART_COLOURS) - 1}, got {labels.min()}..{labels.max()}"
        )
    rgb = PART_COLOURS[labels].astype(np.float32) / 127.5 - 1  # [N, H, W, 3]
    return torch.from_numpy(rgb).permute(0, 3, 1, 2)


@torch.no_grad()
def rgb_skips(G, ws: torch.Tensor, **synthesis_kwargs) -> dict[int, torch.Tensor]:
    """The running RGB image after each ToRGB of the skip architecture: ``{res: [N, 3, res, res]}``.

    StyleGAN2 (Fig. 7b of Karras et al. 2020) sums the upsampled RGB outputs of every resolution; the last
    entry is the generated image. Read out with forward hooks, so the generator is used unchanged.
    """
    outputs: dict[int, torch.Tensor] = {}
    modules = [G.to_rgb1, *G.to_rgbs]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, res=2 ** (k + 2): outputs.__setitem__(res, out))
        for k, m in enumerate(modules)
    ]
    try:
        G.synthesis(ws, **synthesis_kwargs)
    finally:
        for h in hooks:
            h.remove()
    return outputs


def upsample_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour upsampling [N, C, h, w] -> [N, C, size, size] for side-by-side display."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="nearest")


def outline(
    images: torch.Tensor, mask: torch.Tensor, color: Sequence[float] = (1.0, 1.0, -1.0)
) -> torch.Tensor:
    """Images [N, 3, H, W] in [-1, 1] with the hole border of ``mask`` [N or 1, 1, H, W] (1 = keep) drawn in
    ``color`` (default yellow): the 1 px ring of hole pixels that touch a known pixel (8-neighbourhood)."""
    hole = mask < 0.5
    touches_known = torch.nn.functional.max_pool2d((~hole).float(), 3, stride=1, padding=1) > 0
    ring = (hole & touches_known).expand_as(images)  # [N, 3, H, W]
    paint = torch.tensor(color, dtype=images.dtype, device=images.device).view(1, 3, 1, 1).expand_as(images)
    return torch.where(ring, paint, images)


def feature_energy(f: torch.Tensor) -> torch.Tensor:
    """A feature map [N, C, h, w] shown as per-pixel channel RMS, normalised per image to [-1, 1] grey."""
    e = f.detach().float().pow(2).mean(1, keepdim=True).sqrt()  # [N, 1, h, w]
    lo = e.amin(dim=(2, 3), keepdim=True)
    hi = e.amax(dim=(2, 3), keepdim=True)
    return (e - lo) / (hi - lo + 1e-8) * 2 - 1


def save_figure(fig, path, dpi: int = 100, close: bool = False) -> Path:
    """Save a matplotlib figure atomically (temporary file, then rename); in a notebook it still displays."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a figure is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if close:
            plt.close(fig)
    return path
