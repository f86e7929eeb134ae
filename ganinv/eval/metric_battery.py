"""Do the reported metrics agree with what the eye sees? A graded distortion battery on held-out SynthFaces.

The reconstruction table of CLCAE (Tab. 1: MSE, LPIPS, SSIM, ID) and ours rank encoders by distances to the
input. Such a distance is only as good as what it responds to, and LPIPS itself was validated by how it orders
graded distortions (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", Sec. 3: traditional and CNN-based distortions at several strengths). This module does the same for
every metric the project reports, on held-out SynthFaces (:data:`ganinv.common.EVAL_SEED`):

* **Families** (:data:`FAMILIES`), each at the graded strengths of :data:`LEVELS` (natural units in
  :data:`UNITS`, pixel sizes given for 64 px images and scaled with the image size): blur, Gaussian noise,
  JPEG, colour blotches, ghosting (a faint shifted copy: double edges), smooth local warps, small shifts, a
  global colour cast and a pasted patch of another face. The random parts (blob places and colours, warp
  fields, directions, patch places) are drawn once per image from ``seed``, so the strengths of one family
  are nested: a stronger level is the same distortion, larger.
* **The encoders' own error patterns**: ``x + s (x̂ - x)`` for each bundled encoder's reconstruction x̂ at
  the strengths :data:`ENCODER_LEVELS` (family ``"encoder:<method>"``).
* **Response of each metric** (:data:`METRIC_ORIENTATION`), oriented so that larger means "worse": its
  Spearman correlation with the strength, per family, of the per-image mean over the battery images (the
  set-level FIDs: of the set's value); and its **weight at equal MSE**: the least-squares slope (through the
  origin) of the metric's change from the clean images against the MSE, divided by the slope of the
  reference family (Gaussian noise: what a pure pixel metric sees). A weight of 3 says the metric penalises
  that family three times as much as noise of the same MSE; 0 says it does not see it.

:data:`MEANT_TO_SEE` states, before measuring, which families each metric is supposed to see; the result's
``verdicts`` say where it is monotone (Spearman >= :data:`MONOTONE`) and list its blind spots.
``ganinv eval metrics`` writes ``figures/metric_validation.json`` and its figure.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..common import EVAL_SEED
from ..metrics import (
    LPIPS,
    MissingWeightsError,
    id_similarity,
    lpips_features,
    mae,
    mse,
    psnr,
    realism_scores,
    ssim,
)
from . import reconstruction

FAMILIES = ("blur", "noise", "jpeg", "blotches", "ghosting", "warp", "shift", "colour", "patch")
LEVELS: dict[str, tuple[float, ...]] = {
    "blur": (0.4, 0.7, 1.0, 1.4, 1.9, 2.5),
    "noise": (0.02, 0.04, 0.07, 0.1, 0.14, 0.2),
    "jpeg": (80, 60, 40, 25, 15, 8),
    "blotches": (0.1, 0.2, 0.3, 0.45, 0.6, 0.8),
    "ghosting": (0.05, 0.1, 0.17, 0.25, 0.35, 0.45),
    "warp": (0.3, 0.6, 1.0, 1.5, 2.0, 3.0),
    "shift": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
    "colour": (0.03, 0.06, 0.1, 0.15, 0.2, 0.3),
    "patch": (4, 6, 8, 11, 14, 18),
}
UNITS = {
    "blur": "Gaussian sigma (px at 64 px)",
    "noise": "noise std ([-1, 1] units)",
    "jpeg": "JPEG quality (lower is stronger)",
    "blotches": "opacity of 3 colour blobs (sigma 3 px)",
    "ghosting": "opacity of a copy shifted by 3 px",
    "warp": "largest displacement of a smooth field (px)",
    "shift": "translation (px)",
    "colour": "colour cast length ([-1, 1] units)",
    "patch": "side of a pasted square of another face (px)",
}
ENCODER_METHODS = ("psp", "e4e", "clcae-w", "clcae-w+", "clcae-f")
ENCODER_LEVELS = (0.15, 0.3, 0.45, 0.6, 0.8, 1.0)  # s of x + s (reconstruction - x)
MONOTONE = 0.9  # a metric "sees" a family when its Spearman correlation with the strength is at least this
# +1: larger is worse (distances); -1: larger is better (similarities, realism). "fid_*" are set-level.
METRIC_ORIENTATION = {
    "mse": 1, "mae": 1, "psnr": -1, "ssim": -1, "lpips_sfn": 1, "lpips_alex": 1, "id_sfn": -1,
    "factor_error": 1, "fid_sfn": 1, "fid_sfn_texture": 1, "realism_sfn": -1, "realism_sfn_texture": -1,
}  # fmt: skip
ARTEFACTS = ("blur", "noise", "jpeg", "blotches", "ghosting")  # what makes a face look unclean
ENCODERS = "encoder:*"  # every "encoder:<method>" family
_ALL = (*FAMILIES, ENCODERS)
MEANT_TO_SEE: dict[str, tuple[str, ...]] = {
    # full-reference distances: any change of the image
    "mse": _ALL, "mae": _ALL, "psnr": _ALL, "ssim": _ALL, "lpips_sfn": _ALL, "lpips_alex": _ALL,
    # identity and factors: changes of the face, not of the rendering (by design blind to the artefacts)
    "id_sfn": ("patch", ENCODERS), "factor_error": (ENCODERS,),
    # realism (no reference to the input): artefacts that make an image leave the clean faces
    "fid_sfn": ARTEFACTS, "fid_sfn_texture": ARTEFACTS, "realism_sfn": ARTEFACTS,
    "realism_sfn_texture": ARTEFACTS,
}  # fmt: skip


@dataclass
class BatteryConfig:
    """Settings of :func:`evaluate_battery`.

    ``n``: held-out SynthFaces of ``data_seed`` (default :data:`EVAL_SEED`) distorted; ``size``: their size
    (that of the generator when encoders are given); ``seed``: the random parts of the distortions;
    ``reference_n``: held-out SynthFaces of :data:`ganinv.eval.reconstruction.REFERENCE_SEED` for the realism
    metrics; ``reference_family``: the family whose equal-MSE slope is weight 1; ``families``: which of
    :data:`FAMILIES` to run; ``lpips_alex``: also real LPIPS (AlexNet) when its weights are on disk.
    """

    n: int = 200
    size: int = 64
    seed: int = 0
    data_seed: int = EVAL_SEED
    reference_n: int = 1000
    reference_family: str = "noise"
    families: tuple[str, ...] = FAMILIES
    lpips_alex: bool = True

    def __post_init__(self) -> None:
        if self.n < 2 or self.size < 16 or self.reference_n < 4:
            raise ValueError(
                f"BatteryConfig: need n >= 2, size >= 16 and reference_n >= 4, got n={self.n}, "
                f"size={self.size}, reference_n={self.reference_n}"
            )
        if bad := [f for f in self.families if f not in FAMILIES]:
            raise ValueError(f"BatteryConfig.families: unknown {bad}; choose from {list(FAMILIES)}")
        if self.reference_family not in self.families:
            raise ValueError(
                f"BatteryConfig.reference_family {self.reference_family!r} is not among the families run "
                f"{list(self.families)}"
            )


# ------------------------------------------------------------------------------------- distortions


@dataclass
class _Draws:
    """The random parts of every distortion for N images, drawn once (strength-free, so levels nest)."""

    noise: torch.Tensor  # [N, 3, S, S] standard normal
    centres: torch.Tensor  # [N, 3, 2] blob centres in [0.25, 0.75] of the image
    colours: torch.Tensor  # [N, 3, 3] blob colours in [-1, 1]
    direction: torch.Tensor  # [N, 2] unit vectors (ghost, shift)
    field: torch.Tensor  # [N, 2, S, S] smooth warp field, max |d| = 1
    cast: torch.Tensor  # [N, 3] unit colour-cast directions
    patch_centre: torch.Tensor  # [N, 2] in [0.3, 0.7] of the image


def draw(n: int, size: int, seed: int) -> _Draws:
    """The random parts of the distortions of ``n`` images of ``size`` px from ``seed`` (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    coarse = torch.randn(n, 2, 4, 4, generator=g)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)  # [N, 2, S, S]
    smooth = smooth / smooth.flatten(1).abs().amax(dim=1).view(n, 1, 1, 1)
    cast = torch.randn(n, 3, generator=g)
    return _Draws(
        noise=torch.randn(n, 3, size, size, generator=g),
        centres=0.25 + 0.5 * torch.rand(n, 3, 2, generator=g),
        colours=torch.rand(n, 3, 3, generator=g) * 2 - 1,
        direction=torch.stack([angle.cos(), angle.sin()], dim=1),
        field=smooth,
        cast=cast / cast.norm(dim=1, keepdim=True),
        patch_centre=0.3 + 0.4 * torch.rand(n, 2, generator=g),
    )


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` [N, 3, S, S] with std ``sigma`` px (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    out = F.pad(x, [radius] * 4, mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _resample(x: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """``x`` [N, 3, S, S] sampled at pixel p + ``displacement`` [N, 2, S, S] (x, y in px), border pixels
    repeated outside."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    px = xs[None] + displacement[:, 0]  # [N, S, S]
    py = ys[None] + displacement[:, 1]
    grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)  # [N, S, S, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _translate(x: torch.Tensor, direction: torch.Tensor, px: float) -> torch.Tensor:
    d = (direction * px).view(-1, 2, 1, 1).expand(-1, -1, *x.shape[2:])  # [N, 2, S, S]
    return _resample(x, d)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through a JPEG encoder and decoder (PIL) at ``quality`` (1-95)."""
    import numpy as np
    from PIL import Image

    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        out.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).float() / 127.5 - 1


def distort(x: torch.Tensor, family: str, strength: float, draws: _Draws) -> torch.Tensor:
    """``x`` [N, 3, S, S] in [-1, 1] distorted by ``family`` at ``strength`` (units: :data:`UNITS`), the
    random parts taken from ``draws`` (:func:`draw`); clamped to [-1, 1]."""
    n, _, s, _ = x.shape
    scale = s / 64  # pixel sizes are given for 64 px images
    if family == "blur":
        out = gaussian_blur(x, strength * scale)
    elif family == "noise":
        out = x + strength * draws.noise
    elif family == "jpeg":
        out = _jpeg(x, int(strength))
    elif family == "blotches":
        ys, xs = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
        sigma = 3 / 64
        r2 = (xs[None, None] - draws.centres[..., 0, None, None]) ** 2 + (
            ys[None, None] - draws.centres[..., 1, None, None]
        ) ** 2  # [N, 3 blobs, S, S]
        blob = torch.exp(-r2 / (2 * sigma**2))
        alpha = (strength * blob).unsqueeze(2)  # [N, 3 blobs, 1, S, S]
        out = x
        for b in range(blob.shape[1]):
            out = out * (1 - alpha[:, b]) + draws.colours[:, b, :, None, None] * alpha[:, b]
    elif family == "ghosting":
        out = (1 - strength) * x + strength * _translate(x, draws.direction, 3 * scale)
    elif family == "warp":
        out = _resample(x, draws.field * strength * scale)
    elif family == "shift":
        out = _translate(x, draws.direction, strength * scale)
    elif family == "colour":
        out = x + strength * draws.cast[:, :, None, None]
    elif family == "patch":
        donor = x.roll(1, dims=0)  # another held-out face
        half = strength * scale / 2
        ys, xs = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
        cx, cy = draws.patch_centre[:, 0, None, None] * s, draws.patch_centre[:, 1, None, None] * s
        inside = ((xs[None] - cx).abs() <= half) & ((ys[None] - cy).abs() <= half)  # [N, S, S]
        out = torch.where(inside[:, None], donor, x)
    else:
        raise ValueError(f"distort: unknown family {family!r}; choose from {list(FAMILIES)}")
    return out.clamp(-1, 1)


# ------------------------------------------------------------------------------------------ metrics


class MetricSuite:
    """Every metric the project reports, of distorted images against their clean originals ``x``
    [N, 3, S, S] (true factors ``factors`` [N, 17]): per image MSE, MAE, PSNR, SSIM, LPIPS-SFN, ID-SFN, factor
    error, LPIPS-AlexNet (``lpips`` given), realism-SFN (embedding) and realism-SFN-texture; per set FID-SFN
    and FID-SFN-texture, against ``reference`` (:func:`ganinv.eval.reconstruction.realism_reference`)."""

    def __init__(self, sfn: nn.Module, x: torch.Tensor, factors: torch.Tensor, reference: dict, lpips=None):
        self.sfn, self.x, self.factors, self.reference, self.lpips = sfn, x, factors, reference, lpips

    @torch.no_grad()
    def __call__(self, d: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``(per_image {metric: [N]}, per_set {metric: float})`` of the distorted images ``d``."""
        x, sfn = self.x, self.sfn
        per_image = {
            "mse": mse(d, x), "mae": mae(d, x), "psnr": psnr(d, x), "ssim": ssim(d, x),
            "lpips_sfn": lpips_features(d, x, sfn), "id_sfn": id_similarity(d, x, sfn),
            "factor_error": reconstruction.factor_errors(sfn, d, self.factors)["factor_error"],
        }  # fmt: skip
        if self.lpips is not None:
            per_image["lpips_alex"] = self.lpips(d, x)
        feats = reconstruction.realism_features(sfn, d)
        per_set = reconstruction.realism_columns(self.reference, feats)
        per_image["realism_sfn_texture"] = per_set.pop("realism_sfn_texture")
        per_image["realism_sfn"] = realism_scores(
            *reconstruction.standardized(self.reference["embed"], feats["embed"])
        )
        return {k: v.detach().float().cpu() for k, v in per_image.items()}, per_set


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long sequences (average ranks for ties; NaN when either is
    constant)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1 or a.numel() < 2:
        raise ValueError(f"spearman: need two 1-D sequences of equal length >= 2, got {list(a.shape)}, "
                         f"{list(b.shape)}")  # fmt: skip

    def ranks(t):
        order = t.argsort()
        r = torch.empty_like(t)
        r[order] = torch.arange(len(t), dtype=t.dtype)
        for v in t.unique():  # ties share their mean rank
            tie = t == v
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = ra.norm() * rb.norm()
    return float(ra.dot(rb) / denom) if denom > 0 else math.nan


def equal_mse_slope(change, mse_values) -> float:
    """Least-squares slope through the origin of a metric's ``change`` from the clean images against the
    ``mse_values`` of the same levels: the metric's change per unit of MSE."""
    c = torch.as_tensor(change, dtype=torch.float64)
    m = torch.as_tensor(mse_values, dtype=torch.float64)
    if not torch.isfinite(c).all() or float(m.dot(m)) == 0:
        return math.nan
    return float(c.dot(m) / m.dot(m))


# -------------------------------------------------------------------------------------- the battery


def _lpips_alex(enabled: bool) -> tuple[nn.Module | None, str]:
    if not enabled:
        return None, "lpips_alex not requested"
    try:
        return LPIPS("alex"), "lpips_alex: AlexNet trunk found on disk"
    except (MissingWeightsError, ImportError) as err:  # the message names local paths: not for the JSON
        return (
            None,
            f"lpips_alex skipped: the AlexNet trunk weights or the lpips package are missing "
            f"({type(err).__name__}; nothing is downloaded)",
        )


def evaluate_battery(
    sfn: nn.Module,
    cfg: BatteryConfig | None = None,
    encoders: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    progress: bool = True,
) -> dict:
    """Run the battery (module docstring) and return the JSON-ready result.

    ``encoders``: ``{method: reconstruct}`` with ``reconstruct(x [N, 3, S, S]) -> x̂ [N, 3, S, S]`` (the
    bundled encoders' inversions; family ``"encoder:<method>"``); None or empty runs the distortion families
    only. Returns ``{"config", "units", "levels", "notes", "clean": {metric: value}, "families": {family:
    {"levels": [...], "per_image_mean": {metric: [...]}, "per_set": {metric: [...]}}}, "spearman": {metric:
    {family: r}}, "slope_per_mse": {...}, "weight_at_equal_mse": {...}, "verdicts": {metric: {...}}}``.
    """
    cfg = cfg or BatteryConfig()
    x, factors = reconstruction.held_out(cfg.n, cfg.size, cfg.data_seed)  # [n, 3, S, S], [n, 17]
    dev = next(sfn.parameters()).device
    x, factors = x.to(dev), factors.to(dev)
    reference = reconstruction.realism_reference(sfn, cfg.size, cfg.reference_n)
    lpips_net, lpips_note = _lpips_alex(cfg.lpips_alex)
    suite = MetricSuite(sfn, x, factors, reference, lpips_net)
    draws = draw(cfg.n, cfg.size, cfg.seed)
    notes = [lpips_note]
    families = list(cfg.families)
    try:
        import PIL  # noqa: F401
    except ImportError:
        families.remove("jpeg")
        notes.append("jpeg skipped: PIL is not installed")
    recs = {}
    for method, reconstruct in (encoders or {}).items():
        with torch.no_grad():
            recs[f"encoder:{method}"] = reconstruct(x).clamp(-1, 1)
    jobs = [(f, LEVELS[f]) for f in families] + [(f, ENCODER_LEVELS) for f in recs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=1 + sum(len(levels) for _, levels in jobs), desc="metric battery", unit="level")
    clean_image, clean_set = suite(x)
    clean = {**{k: float(v.mean()) for k, v in clean_image.items()}, **clean_set}
    if bar is not None:
        bar.update(1)
    result_families = {}
    for family, levels in jobs:
        means: dict[str, list[float]] = {}
        sets: dict[str, list[float]] = {}
        for level in levels:
            if family in recs:
                d = x + level * (recs[family] - x)
            else:
                d = distort(x.cpu(), family, level, draws).to(dev)
            per_image, per_set = suite(d)
            for k, v in per_image.items():
                means.setdefault(k, []).append(float(v.mean()))
            for k, v in per_set.items():
                sets.setdefault(k, []).append(v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(family=family)
        result_families[family] = {"levels": list(levels), "per_image_mean": means, "per_set": sets}
    if bar is not None:
        bar.close()
    result = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
        "reference_seed": reconstruction.REFERENCE_SEED,
        "units": {**{f: UNITS[f] for f in families}, **{f: "s of x + s (reconstruction - x)" for f in recs}},
        "orientation": "spearman and slopes are of the metric oriented so that larger is worse "
        "(similarities, PSNR, SSIM and realism negated)",
        "notes": notes,
        "clean": clean,
        "families": result_families,
    }
    return {**result, **summarize_battery(result, cfg.reference_family)}


def meant_to_see(metric: str, family: str) -> bool:
    """Whether :data:`MEANT_TO_SEE` says ``metric`` should respond to ``family`` (any "encoder:..." family
    counts as :data:`ENCODERS`)."""
    wanted = MEANT_TO_SEE.get(metric, ())
    return family in wanted or (family.startswith("encoder:") and ENCODERS in wanted)


def _values(fam: dict, metric: str) -> list[float] | None:
    return fam["per_image_mean"].get(metric, fam["per_set"].get(metric))


def summarize_battery(result: dict, reference_family: str = "noise") -> dict:
    """From the raw ``families`` / ``clean`` of :func:`evaluate_battery`: Spearman with the strength, the
    slope per unit MSE and the weight at equal MSE (relative to ``reference_family``) of every metric in
    every family, and per metric a verdict: is it monotone in every family of :data:`MEANT_TO_SEE`, and
    which families are its blind spots (Spearman below :data:`MONOTONE`)."""
    families, clean = result["families"], result["clean"]
    metrics = [m for m in METRIC_ORIENTATION if m in clean]
    rho, slope, weight, verdicts = {}, {}, {}, {}
    for m in metrics:
        sign = METRIC_ORIENTATION[m]
        rho[m], slope[m] = {}, {}
        for name, fam in families.items():
            vals = _values(fam, m)
            oriented = [sign * v for v in vals]
            rho[m][name] = spearman(range(len(vals)), oriented)
            base = sign * clean[m]
            change = [v - base for v in oriented] if math.isfinite(base) else [math.nan] * len(vals)
            slope[m][name] = equal_mse_slope(change, fam["per_image_mean"]["mse"])
        ref = slope[m].get(reference_family, math.nan)
        usable = math.isfinite(ref) and abs(ref) > 1e-12
        weight[m] = {f: (s / ref if usable and math.isfinite(s) else None) for f, s in slope[m].items()}
        meant = [f for f in families if meant_to_see(m, f)]
        fails = [f for f in meant if not rho[m][f] >= MONOTONE]
        verdicts[m] = {
            "meant_to_see": meant,
            "monotone_in_meant": not fails,
            "fails_in_meant": fails,
            "blind_spots": [f for f in families if not rho[m][f] >= MONOTONE],
        }
    return {
        "reference_family": reference_family,
        "spearman": rho,
        "slope_per_mse": slope,
        "weight_at_equal_mse": weight,
        "verdicts": verdicts,
    }


def verdict_table(result: dict) -> str:
    """Markdown: per metric, whether it is monotone in every family it is meant to see, its failures there
    and all its blind spots (families with Spearman below :data:`MONOTONE`)."""
    lines = ["| metric | monotone where meant | fails where meant | blind spots |", "|---|---|---|---|"]
    for m, v in result["verdicts"].items():
        lines.append(
            f"| {m} | {'yes' if v['monotone_in_meant'] else 'no'} | {', '.join(v['fails_in_meant']) or '—'} "
            f"| {', '.join(v['blind_spots']) or '—'} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- figure


def battery_figure(result: dict, path: str | os.PathLike | None = None):
    """Two heatmaps, metric × family: the Spearman correlation with the strength (oriented, +1 = the metric
    gets monotonically worse; cells of a family the metric is meant to see are outlined) and the weight at
    equal MSE relative to the reference family (log2 scale). Saved atomically to ``path`` when given."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from ..viz import save_figure

    metrics = list(result["spearman"])
    families = list(result["families"])
    if not metrics or not families:
        raise ValueError("battery_figure: the result holds no metric or no family")
    rho = np.array([[result["spearman"][m][f] for f in families] for m in metrics], dtype=float)
    w = np.array(
        [[np.nan if (v := result["weight_at_equal_mse"][m][f]) is None else v for f in families]
         for m in metrics], dtype=float,
    )  # fmt: skip
    logw = np.log2(np.clip(w, 1 / 64, 64))
    logw[~np.isfinite(w) | (w <= 0)] = np.nan
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.62 * len(families) + 2.8), 0.6 * len(metrics) + 2.8))
    panels = (
        (rho, "RdBu", -1, 1, "Spearman(metric, strength); +1 = worse as strength grows", "{:.2f}"),
        (logw, "PuOr_r", -6, 6, f"log2 weight at equal MSE (vs {result['reference_family']}); "
         "white = none / negative", None),
    )  # fmt: skip
    for ax, (data, cmap, lo, hi, label, fmt) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(families)), [f.replace("encoder:", "enc:") for f in families], rotation=60,
                      ha="right", fontsize=8)  # fmt: skip
        ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
        for i, m in enumerate(metrics):
            for j, f in enumerate(families):
                if fmt is not None and np.isfinite(data[i, j]):
                    text = fmt.format(data[i, j])
                elif fmt is None and np.isfinite(w[i, j]):
                    text = f"{w[i, j]:.2g}"
                else:
                    text = "—"
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
                if meant_to_see(m, f):
                    ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, lw=1.4, ec="gold"))
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label(label, fontsize=8)
    axes[0].set_title(
        "monotone in the strength? (gold frame: a family the metric is meant to see)", fontsize=9
    )
    axes[1].set_title("weight of each family at equal MSE (numbers: the weight)", fontsize=9)
    fig.suptitle(
        f"metric validation on {result['config']['n']} held-out SynthFaces, "
        f"{len(next(iter(result['families'].values()))['levels'])} strengths per family",
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
