"""Inpainting masks: free-form brush and box masks, hole-ratio buckets, semantic masks, checks and I/O.

Convention (used everywhere in ganinv): a mask is a float tensor ``[N, 1, H, W]`` (a single one may be
``[1, H, W]`` or ``[H, W]``) whose values are exactly 0 or 1, with **1 = keep** (a known pixel) and
**0 = hole** (an erased pixel). In the notation of Yildirim et al., "Diverse Inpainting and Editing with
GAN Inversion" (ICCV 2023), the erased image is ``x_erased = x * mask``; the *hole ratio* of a mask is its
fraction of zeros. Mask files are the same picture: **white = keep, black = hole**.

Free-form masks re-implement the generator of CoModGAN (Zhao et al., "Large Scale Image Completion via
Co-Modulated Generative Adversarial Networks", ICLR 2021; see ``docs/papers/diverse_inpainting.md`` §6),
since Yildirim et al. do not say which masks they used: a union of random rectangles (up to 10·coef of side at
most s/2 and 5·coef of side at most s) and random brush strokes (up to 20·coef polylines of 4-17 segments,
segment lengths around diagonal/8, alternating turning angles around 2π/5, widths 12-48 px on CoModGAN's
512 px canvas, random flips). Every shape is drawn in the unit square, independently of the resolution,
and rasterised by testing pixel centres, so a 64 px mask is the 256 px mask sampled more coarsely.
Mask ``i`` is a pure function of ``(seed, i, size, kind)`` and of the hole-ratio range it must lie in.

Hole-ratio buckets (:data:`HOLE_BUCKETS`) are CoModGAN's evaluation settings ``-h0`` ... ``-h4``: open
intervals (0, 0.2), (0.2, 0.4), ..., (0.8, 1). Masks in a range are drawn by rejection sampling with
CoModGAN's rule ``coef = min(lo + hi, 1)`` for the number of shapes. Open intervals never contain a
ratio of exactly 0 or 1, and a power-of-two image can never have a ratio of exactly 0.2, 0.4, 0.6 or 0.8.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .images import save_image
from .synthfaces import PARTS

__all__ = [
    "HOLE_BUCKETS",
    "MASK_KINDS",
    "MaskError",
    "bucket_index",
    "bucket_masks",
    "check_mask",
    "hole_ratio",
    "load_mask",
    "random_masks",
    "save_mask",
    "semantic_mask",
]

HOLE_BUCKETS: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0))
MASK_KINDS: tuple[str, ...] = ("mixed", "brush", "box")

# CoModGAN's shape parameters as fractions of the image side (its brush widths are given at 512 px).
_WIDTH = (12 / 512, 48 / 512)
_VERTICES = (4, 18)  # number of segments per stroke: an integer in [4, 18)
_MEAN_ANGLE, _ANGLE_SPREAD = 2 * math.pi / 5, 2 * math.pi / 15
_RADIUS = math.sqrt(2.0) / 8  # mean segment length: the diagonal / 8
_STROKES, _SMALL_BOXES, _LARGE_BOXES = 20, 10, 5  # maximum counts at coef = 1


class MaskError(ValueError):
    """A mask tensor or file is unusable; the message names the problem and the fix."""


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Free-form masks (CoModGAN), rasterised by pixel-centre tests
# --------------------------------------------------------------------------------------------------


def _pixels(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Index range ``[a, b)`` of the pixels whose centres ``(k + 0.5) / size`` lie in ``[lo, hi]``."""
    return max(math.ceil(lo * size - 0.5), 0), min(math.floor(hi * size - 0.5) + 1, size)


def _stroke(hole: np.ndarray, pts: np.ndarray, width: float) -> None:
    """Mark pixels within ``width / 2`` of the polyline ``pts`` [k, 2] (x, y): round joints and caps."""
    s, r = hole.shape[0], width / 2
    c0, c1 = _pixels(pts[:, 0].min() - r, pts[:, 0].max() + r, s)
    r0, r1 = _pixels(pts[:, 1].min() - r, pts[:, 1].max() + r, s)
    if c0 >= c1 or r0 >= r1:
        return
    a, d = pts[:-1, :, None, None], (pts[1:] - pts[:-1])[:, :, None, None]
    ux = ((np.arange(c0, c1, dtype=np.float32) + 0.5) / s)[None, None, :] - a[:, 0]  # [segments, 1, w]
    uy = ((np.arange(r0, r1, dtype=np.float32) + 0.5) / s)[None, :, None] - a[:, 1]  # [segments, h, 1]
    t = np.clip((ux * d[:, 0] + uy * d[:, 1]) / np.maximum((d**2).sum(1), 1e-12), 0.0, 1.0)
    dist2 = (ux - t * d[:, 0]) ** 2 + (uy - t * d[:, 1]) ** 2
    hole[r0:r1, c0:c1] |= (dist2 <= r * r).any(0)


