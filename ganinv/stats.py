"""Uncertainty of a measured difference, and the verdict it allows.

The project states each claim of the papers as *confirmed*, *refuted* or *undecided* in its own world. A
difference between two methods scored on the same held-out images is a paired sample: :func:`paired_bootstrap`
resamples the images (Efron's percentile bootstrap, with replacement, a fixed seed) and gives the mean
difference with its confidence interval; :func:`verdict` turns an interval into a word, and says "undecided"
whenever the interval contains zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["paired_bootstrap", "verdict", "compare_rows", "VERDICTS"]

VERDICTS = ("confirmed", "refuted", "undecided")


def paired_bootstrap(
    a: Sequence[float] | torch.Tensor,
    b: Sequence[float] | torch.Tensor,
    n_boot: int = 5000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``b - a`` over paired units (the same images scored by two methods, [n] each) with a
    ``level`` percentile-bootstrap interval over units: ``{"mean", "lo", "hi", "n", "level"}``."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape or a.numel() < 2:
        sizes = f"{a.numel()} and {b.numel()}"
        raise ValueError(f"paired_bootstrap needs two equally long samples of >= 2 units, got {sizes}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = b - a
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, d.numel(), (n_boot, d.numel()), generator=gen)
    means = d[idx].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": d.numel(), "level": level}


def verdict(interval: dict[str, float], expect: str, margin: float = 0.0) -> str:
    """ "confirmed" if the interval of ``b - a`` lies entirely on the side the claim ``expect``s ("lower":
    b < a, "higher": b > a), "refuted" if entirely on the other side, else "undecided".

    ``expect`` "same" is a claim of equivalence ("b keeps what a has"), decided against the bound ``margin``
    > 0 (two one-sided tests at the interval's level): "confirmed" if the interval lies inside
    (-margin, margin), "refuted" if it lies entirely beyond one of the bounds, else "undecided". A difference
    that is real but smaller than the margin confirms it: "keeps" means "changes less than the margin"."""
    lo, hi = interval["lo"], interval["hi"]
    if expect == "same":
        if not margin > 0:
            raise ValueError(f"expect 'same' needs an equivalence margin > 0, got {margin}")
        if -margin < lo and hi < margin:
            return "confirmed"
        return "refuted" if lo >= margin or hi <= -margin else "undecided"
    if expect not in ("lower", "higher"):
        raise ValueError(f"expect must be 'lower', 'higher' or 'same', got {expect!r}")
    below, above = hi < 0, lo > 0
    if not (below or above):
        return "undecided"
    return "confirmed" if below == (expect == "lower") else "refuted"


def compare_rows(
    rows: Mapping[str, Mapping],
    pairs: Sequence[tuple[str, str]],
    keys: Sequence[str],
    values: Callable[[Mapping, str], Sequence[float] | torch.Tensor],
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"B vs A": {key: paired_bootstrap(values(A, key), values(B, key))}}`` for each pair ``(A, B)`` of
    benchmark rows scored on the same images; ``values(row, key)`` reads a row's per-image values. ValueError
    naming the row when one is missing, has no ``"per_image"`` values, or was scored on another number of
    images. Shared by the reconstruction and inpainting benchmarks' ``--compare``."""
    for a, b in pairs:
        for name in (a, b):
            if name not in rows:
                raise ValueError(f"compare: no row named {name!r}; rows are {sorted(rows)}")
            if "per_image" not in rows[name]:
                raise ValueError(f"compare: row {name!r} has no per-image values; evaluate it again")
        if rows[a]["n"] != rows[b]["n"]:
            raise ValueError(
                f"compare: {a!r} and {b!r} were scored on {rows[a]['n']} and {rows[b]['n']} images"
            )
    return {
        f"{b} vs {a}": {k: paired_bootstrap(values(rows[a], k), values(rows[b], k)) for k in keys}
        for a, b in pairs
    }
