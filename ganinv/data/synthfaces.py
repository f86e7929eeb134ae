"""SynthFaces: procedural cartoon faces with known generative factors and part labels.

SynthFaces stands in for FFHQ in this project. Every sample is drawn from a set of *factors*
(:data:`FACTORS`) and rendered by a small vectorised painter, so that we know, for every image,

* the ground-truth factors (smiling, glasses, yaw, skin tone, ...), used to train the SynthFaces
  feature network (SFN) and to score inversions and edits;
* a per-pixel part segmentation (:data:`PARTS`), used for semantic masks;
* the image of the *same face* with one factor changed (:func:`edit_factors` + :func:`render`), the
  ground truth that GAN edits are compared against.

Sample ``i`` of seed ``s`` is a pure function of ``(s, i)``: factors come from a counter-based hash
of ``(seed, index, factor)`` and the renderer works on each sample independently (elementwise
arithmetic and ``sqrt`` only), so a face is bit-identical whatever batch it is rendered in.

Geometry lives in normalised coordinates: ``x`` runs from -1 (left edge) to 1 (right edge) and
``y`` from -1 (top) to 1 (bottom); one pixel is ``2 / size`` wide. Each part is an (approximate)
signed distance ``d`` (negative inside) turned into a coverage ``clip(0.5 - d / pixel, 0, 1)``:
the exact area coverage of a straight edge by a pixel, i.e. a box-filtered, alias-free edge at any
render size. Parts are painted back to front with "over" compositing; the part label of a pixel is
the top-most part covering at least half of it.

Painting order (back to front): background and shirt, back hair, neck, ears, face, nose, wrinkles,
beard, mouth, eyes, front hair (hair cap and bangs), brows, glasses, then a lighting gradient.

Labels of occluded factors (how to read them):

* ``eye_color`` is sampled and returned for every face, but the iris is only drawn when
  ``eyes_closed == 0``; with closed eyes the label is not observable (see :func:`observable`).
* Glasses have clear lenses (a light tint), so eyes, eye colour and eye size stay visible; only the
  frames, the bridge and the arms are labelled ``glasses``. Lens pixels keep the label underneath.
* Brows are drawn over the hair (cartoon style), so bangs never hide them; the mouth is drawn over
  the beard, so a beard never hides it.
* ``age`` greys head hair and beard (not the brows, which keep a darkened ``hair_color``) and adds
  wrinkle lines under the eyes, beside the mouth and on the forehead. Forehead lines are hidden by
  bangs and the mouth lines by a beard; the lines under the eyes are always visible.
* ``hair_style == "balding"`` keeps hair on the sides of the head, so ``hair_color`` is always
  visible; with ``bangs`` a balding head gets a small fringe but keeps a bare crown.
* Shirt and shoulders are labelled ``background`` (they are not a face part); their colour is a
  darker shade of the background colour, so they add no hidden factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .images import grid_array

__all__ = [
    "BINARY_ATTRIBUTES",
    "CATEGORICAL_FACTORS",
    "CONTINUOUS_FACTORS",
    "FACTORS",
    "FACTOR_NAMES",
    "HAIR_STYLES",
    "PARTS",
    "Factor",
    "SynthFaces",
    "edit_factors",
    "factors_from_array",
    "factors_to_array",
    "observable",
    "render",
    "sample_factors",
    "save_attribute_sheet",
    "save_figures",
    "save_sample_grid",
    "synthfaces",
]

# --------------------------------------------------------------------------------------------------
# Factor table
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Colours and geometry of a face (per-sample parameters)
# --------------------------------------------------------------------------------------------------

_SKIN = np.array(
    [[1.00, 0.87, 0.77], [0.96, 0.77, 0.63], [0.84, 0.62, 0.45], [0.64, 0.44, 0.30], [0.42, 0.28, 0.19]],
    dtype=np.float32,
)
_HAIR = np.array(
    [
        [0.08, 0.07, 0.07],  # black
        [0.26, 0.16, 0.10],  # dark brown
        [0.47, 0.30, 0.16],  # brown
        [0.66, 0.29, 0.13],  # auburn
        [0.89, 0.71, 0.40],  # blonde
        [0.96, 0.91, 0.74],  # platinum
    ],
    dtype=np.float32,
)
_EYE = np.array(
    [[0.30, 0.17, 0.08], [0.58, 0.40, 0.12], [0.25, 0.58, 0.24], [0.18, 0.42, 0.86], [0.58, 0.72, 0.86]],
    dtype=np.float32,
)
_BACKGROUND = np.array(
    [
        [0.93, 0.62, 0.62],  # red
        [0.95, 0.80, 0.55],  # orange
        [0.93, 0.92, 0.58],  # yellow
        [0.64, 0.88, 0.62],  # green
        [0.58, 0.86, 0.88],  # cyan
        [0.60, 0.70, 0.95],  # blue
        [0.79, 0.64, 0.93],  # violet
    ],
    dtype=np.float32,
)
_GREY_HAIR = np.array([0.80, 0.80, 0.82], dtype=np.float32)
_LIPS = np.array([0.78, 0.25, 0.27], dtype=np.float32)
_DARK = np.array([[0.10, 0.07, 0.07]], dtype=np.float32)
_MOUTH_INSIDE = np.array([[0.36, 0.07, 0.09]], dtype=np.float32)
_TEETH = np.array([[0.97, 0.96, 0.92]], dtype=np.float32)
_SCLERA = np.array([[0.98, 0.98, 0.96]], dtype=np.float32)
_PUPIL = np.array([[0.04, 0.03, 0.03]], dtype=np.float32)
_FRAME = np.array([[0.09, 0.09, 0.11]], dtype=np.float32)
_LENS = np.array([[0.80, 0.90, 1.00]], dtype=np.float32)

# Vertical layout (fixed): face centre, eye line, brow line, nose, mouth.
FACE_CY = 0.04
FACE_B = 0.70  # face half-height
FACE_TAPER = 0.45  # how much narrower the chin is than the cheeks
EYE_Y = FACE_CY - 0.10
BROW_Y = EYE_Y - 0.165
NOSE_Y = FACE_CY + 0.17
MOUTH_Y = FACE_CY + 0.38
OUTLINE = 0.018  # half-width of dark outlines

# Per hair style: back-hair ellipse (dx radius, dy centre, dy radius, bottom, top) and front cap
# (extra volume, hairline side drop exponent/amount, whether a cap exists without bangs).
_BACK_RX = np.array([0.06, 0.12, 0.27, 0.075], dtype=np.float32)  # added to the face half-width
_BACK_CY = np.array([-0.06, -0.02, -0.12, -0.02], dtype=np.float32)  # relative to FACE_CY
_BACK_RY = np.array([0.74, 0.86, 0.84, 0.62], dtype=np.float32)
_BACK_BOTTOM = np.array([0.02, 0.82, 0.42, 0.12], dtype=np.float32)  # relative to FACE_CY
_BACK_TOP = np.array([-9.0, -9.0, -9.0, -0.30], dtype=np.float32)  # relative to FACE_CY
_CAP_VOLUME = np.array([0.07, 0.06, 0.10, 0.0], dtype=np.float32)
_CAP_DROP = np.array([0.46, 0.62, 0.50, 0.46], dtype=np.float32)
_CAP_WITHOUT_BANGS = np.array([1.0, 1.0, 1.0, 0.0], dtype=np.float32)


def _palette(stops: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour path through ``stops`` at ``t`` in [0, 1]: ``[N, 3]`` float32."""
    k = len(stops) - 1
    pos = np.clip(t.astype(np.float32), 0, 1) * k
    i = np.minimum(np.floor(pos), k - 1).astype(np.int64)
    w = (pos - i)[:, None].astype(np.float32)
    return stops[i] * (1 - w) + stops[i + 1] * w