def _brush(rng: np.random.Generator, hole: np.ndarray, max_count: int) -> None:
    for _ in range(rng.integers(max_count)):
        k = int(rng.integers(*_VERTICES))
        lo, hi = _MEAN_ANGLE - rng.uniform(0, _ANGLE_SPREAD), _MEAN_ANGLE + rng.uniform(0, _ANGLE_SPREAD)
        angles = rng.uniform(lo, hi, k)
        angles[::2] = 2 * math.pi - angles[::2]  # alternate turning directions: a zig-zag stroke
        steps = np.clip(rng.normal(_RADIUS, _RADIUS / 2, k), 0, 2 * _RADIUS)
        x, y = rng.uniform(0, 1, 2).tolist()
        xs, ys = [x], [y]
        for dx, dy in zip((steps * np.cos(angles)).tolist(), (steps * np.sin(angles)).tolist()):
            x, y = min(max(x + dx, 0.0), 1.0), min(max(y + dy, 0.0), 1.0)  # clipped each step, as in CoModGAN
            xs.append(x)
            ys.append(y)
        pts = np.array([xs, ys], dtype=np.float32).T
        flip = rng.random(2) < 0.5
        pts[:, flip] = 1 - pts[:, flip]
        _stroke(hole, pts, rng.uniform(*_WIDTH))


def _boxes(rng: np.random.Generator, hole: np.ndarray, max_count: int, max_side: float) -> None:
    s = hole.shape[0]
    for _ in range(rng.integers(max_count)):
        w, h = rng.uniform(0, max_side, 2)
        x, y = rng.uniform(-w / 2, 1 - w / 2), rng.uniform(-h / 2, 1 - h / 2)  # may stick out by half
        (c0, c1), (r0, r1) = _pixels(x, x + w, s), _pixels(y, y + h, s)
        hole[r0:r1, c0:c1] = True


def _sample(seed: int, i: int, size: int, kind: str, lo: float, hi: float, max_tries: int) -> np.ndarray:
    """Mask ``i`` (float32 [size, size], 1 = keep) whose hole ratio lies in the open interval (lo, hi)."""
    stream = round(lo * 1000) * 1001 + round(hi * 1000)
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, i]))
    coef = min(lo + hi, 1.0)
    for _ in range(max_tries):
        hole = np.zeros((size, size), dtype=bool)
        if kind != "brush":
            _boxes(rng, hole, max(int(_SMALL_BOXES * coef), 1), 0.5)
            _boxes(rng, hole, max(int(_LARGE_BOXES * coef), 1), 1.0)
        if kind != "box":
            _brush(rng, hole, max(int(_STROKES * coef), 1))
        if lo < hole.mean() < hi:
            return (~hole).astype(np.float32)
    raise MaskError(
        f"could not draw {kind!r} mask {i} with a hole ratio in ({lo}, {hi}) at {size}x{size} after "
        f"{max_tries} tries; raise max_tries, use a larger size, a wider range or kind='mixed'"
    )


def bucket_masks(
    bucket: int | tuple[float, float],
    n: int,
    size: int,
    seed: int = 0,
    kind: str = "mixed",
    offset: int = 0,
    max_tries: int = 2000,
) -> torch.Tensor:
    """Masks ``offset .. offset + n - 1`` [n, 1, size, size] with hole ratio inside ``bucket``.

    ``bucket`` is an index into :data:`HOLE_BUCKETS` or an open interval ``(lo, hi)`` with
    ``0 <= lo < hi <= 1``. Each mask is rejection-sampled from its own generator seeded by
    ``(seed, bucket, index)``, so it does not depend on ``n`` or on the other masks; after
    ``max_tries`` candidates for one mask a :class:`MaskError` is raised.
    """
    if isinstance(bucket, (int, np.integer)) and not isinstance(bucket, bool):
        if not 0 <= bucket < len(HOLE_BUCKETS):
            raise ValueError(f"bucket index must be in 0..{len(HOLE_BUCKETS) - 1}, got {bucket}")
        bucket = HOLE_BUCKETS[bucket]
    try:
        lo, hi = (float(v) for v in bucket)
    except (TypeError, ValueError):
        raise ValueError(
            f"bucket must be an index into HOLE_BUCKETS or a pair (lo, hi), got {bucket!r}"
        ) from None
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"bucket (lo, hi) must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    seed, n, size = _check_int("seed", seed, 0), _check_int("n", n, 0), _check_int("size", size, 1)
    offset, max_tries = _check_int("offset", offset, 0), _check_int("max_tries", max_tries, 1)
    masks = [_sample(seed, offset + i, size, kind, lo, hi, max_tries) for i in range(n)]
    return torch.from_numpy(np.stack(masks) if masks else np.ones((0, size, size), np.float32))[:, None]


