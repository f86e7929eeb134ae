"""The SynthFaces factor table, the part labels and sampling: sample ``i`` is a pure function of ``(seed, i)``
(a counter-based splitmix64 hash of ``(seed, index, factor)``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Factor:
    """One generative factor of SynthFaces.

    ``kind`` is ``"binary"`` (values 0/1, ``prob`` = P(1)), ``"continuous"`` (a float, uniform on
    ``[low, high]``) or ``"categorical"`` (an int in ``0 .. len(classes) - 1`` drawn with ``probs``).
    """

    name: str
    kind: str
    low: float
    high: float
    description: str
    prob: float = 0.5
    classes: tuple[str, ...] = ()
    probs: tuple[float, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of classes (2 for binary factors, 0 for continuous ones)."""
        if self.kind == "categorical":
            return len(self.classes)
        return 2 if self.kind == "binary" else 0


HAIR_STYLES = ("short", "long", "curly", "balding")

FACTORS: tuple[Factor, ...] = (
    # binary attributes: independent, P(1) between 0.3 and 0.5
    Factor("smiling", "binary", 0, 1, "mouth corners lifted (a wide grin when mouth_open)", prob=0.5),
    Factor("glasses", "binary", 0, 1, "round clear-lens glasses with dark frames", prob=0.3),
    Factor("beard", "binary", 0, 1, "full beard over jaw, chin and upper lip (hair colour)", prob=0.35),
    Factor("eyes_closed", "binary", 0, 1, "eyes drawn as closed lid lines (eye colour hidden)", prob=0.3),
    Factor("mouth_open", "binary", 0, 1, "open mouth showing teeth (grin or 'O')", prob=0.4),
    Factor("bangs", "binary", 0, 1, "a fringe of hair over the forehead, down to the brows", prob=0.4),
    # continuous factors, uniform on [low, high]
    Factor("yaw", "continuous", -1, 1, "head turn: features shift right and the left ear shows for +1"),
    Factor("face_width", "continuous", 0, 1, "face half-width from narrow (0) to wide (1)"),
    Factor("skin_tone", "continuous", 0, 1, "skin colour from light (0) to dark (1)"),
    Factor("hair_color", "continuous", 0, 1, "black (0), brown, auburn, blonde, platinum (1)"),
    Factor("age", "continuous", 0, 1, "grey hair and beard plus wrinkle lines, young (0) to old (1)"),
    Factor("eye_color", "continuous", 0, 1, "iris: dark brown (0), hazel, green, blue, grey-blue (1)"),
    Factor("eye_size", "continuous", 0, 1, "eye width and height, small (0) to large (1)"),
    Factor("brow", "continuous", 0, 1, "eyebrow tilt: stern, inner ends down (0) to worried, up (1)"),
    Factor("background", "continuous", 0, 1, "background hue along red, yellow, green, blue, violet"),
    Factor("lighting", "continuous", 0, 1, "light from the left (0), frontal (0.5), from the right (1)"),
    # categorical
    Factor(
        "hair_style",
        "categorical",
        0,
        len(HAIR_STYLES) - 1,
        "hair shape: 0 short, 1 long, 2 curly (big volume), 3 balding (sides only)",
        classes=HAIR_STYLES,
        probs=(0.3, 0.3, 0.2, 0.2),
    ),
)

FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)
BINARY_ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in FACTORS if f.kind == "binary")
CONTINUOUS_FACTORS: tuple[str, ...] = tuple(f.name for f in FACTORS if f.kind == "continuous")
CATEGORICAL_FACTORS: tuple[str, ...] = tuple(f.name for f in FACTORS if f.kind == "categorical")
_FACTOR = {f.name: f for f in FACTORS}

PARTS: tuple[str, ...] = ("background", "skin", "hair", "eyes", "brows", "mouth", "glasses", "beard")
BACKGROUND, SKIN, HAIR, EYES, BROWS, MOUTH, GLASSES, BEARD = range(len(PARTS))

SIZES = (32, 64, 128, 256)

# --------------------------------------------------------------------------------------------------
# Sampling: a counter-based hash, so sample i is a pure function of (seed, i)
# --------------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, indices: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1), one per index, for one factor stream (float64, 53 bits)."""
    key = _splitmix64(np.array([seed & _M64], dtype=np.uint64))
    key = _splitmix64(key ^ np.uint64((stream * 0xD1B54A32D192ED03) & _M64))
    h = _splitmix64(indices.astype(np.uint64) ^ key)
    h = _splitmix64(h + key)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _check_size(size) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer power of two in 32..256, got {size!r}")
    if int(size) not in SIZES:
        raise ValueError(f"size must be a power of two in 32..256 (one of {SIZES}), got {size}")
    return int(size)


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_indices(indices) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"indices must be a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"indices must be non-negative, got {int(arr.min())}")
    return arr