class _Params:
    """Per-sample geometry and colours derived from the factors (arrays shaped ``[n, 1, 1]``)."""

    def __init__(self, f: dict[str, np.ndarray]):
        def col(name, dtype=np.float32):
            return np.asarray(f[name]).astype(dtype)

        def b(v):  # broadcastable [n, 1, 1] float32
            return np.asarray(v, dtype=np.float32).reshape(-1, 1, 1)

        yaw = col("yaw")
        self.n = len(yaw)
        self.flags = {name: b(col(name)) for name in BINARY_ATTRIBUTES}
        style = np.asarray(f["hair_style"]).astype(np.int64)
        self.style = style
        self.age = b(col("age"))

        # face outline: shifts a little with yaw, and a turned face shows more of the near cheek
        a = 0.42 + 0.22 * col("face_width")
        self.face_cx = b(0.05 * yaw)
        self.face_a = b(a)
        self.face_al = b(a * (1 + 0.07 * yaw))
        self.face_ar = b(a * (1 - 0.07 * yaw))
        # features shift with yaw more than the outline; the far eye is smaller and eyes get closer
        feat = 0.17 * yaw
        self.feat_cx = b(feat)
        off = (0.36 * a + 0.05) * (1 - 0.1 * np.abs(yaw))
        self.eye_lx = b(feat - off * (1 + 0.1 * yaw))
        self.eye_rx = b(feat + off * (1 - 0.1 * yaw))
        ew = 0.082 + 0.05 * col("eye_size")
        self.scale_l = b(1 + 0.13 * yaw)  # foreshortening of the left / right features
        self.scale_r = b(1 - 0.13 * yaw)
        self.eye_lw = ew[:, None, None] * self.scale_l
        self.eye_rw = ew[:, None, None] * self.scale_r
        self.gaze = b(0.25 * yaw)  # iris offset as a fraction of the eye half-width
        self.nose_x = b(feat + 0.07 * yaw)
        self.mouth_x = b(feat + 0.02 * yaw)
        self.mouth_w = b((0.15 + 0.08 * (a - 0.42)) * (1 - 0.1 * np.abs(yaw)))
        self.brow_slope = b((col("brow") - 0.5) * 1.5)
        self.hair_cx = b(0.07 * yaw)  # hair moves a little more than the outline

        # hair style tables
        self.back_rx = b(a + _BACK_RX[style])
        self.back_cy = b(FACE_CY + _BACK_CY[style])
        self.back_ry = b(_BACK_RY[style])
        self.back_bottom = b(FACE_CY + _BACK_BOTTOM[style])
        self.back_top = b(FACE_CY + _BACK_TOP[style])
        self.curly = b(style == 2)
        self.cap_volume = b(_CAP_VOLUME[style])
        self.cap_drop = b(_CAP_DROP[style])
        bangs = col("bangs")
        self.cap_on = b(np.maximum(_CAP_WITHOUT_BANGS[style], bangs))
        self.bald_fringe = b((style == 3) & (bangs > 0))
        self.ears_on = b((style == 0) | (style == 3))
        self.ear_l = b(np.clip(1 + 0.7 * yaw, 0.15, 1.7))
        self.ear_r = b(np.clip(1 - 0.7 * yaw, 0.15, 1.7))

        # colours [n, 3]
        self.skin = _palette(_SKIN, col("skin_tone"))
        self.hair_pure = _palette(_HAIR, col("hair_color"))
        grey = 0.62 * col("age")[:, None]
        self.hair = self.hair_pure * (1 - grey) + _GREY_HAIR * grey
        self.brow_rgb = self.hair_pure * 0.55
        self.eye_rgb = _palette(_EYE, col("eye_color"))
        self.bg = _palette(_BACKGROUND, col("background"))
        self.shirt = self.bg * 0.45 + 0.05
        self.light = b((col("lighting") - 0.5) * 0.7)


