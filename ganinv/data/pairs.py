"""Generated pairs ``(G(w), w)`` as a pure function of a seed: the data of CLCAE stage 1 and of the encoders'
generated batches, and the held-out pairs their evaluations use.

``z ~ N(0, I)``, ``w = mapping(z)`` (optionally truncated), ``I = G(w)`` with per-layer noise
(``noise_mode``), average-pooled to the wanted size; z and noise come from a ``torch.Generator`` seeded by
:func:`make_pairs`' ``seed``. Trainers seed their batches with :func:`pair_seed` of ``(TRAIN_STREAM, ...)``
(or streams of their own), held-out pairs use :data:`EVAL_STREAM`, so the two never coincide whatever the
seeds. Lives under ``ganinv.data`` so that trainers and evaluators both import it without importing each
other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from .images import pool_to

if TYPE_CHECKING:
    from ..models.stylegan2 import Generator

TRAIN_STREAM, EVAL_STREAM = 1, 2  # first word of the pair seeds: training and held-out pairs never meet


def pair_seed(*words: int) -> int:
    """A 64-bit seed from integer words (numpy's SeedSequence hashing: nearby words give unrelated seeds)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0])


@torch.no_grad()
def make_pairs(
    G: Generator, n: int, seed: int, size: int, truncation: float = 1.0, noise_mode: str = "random"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs (images [n, 3, size, size], w [n, style_dim]) on G's device; a function of ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    dev = G.w_avg.device
    z = torch.randn(n, G.style_dim, generator=gen)
    noise = None
    if noise_mode == "random":
        noise = [torch.randn(n, *b.shape[1:], generator=gen).to(dev) for b in G.make_noise(1, "const")]
    w = G.mapping(z.to(dev), truncation)  # [n, style_dim]
    images = G.synthesis(w, noise_mode=noise_mode, noise=noise)  # [n, 3, G.size, G.size]
    return pool_to(images, size), w


def held_out_pairs(
    G: Generator, n: int, seed: int, size: int, batch_size: int = 250, **kw
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Held-out pairs ``0 .. n-1`` in batches (batch b seeded by ``(EVAL_STREAM, seed, b)``)."""
    for b, start in enumerate(range(0, n, batch_size)):
        yield make_pairs(G, min(batch_size, n - start), pair_seed(EVAL_STREAM, seed, b), size, **kw)