def random_masks(n: int, size: int, seed: int = 0, kind: str = "mixed", offset: int = 0) -> torch.Tensor:
    """Free-form training masks ``offset .. offset + n - 1`` [n, 1, size, size] (1 = keep, 0 = hole).

    ``kind``: ``"mixed"`` (boxes and brush strokes, CoModGAN's default), ``"brush"`` or ``"box"``.
    As in CoModGAN the hole ratio lies in (0, 1): neither empty nor fully erased. Mask ``i`` is a pure
    function of ``(seed, i, size, kind)``, whatever batch it is drawn in.
    """
    return bucket_masks((0.0, 1.0), n, size, seed=seed, kind=kind, offset=offset)


# --------------------------------------------------------------------------------------------------
# Hole ratios and semantic masks
# --------------------------------------------------------------------------------------------------


def hole_ratio(mask) -> torch.Tensor:
    """Fraction of hole pixels (zeros) of each mask: float tensor [N]."""
    return 1 - check_mask(mask).mean(dim=(1, 2, 3))


def bucket_index(mask) -> torch.Tensor:
    """Index into :data:`HOLE_BUCKETS` of each mask's hole ratio (long tensor [N]; -1 if in none)."""
    ratio = hole_ratio(mask).double()
    out = torch.full(ratio.shape, -1, dtype=torch.long)
    for b, (lo, hi) in enumerate(HOLE_BUCKETS):
        out[(ratio > lo) & (ratio < hi)] = b
    return out


def semantic_mask(parts, erase: str | Sequence[str] = ("eyes",), dilate: float = 1 / 32) -> torch.Tensor:
    """Mask [N, 1, H, W] that erases the SynthFaces ``parts`` named in ``erase``, grown by ``dilate``.

    ``parts`` is a part-label map [N, H, W] or [H, W] (ids into ``synthfaces.PARTS``, as returned by
    ``SynthFaces``/``render``). A pixel is a hole when it lies within ``dilate * W`` pixels (Euclidean)
    of a pixel of an erased part: the default 1/32 is 2 px at 64², 8 px at 256²; 0 erases the part only.
    """
    names = (erase,) if isinstance(erase, str) else tuple(erase)
    unknown = [e for e in names if e not in PARTS]
    if unknown:
        raise MaskError(f"unknown part name(s) {unknown}; valid parts are: {', '.join(PARTS)}")
    if (
        isinstance(dilate, bool)
        or not isinstance(dilate, (int, float, np.floating))
        or not 0 <= dilate < math.inf
    ):
        raise ValueError(
            f"dilate must be a finite number >= 0 (a fraction of the image size), got {dilate!r}"
        )
    p = parts if isinstance(parts, torch.Tensor) else torch.from_numpy(np.asarray(parts))
    p = p[None] if p.ndim == 2 else p
    if p.ndim != 3 or p.is_floating_point() or p.dtype == torch.bool:
        raise MaskError(
            f"parts must be an integer label map [N, H, W] or [H, W] (ids into PARTS), "
            f"got shape {tuple(p.shape)} and dtype {p.dtype}"
        )
    ids = torch.tensor([PARTS.index(e) for e in names], dtype=torch.long, device=p.device)
    hole = torch.isin(p.long(), ids).float()[:, None]
    radius = float(dilate) * p.shape[-1]
    if radius >= 1:
        k = int(radius)
        off = torch.arange(-k, k + 1, dtype=torch.float32, device=p.device)
        disc = (off[:, None] ** 2 + off[None, :] ** 2 <= radius * radius).float()[None, None]
        hole = (F.conv2d(hole, disc, padding=k) > 0.5).float()
    return 1 - hole


# --------------------------------------------------------------------------------------------------
# Validation and files
# --------------------------------------------------------------------------------------------------