# --------------------------------------------------------------------------------------------------
# The canvas: windows, coverage and compositing
# --------------------------------------------------------------------------------------------------


_FULL_WINDOWS = False  # tests set this to check that the part windows below are conservative


class _Window:
    def __init__(self, rows: slice, cols: slice, y: np.ndarray, x: np.ndarray):
        self.rows, self.cols, self.y, self.x = rows, cols, y, x


class _Canvas:
    """Image, part labels and foreground coverage of a chunk of faces being painted."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size
        self.px = 2.0 / size
        c = ((np.arange(size, dtype=np.float32) + 0.5) * np.float32(self.px) - 1).astype(np.float32)
        self.y = c.reshape(1, size, 1)
        self.x = c.reshape(1, 1, size)
        self.img = np.empty((n, 3, size, size), dtype=np.float32)
        self.parts = np.zeros((n, size, size), dtype=np.uint8)
        self.fg = np.zeros((n, size, size), dtype=np.float32)

    def window(self, y0: float, y1: float, x0: float, x1: float) -> _Window:
        """The pixels covering ``[y0, y1] x [x0, x1]`` (normalised) plus a 2-pixel margin."""
        s, px = self.size, self.px
        if _FULL_WINDOWS:  # debugging/tests: paint every part over the whole image
            y0, y1, x0, x1 = -1.0, 1.0, -1.0, 1.0
        r0 = min(max(int(math.floor((y0 + 1) / px)) - 2, 0), s)
        r1 = min(max(int(math.ceil((y1 + 1) / px)) + 2, 0), s)
        c0 = min(max(int(math.floor((x0 + 1) / px)) - 2, 0), s)
        c1 = min(max(int(math.ceil((x1 + 1) / px)) + 2, 0), s)
        return _Window(slice(r0, r1), slice(c0, c1), self.y[:, r0:r1], self.x[:, :, c0:c1])

    def coverage(self, d: np.ndarray) -> np.ndarray:
        """Box-filtered coverage of a shape with signed distance ``d`` (in place on ``d``)."""
        d *= np.float32(-1.0 / self.px)
        d += np.float32(0.5)
        return np.clip(d, 0, 1, out=d)

    def paint(self, win: _Window, alpha: np.ndarray, colour: np.ndarray, part: int | None, fg=True):
        """Composite ``colour`` ([n, 3]) over the window with coverage ``alpha`` ([n, h, w])."""
        view = self.img[:, :, win.rows, win.cols]
        alpha = np.broadcast_to(alpha, view[:, 0].shape)
        tmp = np.empty(alpha.shape, dtype=np.float32)
        colour = np.broadcast_to(colour, (self.n, 3))
        for c in range(3):
            ch = view[:, c]
            np.subtract(colour[:, c, None, None], ch, out=tmp)
            tmp *= alpha
            ch += tmp
        if part is not None:
            np.copyto(self.parts[:, win.rows, win.cols], np.uint8(part), where=alpha >= 0.5)
        if fg:
            cov = self.fg[:, win.rows, win.cols]
            np.subtract(1, cov, out=tmp)
            tmp *= alpha
            cov += tmp


def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the boundary)."""
    X = (x - cx) / rx
    Y = (y - cy) / ry
    F = (X * X - 1) + Y * Y
    G = (X / rx) ** 2 + (Y / ry) ** 2
    G = np.sqrt(G + 1e-12)
    F *= 0.5
    F /= G
    return F