def sample_factors(seed: int, indices) -> dict[str, np.ndarray]:
    """Factors of samples ``indices`` of dataset ``seed``: ``{name: array of len(indices)}``.

    Binary and categorical factors are ``int64`` arrays, continuous factors ``float32``.
    Each factor of each sample depends only on ``(seed, index, factor)``.
    """
    seed = _check_seed(seed)
    idx = _check_indices(indices)
    out: dict[str, np.ndarray] = {}
    for stream, f in enumerate(FACTORS):
        u = _uniforms(seed, idx, stream)
        if f.kind == "binary":
            out[f.name] = (u < f.prob).astype(np.int64)
        elif f.kind == "continuous":
            out[f.name] = (f.low + (f.high - f.low) * u).astype(np.float32)
        else:
            edges = np.cumsum(f.probs)[:-1]
            out[f.name] = np.searchsorted(edges, u, side="right").astype(np.int64)
    return out


def _validate_factors(factors: dict) -> int:
    """Check a factor dict (all names, equal lengths, values in range); return the batch size."""
    if not isinstance(factors, dict):
        raise ValueError(f"factors must be a dict of arrays (see sample_factors), got {type(factors)}")
    missing = [n for n in FACTOR_NAMES if n not in factors]
    if missing:
        raise ValueError(f"factors is missing {missing}; build it with sample_factors(seed, indices)")
    unknown = sorted(set(factors) - set(FACTOR_NAMES))
    if unknown:
        raise ValueError(f"unknown factors {unknown}; known factors are {list(FACTOR_NAMES)}")
    n = None
    for f in FACTORS:
        v = factors[f.name]
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        v = np.asarray(v)
        if v.ndim != 1:
            raise ValueError(f"factor {f.name!r} must be a 1-D array, got shape {v.shape}")
        if n is None:
            n = len(v)
        elif len(v) != n:
            raise ValueError(f"factor {f.name!r} has {len(v)} values but other factors have {n}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"factor {f.name!r} has non-finite values")
        if f.kind == "continuous":
            if v.size and (v.min() < f.low - 1e-6 or v.max() > f.high + 1e-6):
                raise ValueError(
                    f"factor {f.name!r} must lie in [{f.low}, {f.high}], "
                    f"got values in [{v.min():.4g}, {v.max():.4g}]"
                )
        else:
            allowed = np.arange(f.num_classes)
            if v.size and not np.all(np.isin(v, allowed)):
                raise ValueError(
                    f"{f.kind} factor {f.name!r} must take integer values in {allowed.tolist()}, "
                    f"got {np.unique(v)[:8].tolist()}"
                )
    return int(n or 0)


def edit_factors(factors: dict, **changes) -> dict[str, np.ndarray]:
    """A copy of ``factors`` with some factors set, e.g. ``edit_factors(f, smiling=1, yaw=0.0)``.

    Each change is a scalar (applied to every sample) or an array of one value per sample.
    ``render(edit_factors(f, smiling=1))`` is the ground-truth edit of the faces ``f``: factors are
    drawn by separate parts, so changing one only repaints its own region (the mouth for
    ``smiling``/``mouth_open``, the eyes for ``eyes_closed``, ...; global factors such as
    ``lighting``, ``background`` or ``yaw`` naturally change more).
    """
    n = _validate_factors(factors)
    unknown = sorted(set(changes) - set(FACTOR_NAMES))
    if unknown:
        raise ValueError(f"unknown factors {unknown}; known factors are {list(FACTOR_NAMES)}")
    out = {k: np.array(factors[k]) for k in FACTOR_NAMES}
    for name, value in changes.items():
        f = _FACTOR[name]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        v = np.asarray(value)
        if v.ndim > 1 or (v.ndim == 1 and len(v) != n):
            raise ValueError(f"{name}={value!r}: give a scalar or one value per sample ({n})")
        v = np.broadcast_to(v, (n,))
        if f.kind == "continuous":
            out[name] = v.astype(np.float32).copy()
        else:
            if v.size and not np.all(v == np.round(v)):
                raise ValueError(f"{f.kind} factor {name!r} takes integer values, got {value!r}")
            out[name] = v.astype(np.int64).copy()
    _validate_factors(out)
    return out


def factors_to_array(factors: dict) -> np.ndarray:
    """Stack a factor dict into a float32 array ``[N, len(FACTORS)]`` in :data:`FACTORS` order."""
    _validate_factors(factors)
    return np.stack([np.asarray(factors[n], dtype=np.float32) for n in FACTOR_NAMES], axis=1)


def factors_from_array(array) -> dict[str, np.ndarray]:
    """Inverse of :func:`factors_to_array` (binary/categorical values are rounded)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[1] != len(FACTORS):
        raise ValueError(f"expected an array [N, {len(FACTORS)}] in FACTORS order, got shape {a.shape}")
    out = {}
    for j, f in enumerate(FACTORS):
        col = a[:, j]
        out[f.name] = col.astype(np.float32) if f.kind == "continuous" else np.rint(col).astype(np.int64)
    return out


def observable(factors: dict) -> dict[str, np.ndarray]:
    """Per factor, a bool array telling whether the factor can be seen in the rendered image.

    Only ``eye_color`` can be hidden (when ``eyes_closed == 1``); every other factor always shows.
    Use this to mask losses or scores of occluded labels.
    """
    n = _validate_factors(factors)
    out = {name: np.ones(n, dtype=bool) for name in FACTOR_NAMES}
    out["eye_color"] = np.asarray(factors["eyes_closed"]) == 0
    return out