def check_mask(mask, image=None, name: str = "mask") -> torch.Tensor:
    """Validate a mask and return it as a float tensor [N, 1, H, W] of exact 0/1 values (1 = keep).

    Accepts [N, 1, H, W], [1, H, W] or [H, W] tensors or numpy arrays: float or integer 0/1, bool
    (True = keep) and uint8 0/255 (as read from an 8-bit image; 255 = keep). With ``image`` ([N, C, H, W]
    or [C, H, W]) the mask must have its H x W and a batch of 1 or N; it is returned on the image's
    device and float dtype. All-ones (no hole) and all-zeros (nothing kept) masks are valid. Problems
    raise :class:`MaskError` naming the problem and the fix.
    """
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise MaskError(
            f"{name} must be a torch tensor or numpy array [N, 1, H, W], got {type(mask).__name__}"
        )
    shape = tuple(mask.shape)
    if mask.ndim == 3 and shape[0] != 1:
        raise MaskError(
            f"{name} has shape {shape}: a 3-D mask must be [1, H, W]; masks are single-channel "
            f"(1 = keep, 0 = hole): use [N, 1, H, W] for a batch, or one channel of a colour mask"
        )
    if mask.ndim not in (2, 3, 4):
        raise MaskError(
            f"{name} has {mask.ndim} dimensions (shape {shape}); expected [N, 1, H, W], [1, H, W] or [H, W]"
        )
    m = mask.reshape((1,) * (4 - mask.ndim) + shape)
    if m.shape[1] != 1:
        raise MaskError(
            f"{name} has {m.shape[1]} channels (shape {shape}); masks are single-channel with 1 = keep, "
            f"0 = hole: keep one channel, e.g. {name}[:, :1]"
        )
    if m.dtype == torch.uint8 and m.numel() and int(m.max()) > 1:
        m = m.float() / 255  # 0/255 as read from an 8-bit image
    elif m.dtype.is_complex:
        raise MaskError(f"{name} has dtype {m.dtype}; masks must be float, bool or integer 0/1")
    m = m.float()
    nan = int(torch.isnan(m).sum())
    if nan:
        raise MaskError(
            f"{name} has {nan} NaN values; masks must be exactly 0 (hole) or 1 (keep): fix its source"
        )
    bad = int(((m != 0) & (m != 1)).sum())
    if bad:
        raise MaskError(
            f"{name} has {bad} of {m.numel()} values that are neither 0 nor 1 (range [{float(m.min()):.3g}, "
            f"{float(m.max()):.3g}]); masks must be binary (1 = keep, 0 = hole): threshold it with "
            f"({name} > 0.5).float()"
        )
    if image is not None:
        ishape = tuple(image.shape)
        if len(ishape) not in (3, 4):
            raise MaskError(
                f"image must be [N, C, H, W] or [C, H, W] to check a mask against, got shape {ishape}"
            )
        if tuple(m.shape[-2:]) != ishape[-2:]:
            raise MaskError(
                f"{name} is {m.shape[-2]}x{m.shape[-1]} (H x W) but the image is {ishape[-2]}x{ishape[-1]}; "
                f"resize the mask to the image (load_mask(path, size=...) or nearest-neighbour interpolation)"
            )
        if len(ishape) == 4 and m.shape[0] not in (1, ishape[0]):
            raise MaskError(
                f"{name} has a batch of {m.shape[0]} but the images {ishape[0]}; give 1 or {ishape[0]} masks"
            )
        if isinstance(image, torch.Tensor):
            m = m.to(device=image.device, dtype=image.dtype if image.is_floating_point() else torch.float32)
    return m


def load_mask(path, size: int | None = None) -> torch.Tensor:
    """Read a mask image as a float tensor [1, H, W]: white = keep (1), black = hole (0).

    The file is converted to 8-bit grey and thresholded at mid-grey (>= 128 keeps), so anti-aliased or
    JPEG masks load as binary. With ``size``, a square mask of another size is resized (area average,
    then the threshold); a non-square one is refused. Unreadable files raise :class:`MaskError`.
    """
    size = None if size is None else _check_int("size", size, 1)
    p = Path(path)
    if not p.is_file():
        raise MaskError(f"{p}: {'is a directory, not a mask image' if p.is_dir() else 'no such file'}")
    try:
        with Image.open(p) as img:
            grey = img.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MaskError(
            f"{p}: cannot read it as an image ({e}); save masks as PNG, white = keep, black = hole"
        ) from e
    if size is not None and grey.size != (size, size):
        if grey.width != grey.height:
            raise MaskError(
                f"{p}: mask is {grey.height}x{grey.width} (H x W), not square; crop it to a square first"
            )
    values = np.asarray(grey)
    if values.max() == 1:  # saved as 0 / 1, not 0 / 255: it looks black but is meant as a binary mask
        warnings.warn(
            f"{p}: the mask holds only the values 0 and 1; read as 1 = keep, 0 = hole", stacklevel=2
        )
        grey = Image.fromarray((values * 255).astype(np.uint8))
    if size is not None and grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.BOX)
    return torch.from_numpy((np.asarray(grey) >= 128).astype(np.float32))[None]


def save_mask(mask, path) -> Path:
    """Save one mask ([1, 1, H, W], [1, H, W] or [H, W]) as a grey image: white = keep, black = hole."""
    m = check_mask(mask)
    if m.shape[0] != 1:
        raise MaskError(f"save_mask saves one mask, got a batch of {m.shape[0]}; save them one by one")
    return save_image(m[0] * 2 - 1, path)