def _tri(t: np.ndarray) -> np.ndarray:
    """Triangle wave with period 1, values in [0, 1] (0 at integers)."""
    return 2 * np.abs(t - np.floor(t + 0.5))


def _by_side(x, centre, left, right):
    """Per column, the left value where ``x < centre`` else the right one (both eyes in one pass)."""
    return np.where(x < centre, left, right)


# --------------------------------------------------------------------------------------------------
# The parts, back to front
# --------------------------------------------------------------------------------------------------


def _draw_background(cv: _Canvas, p: _Params):
    # a soft vertical gradient: lighter at the top
    shade = (1.06 - 0.12 * (cv.y + 1) / 2).astype(np.float32)  # [1, H, 1]
    cv.img[:] = p.bg[:, :, None, None] * shade[:, None]


def _draw_shirt(cv: _Canvas, p: _Params):
    win = cv.window(0.55, 1, -1, 1)
    d = _ellipse(win.x, win.y, p.face_cx * 0.5, np.float32(1.32), np.float32(0.98), np.float32(0.58))
    # round collar: cut out a disc around the neck
    neck = np.sqrt((win.x - p.face_cx * 0.7) ** 2 + (win.y - 0.70) ** 2) - (0.30 * p.face_a + 0.02)
    np.maximum(d, -neck, out=d)
    cv.paint(win, cv.coverage(d), p.shirt, BACKGROUND)


