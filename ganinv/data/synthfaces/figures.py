"""SynthFaces figures: sample grids at any size and the attribute sheet (each attribute off / on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..images import grid_array
from .factors import BINARY_ATTRIBUTES, edit_factors, sample_factors
from .painter import render


def _upscale(grid: np.ndarray, scale: int) -> np.ndarray:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return grid.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else grid


def save_sample_grid(path, seed: int = 0, n: int = 32, size: int = 64, nrow: int = 8, scale: int = 1) -> Path:
    """Write a PNG grid of samples ``0 .. n-1`` of ``seed`` rendered at ``size``; returns the path.

    ``scale`` enlarges the grid by pixel repetition (nearest neighbour), to show small renders as
    they are.
    """
    from PIL import Image

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images, _ = render(sample_factors(seed, np.arange(n)), size)
    Image.fromarray(_upscale(grid_array(images, nrow), scale)).save(path)
    return path


def save_attribute_sheet(path, seed: int = 0, index: int = 0, size: int = 64, scale: int = 2) -> Path:
    """Write a PNG with one row per binary attribute: the same face with it off (left) and on (right).

    Each row uses a different face (``index + row``) so that several looks are covered; the faces
    are rendered at ``size`` and enlarged ``scale`` times by pixel repetition.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = sample_factors(seed, np.arange(index, index + len(BINARY_ATTRIBUTES)))
    tiles = []
    for row, name in enumerate(BINARY_ATTRIBUTES):
        one = {k: v[row : row + 1] for k, v in base.items()}
        off, _ = render(edit_factors(one, **{name: 0}), size)
        on, _ = render(edit_factors(one, **{name: 1}), size)
        tiles += [off[0], on[0]]
    grid = _upscale(grid_array(np.stack(tiles), nrow=2), scale)
    label_w, head_h = 100, 18
    sheet = Image.new("RGB", (grid.shape[1] + label_w, grid.shape[0] + head_h), "white")
    sheet.paste(Image.fromarray(grid), (label_w, head_h))
    draw = ImageDraw.Draw(sheet)
    tile = (size + 2) * scale
    for col, text in enumerate(("off (0)", "on (1)")):
        draw.text((label_w + 2 * scale + col * tile + 4, 3), text, fill="black")
    for row, name in enumerate(BINARY_ATTRIBUTES):
        draw.text((6, head_h + 2 * scale + row * tile + tile // 2 - 6), name, fill="black")
    sheet.save(path)
    return path


def save_figures(directory="figures", seed: int = 0) -> list[Path]:
    """Write the SynthFaces figures: 32 faces at 64, 16 faces at 256 and the attribute sheet."""
    d = Path(directory)
    return [
        save_sample_grid(d / "synthfaces_grid_64.png", seed=seed, n=32, size=64, nrow=8),
        save_sample_grid(d / "synthfaces_grid_256.png", seed=seed, n=16, size=256, nrow=4),
        save_attribute_sheet(d / "synthfaces_attributes.png", seed=seed, size=64, scale=2),
    ]
