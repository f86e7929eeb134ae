"""SynthFaces as data: :func:`synthfaces` (sample and render), the torch :class:`SynthFaces` dataset and
:func:`real_images` (a tensor of faces, by default the held-out evaluation faces)."""

from __future__ import annotations

import numpy as np
import torch

from ...common import EVAL_SEED
from .factors import _check_indices, _check_seed, _check_size, factors_to_array, sample_factors
from .painter import render


def synthfaces(seed: int, indices, size: int = 64) -> dict:
    """Sample and render: ``{"image": [N,3,S,S] float32, "parts": [N,S,S] uint8, "factors": dict}``."""
    factors = sample_factors(seed, indices)
    image, parts = render(factors, size)
    return {"image": image, "parts": parts, "factors": factors}


class SynthFaces(torch.utils.data.Dataset):
    """An indexable SynthFaces dataset: item ``i`` is sample ``offset + i`` of ``seed``.

    Items are dicts: ``"image"`` float tensor ``[3, S, S]`` in [-1, 1], ``"parts"`` long tensor
    ``[S, S]`` (ids into :data:`PARTS`) and ``"factors"`` float tensor ``[len(FACTORS)]`` in
    :data:`FACTORS` order. Use :meth:`get_batch` in training loops: it renders a whole batch at once
    (a ``DataLoader`` does so too, through ``__getitems__``).
    """

    def __init__(self, size: int = 64, seed: int = 0, length: int = 100_000, offset: int = 0):
        self.size = _check_size(size)
        self.seed = _check_seed(seed)
        for name, v in (("length", length), ("offset", offset)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if length == 0:
            raise ValueError("length must be at least 1")
        self.length, self.offset = int(length), int(offset)

    def __len__(self) -> int:
        return self.length

    def _global(self, indices) -> np.ndarray:
        idx = _check_indices(indices)
        if idx.size and idx.max() >= self.length:
            raise IndexError(f"index {int(idx.max())} out of range for SynthFaces of length {self.length}")
        return idx + self.offset

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Items ``indices`` rendered in one go, stacked: image ``[B,3,S,S]``, parts, factors."""
        out = synthfaces(self.seed, self._global(indices), self.size)
        return {
            "image": torch.from_numpy(out["image"]),
            "parts": torch.from_numpy(out["parts"].astype(np.int64)),
            "factors": torch.from_numpy(factors_to_array(out["factors"])),
        }

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        """Batched fetch used automatically by ``DataLoader`` (one render call per batch)."""
        batch = self.get_batch(list(indices))
        return [{k: v[j] for k, v in batch.items()} for j in range(len(indices))]

    def __getitem__(self, i) -> dict[str, torch.Tensor]:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"SynthFaces indices must be integers, got {type(i).__name__}")
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for SynthFaces of length {self.length}")
        batch = self.get_batch([int(i)])
        return {k: v[0] for k, v in batch.items()}

    def __repr__(self) -> str:
        return f"SynthFaces(size={self.size}, seed={self.seed}, length={self.length}, offset={self.offset})"


def real_images(size: int, n: int, offset: int = 0, seed: int = EVAL_SEED) -> torch.Tensor:
    """Samples ``offset .. offset + n - 1`` of ``seed`` (default: the held-out evaluation seed, never training
    data) as images ``[n, 3, size, size]`` in [-1, 1], float32."""
    data = SynthFaces(size=size, seed=seed, length=offset + n)
    return torch.as_tensor(data.get_batch(range(offset, offset + n))["image"], dtype=torch.float32)