def _draw_back_hair(cv: _Canvas, p: _Params):
    win = cv.window(-1, 1, -1, 1)
    d = _ellipse(win.x, win.y, p.hair_cx, p.back_cy, p.back_rx, p.back_ry)
    np.maximum(d, win.y - p.back_bottom, out=d)
    # (balding: a top cut that slopes down outside the face, so the side tufts taper)
    slope_out = np.maximum(np.abs(win.x - p.hair_cx) - (p.face_a - 0.04), 0)
    np.maximum(d, (p.back_top + 1.2 * slope_out) - win.y, out=d)
    # curly hair: a bumpy outline
    tx = _tri((win.x - p.hair_cx) * 6.0)
    ty = _tri(win.y * 6.0)
    bumps = (tx * tx + ty * ty) * (0.04 * p.curly)
    d += bumps
    cov = cv.coverage(d)
    cv.paint(win, cov, p.hair * 0.8, HAIR)


def _draw_neck(cv: _Canvas, p: _Params):
    win = cv.window(FACE_CY + 0.3, 1, -0.5, 0.5)
    cx = p.face_cx * 0.7
    d = np.maximum(np.abs(win.x - cx) - 0.30 * p.face_a, (FACE_CY + 0.35) - win.y)
    cv.paint(win, cv.coverage(d), p.skin * 0.8, SKIN)


def _draw_ears(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.14, EYE_Y + 0.30, -0.95, 0.95)
    left = win.x < p.face_cx
    scale = _by_side(win.x, p.face_cx, p.ear_l, p.ear_r)
    side_a = _by_side(win.x, p.face_cx, p.face_al, p.face_ar)
    sign = np.where(left, np.float32(-1), np.float32(1))
    ex = p.face_cx + sign * (side_a - 0.03)
    ey = np.float32(EYE_Y + 0.08)
    rx = 0.075 * scale
    d = _ellipse(win.x, win.y, ex, ey, rx, np.float32(0.12))
    cv.paint(win, cv.coverage(d - OUTLINE) * p.ears_on, p.skin * 0.62, SKIN)
    cv.paint(win, cv.coverage(d) * p.ears_on, p.skin * 0.93, SKIN)
    # inner ear shadow
    d = _ellipse(win.x, win.y, ex + sign * 0.012 * scale, ey, 0.035 * scale, np.float32(0.07))
    cv.paint(win, cv.coverage(d) * (0.35 * p.ears_on), p.skin * 0.6, None, fg=False)


def _face_distance(x, y, p: _Params) -> np.ndarray:
    """Signed distance to the egg-shaped face outline (narrower at the chin, wider on the near side)."""
    a = _by_side(x, p.face_cx, p.face_al, p.face_ar)
    X = (x - p.face_cx) / a
    Y = (y - FACE_CY) / FACE_B
    Yp = np.maximum(Y, 0)
    m = 1 + FACE_TAPER * Yp * Yp  # [1, h, 1]
    dm = (2 * FACE_TAPER / FACE_B) * Yp
    X2 = X * X
    F = X2 * m + (Y * Y - 1)
    gx = (X / a) * m
    gx *= gx
    gy = X2 * (dm * 0.5) + Y / FACE_B
    gy *= gy
    gx += gy
    np.sqrt(gx, out=gx)
    F *= 0.5
    F /= gx + 1e-6
    return F


def _draw_face(cv: _Canvas, p: _Params):
    win = cv.window(FACE_CY - FACE_B - 0.02, FACE_CY + FACE_B + 0.02, -0.75, 0.75)
    d = _face_distance(win.x, win.y, p)
    cv.paint(win, cv.coverage(d - OUTLINE), p.skin * 0.62, SKIN)
    cv.paint(win, cv.coverage(d), p.skin, SKIN)


def _draw_nose(cv: _Canvas, p: _Params):
    win = cv.window(NOSE_Y - 0.12, NOSE_Y + 0.06, -0.5, 0.5)
    # a soft shadow under the tip and a highlight on it; the nose moves with yaw more than the eyes
    d = _ellipse(win.x, win.y, p.nose_x, np.float32(NOSE_Y), np.float32(0.055), np.float32(0.032))
    cv.paint(win, cv.coverage(d) * 0.45, p.skin * 0.62, None, fg=False)
    d = _ellipse(win.x, win.y, p.nose_x, np.float32(NOSE_Y - 0.012), np.float32(0.04), np.float32(0.02))
    cv.paint(win, cv.coverage(d) * 0.5, p.skin * 1.08 + 0.04, None, fg=False)


def _draw_wrinkles(cv: _Canvas, p: _Params):
    strength = 0.8 * p.age
    t = np.float32(0.011)
    colour = p.skin * 0.5
    # under the eyes: a short arc below each eye
    win = cv.window(EYE_Y + 0.02, EYE_Y + 0.16, -0.65, 0.65)
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    ew = _by_side(win.x, p.feat_cx, p.eye_lw, p.eye_rw)
    s = (win.x - ex) / ew
    yc = EYE_Y + 0.62 * ew + 0.05 - 0.03 * (1 - s * s)
    d = np.abs(win.y - yc) - t
    np.maximum(d, (np.abs(s) - 0.75) * ew, out=d)
    cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)
    # beside the nose down to the mouth corners
    y0, y1 = NOSE_Y - 0.02, MOUTH_Y + 0.07
    win = cv.window(y0, y1, -0.6, 0.6)
    v = np.clip((win.y - y0) / (y1 - y0), 0, 1)
    dx = np.abs(win.x - p.mouth_x)
    xc = p.mouth_w * (0.55 + 0.55 * v) + 0.05
    d = np.abs(dx - xc) - t
    np.maximum(d, np.abs(win.y - (y0 + y1) / 2) - (y1 - y0) / 2, out=d)
    cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)
    # forehead: two long shallow arcs
    win = cv.window(FACE_CY - 0.53, FACE_CY - 0.35, -0.6, 0.6)
    half = 0.55 * p.face_a
    s = (win.x - p.feat_cx) / half
    s2 = np.minimum(s * s, 1)
    for yf in (FACE_CY - 0.42, FACE_CY - 0.50):
        d = np.abs(win.y - (yf + 0.03 * s2)) - t
        np.maximum(d, (np.abs(s) - 1) * half, out=d)
        cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)


def _draw_beard(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y, FACE_CY + FACE_B + 0.12, -0.75, 0.75)
    on = p.flags["beard"]
    # the face outline grown a little (beard volume), below a line from the sideburns to the lip
    d = _face_distance(win.x, (win.y - FACE_CY) * (1 / 1.08) + FACE_CY, p)
    s = np.clip((win.x - p.feat_cx) / p.face_a, -1, 1)
    top = (MOUTH_Y - 0.10) - (MOUTH_Y - 0.10 - (EYE_Y + 0.12)) * (s * s) ** 2
    np.maximum(d, top - win.y, out=d)
    # a dark rim then the beard body, so that a beard close to the skin colour still reads
    cv.paint(win, cv.coverage(d + 0.005) * on, p.hair * 0.5, BEARD)
    cv.paint(win, cv.coverage(d + 0.035) * on, p.hair * 0.92, BEARD)


def _mouth_shape(x, y, p: _Params, up: np.ndarray, down: np.ndarray, width, grow: float):
    """Distance to the lens between the curves ``y0 - c s^2 -/+ up/down (1 - s^2)``, s = x / width."""
    smile = p.flags["smiling"]
    c = 0.075 * smile - 0.005
    s = (x - p.mouth_x) / width
    s2 = np.minimum(s * s, 1)
    h = 1 - s2
    mid = MOUTH_Y - c * s2 + 0.5 * (down - up) * h
    half = 0.5 * (up + down) * h
    slope = (2 * c) * s / width  # derivative of the centre line (approximate)
    inv = 1 / np.sqrt(1 + slope * slope)
    d = np.abs(y - mid)
    d -= half
    d *= inv
    np.maximum(d, (np.abs(s) - 1) * width, out=d)
    d -= grow
    return d


def _draw_mouth(cv: _Canvas, p: _Params):
    win = cv.window(MOUTH_Y - 0.16, MOUTH_Y + 0.18, -0.55, 0.55)
    smile, open_ = p.flags["smiling"], p.flags["mouth_open"]
    lips = np.clip(p.skin * 0.45 + _LIPS * 0.55, 0, 1) * 0.85
    # closed: a thin lens of lips; open: grin (smiling) or 'O' (not smiling)
    width = p.mouth_w * (1 - 0.25 * open_ * (1 - smile))
    up = np.float32(0.018) + open_ * (0.0 + 0.05 * (1 - smile))
    down = np.float32(0.018) + open_ * (0.10 - 0.035 * (1 - smile))
    d = _mouth_shape(win.x, win.y, p, up, down, width, 0.018)
    cv.paint(win, cv.coverage(d), lips, MOUTH)
    if np.any(open_):
        d = _mouth_shape(win.x, win.y, p, up, down, width, 0.0)
        cav = cv.coverage(d.copy()) * open_
        cv.paint(win, cav, _MOUTH_INSIDE, MOUTH)
        # teeth: a band under the upper lip
        s = (win.x - p.mouth_x) / width
        s2 = np.minimum(s * s, 1)
        c = 0.075 * smile - 0.005
        upper = MOUTH_Y - c * s2 - up * (1 - s2)
        d2 = (win.y - upper) - 0.045
        np.maximum(d2, d, out=d2)
        cv.paint(win, cv.coverage(d2) * open_, _TEETH, MOUTH)


def _draw_eyes(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.13, EYE_Y + 0.13, -0.65, 0.65)
    closed = p.flags["eyes_closed"]
    open_ = 1 - closed
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    ew = _by_side(win.x, p.feat_cx, p.eye_lw, p.eye_rw)
    eh = 0.62 * ew
    ey = np.float32(EYE_Y)
    if np.any(open_):
        d = _ellipse(win.x, win.y, ex, ey, ew, eh)
        cv.paint(win, cv.coverage(d - OUTLINE) * open_, _DARK, EYES)
        sclera = cv.coverage(d)
        cv.paint(win, sclera * open_, _SCLERA, EYES)
        ix = ex + p.gaze * ew
        r = np.sqrt((win.x - ix) ** 2 + (win.y - ey) ** 2)
        iris = cv.coverage(r - 0.85 * eh)
        np.minimum(iris, sclera, out=iris)
        cv.paint(win, iris * open_, p.eye_rgb, EYES)
        pupil = cv.coverage(r - 0.27 * eh)
        cv.paint(win, pupil * open_, _PUPIL, EYES)
    if np.any(closed):
        # a downward arc (a closed lid) as wide as the open eye
        s = (win.x - ex) / ew
        s2 = np.minimum(s * s, 1)
        yc = ey + 0.35 * eh * (1 - s2)
        d = np.abs(win.y - yc) - 0.022
        np.maximum(d, (np.abs(s) - 1) * ew, out=d)
        cv.paint(win, cv.coverage(d) * closed, _DARK, EYES)


def _draw_front_hair(cv: _Canvas, p: _Params):
    win = cv.window(-1, EYE_Y + 0.75, -1, 1)
    bangs = p.flags["bangs"]
    a = p.face_a
    s = (win.x - p.hair_cx) / a
    s2 = s * s
    # hairline: high forehead, or a scalloped fringe just above the brows
    fringe = BROW_Y - 0.10 - 0.045 * _tri((win.x - p.hair_cx) * (1 / 0.11))
    high = np.float32(FACE_CY - 0.56)
    line = high + bangs * (fringe - high)
    s4 = s2 * s2
    line = line + p.cap_drop * (s4 * s4 * s2)  # sideburns: the hairline drops near the face edge
    d = _ellipse(win.x, win.y, p.hair_cx, np.float32(FACE_CY - 0.02), a + p.cap_volume, FACE_B + p.cap_volume)
    np.maximum(d, win.y - line, out=d)
    # a balding head with bangs only has a band of fringe (the crown stays bare)
    np.maximum(d, p.bald_fringe * ((FACE_CY - 0.52) - win.y) - (1 - p.bald_fringe) * 9, out=d)
    cov = cv.coverage(d)
    cov *= p.cap_on
    cv.paint(win, cov, p.hair, HAIR)


def _draw_brows(cv: _Canvas, p: _Params):
    win = cv.window(BROW_Y - 0.17, BROW_Y + 0.17, -0.7, 0.7)
    out_sign = np.where(win.x < p.feat_cx, np.float32(-1), np.float32(1))
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    length = 0.12 * _by_side(win.x, p.feat_cx, p.scale_l, p.scale_r)  # half-length, foreshortened
    s = (win.x - (ex + out_sign * 0.012)) * out_sign / length  # -1 inner end, +1 outer end
    s_c = np.clip(s, -1, 1)
    # centre line: tilted by the brow factor, slightly arched; thicker at the inner end
    m = p.brow_slope
    yc = BROW_Y + m * length * s_c - 0.025 * (1 - s_c * s_c)
    slope = m + (0.05 / length) * s_c
    thick = 0.032 * (1 - 0.3 * s_c)
    d = np.abs(win.y - yc)
    d /= np.sqrt(1 + slope * slope)
    d -= thick
    np.maximum(d, (np.abs(s) - 1) * length, out=d)
    cv.paint(win, cv.coverage(d), p.brow_rgb, BROWS)


def _draw_glasses(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.2, EYE_Y + 0.18, -0.9, 0.9)
    on = p.flags["glasses"]
    left = win.x < p.feat_cx
    gx = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    rx = 0.165 * _by_side(win.x, p.feat_cx, p.scale_l, p.scale_r)
    ry = np.float32(0.14)
    gy = np.float32(EYE_Y + 0.005)
    d = _ellipse(win.x, win.y, gx, gy, rx, ry)
    cv.paint(win, cv.coverage(d.copy()) * (0.22 * on), _LENS, None, fg=False)
    ring = np.abs(d) - 0.02
    # bridge and arms: horizontal bars at the top of the lenses
    bar_y = gy - 0.05
    bar = np.abs(win.y - bar_y) - 0.016
    inner = np.abs(win.x - p.feat_cx)
    bridge = np.maximum(bar, inner - (np.abs(gx - p.feat_cx) - rx + 0.02))
    sign = np.where(left, np.float32(-1), np.float32(1))
    arm_end = p.face_cx + sign * (_by_side(win.x, p.face_cx, p.face_al, p.face_ar) + 0.04)
    arm = np.maximum(bar, (win.x - arm_end) * sign)
    np.maximum(arm, (np.abs(gx - p.feat_cx) + rx - 0.02) - inner, out=arm)
    np.minimum(ring, bridge, out=ring)
    np.minimum(ring, arm, out=ring)
    cv.paint(win, cv.coverage(ring) * on, _FRAME, GLASSES)


def _apply_lighting(cv: _Canvas, p: _Params):
    # a horizontal brightness gradient across the head (foreground only)
    g = np.clip((cv.x - p.face_cx) / (p.face_a + 0.15), -1, 1) * p.light  # [n, 1, W]
    g = cv.fg * g
    g += 1
    cv.img *= g[:, None]


_PAINTERS = (
    _draw_background,
    _draw_shirt,
    _draw_back_hair,
    _draw_neck,
    _draw_ears,
    _draw_face,
    _draw_nose,
    _draw_wrinkles,
    _draw_beard,
    _draw_mouth,
    _draw_eyes,
    _draw_front_hair,
    _draw_brows,
    _draw_glasses,
    _apply_lighting,
)


# --------------------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------------------


def _check_size(size) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer power of two in 32..256, got {size!r}")
    if int(size) not in SIZES:
        raise ValueError(f"size must be a power of two in 32..256 (one of {SIZES}), got {size}")
    return int(size)


def render(factors: dict, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render faces: ``(images float32 [N, 3, size, size] in [-1, 1], parts uint8 [N, size, size])``.

    ``factors`` is a dict as returned by :func:`sample_factors` / :func:`edit_factors`. The work is
    done in chunks of about 64k pixels so that temporaries stay in cache.
    """
    size = _check_size(size)
    n = _validate_factors(factors)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    parts = np.empty((n, size, size), dtype=np.uint8)
    chunk = max(1, 65536 // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sub = {k: np.asarray(factors[k])[start:stop] for k in FACTOR_NAMES}
        p = _Params(sub)
        cv = _Canvas(stop - start, size)
        for painter in _PAINTERS:
            painter(cv, p)
        np.clip(cv.img, 0, 1, out=cv.img)
        cv.img *= 2
        cv.img -= 1
        images[start:stop] = cv.img
        parts[start:stop] = cv.parts
    return images, parts


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


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


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
