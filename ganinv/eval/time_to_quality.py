"""Time to quality: per-image optimisation (Image2StyleGAN / the StyleGAN2 projector, in W and W+) as a curve
of reconstruction quality against optimisation steps and seconds per image, and, for each encoder of the
reconstruction benchmark (pSp, e4e, CLCAE's W / W+ / F), how many optimisation steps reach the encoder's
quality and how much longer they take than one encoder pass.

The inversion papers compare encoders with optimisation at one fixed step count (CLCAE's Table 1 quotes the
projector's result and its minutes per image); a curve answers the question a user has: "how long must I
optimise to do as well as the encoder?". Each budget is its own run of :func:`ganinv.inversion.optimize_w`
/ ``optimize_w_plus`` with ``steps`` = budget (the projector's learning-rate and noise schedules stretch with
the run, so a 50-step run is not the first 50 steps of a 400-step one). All runs and all encoders see the same
held-out SynthFaces and are timed in one process, so the ratios compare like with like; the absolute seconds
belong to the machine that ran them.

``ganinv eval time-to-quality --json figures/03_budget.json`` stores the result under ``"time_to_quality"`` of
the budget study's file (``ganinv eval budget`` keeps that key when it rewrites the file).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..common import EVAL_SEED, rounded
from ..data.images import pool_to
from ..inversion import invert, resolve_encoder
from .reconstruction import LOWER_IS_BETTER, held_out, image_scores

BUDGETS = (10, 20, 50, 100, 200, 400)  # optimisation steps, one run each
KEYS = ("psnr", "ssim", "lpips_sfn", "id_sfn", "factor_error")  # per-image metrics (no set-level FID here)
ENCODERS = ("psp", "e4e", "clcae-w", "clcae-w+", "clcae-f")
OPTIMISERS = ("optim-w", "optim-w+")


@dataclass
class TimeToQualityConfig:
    """What :func:`evaluate_time_to_quality` runs.

    ``n`` held-out SynthFaces of ``seed`` (the first ``n`` of the reconstruction benchmark's), optimised as
    one batch; ``budgets`` step counts of the optimisers; ``encoders`` the encoder methods to place on the
    curves, loaded from ``encoder`` (a bundled name or a checkpoint path).
    """

    n: int = 32
    budgets: Sequence[int] = BUDGETS
    encoders: Sequence[str] = ENCODERS
    encoder: str = "synthfaces64"
    seed: int = EVAL_SEED

    def check(self) -> None:
        if self.n < 1 or not self.budgets or min(self.budgets) < 1:
            raise ValueError(f"need n >= 1 and budgets >= 1, got n={self.n}, budgets={list(self.budgets)}")
        if list(self.budgets) != sorted(set(self.budgets)):
            raise ValueError(f"budgets must be distinct and increasing, got {list(self.budgets)}")


def _means(image: torch.Tensor, x: torch.Tensor, factors: torch.Tensor, sfn: nn.Module) -> dict[str, float]:
    scores = image_scores(pool_to(image, x.shape[-1]).clamp(-1, 1), x, factors, sfn)
    return {k: float(scores[k].float().mean()) for k in KEYS}


def evaluate_time_to_quality(
    G: nn.Module, sfn: nn.Module, cfg: TimeToQualityConfig | None = None, progress: bool = True
) -> dict:
    """``{"n", "seed", "budgets", "optim": {method: {"steps": [...], "seconds_per_image": [...], <KEYS>:
    [...]}}, "encoders": {method: {"seconds_per_image", <KEYS>}}, "match": {metric: {encoder: {optimiser:
    steps_to_match(...)}}}}``."""
    cfg = cfg or TimeToQualityConfig()
    cfg.check()
    dev = G.w_avg.device
    x, factors = held_out(cfg.n, G.size, cfg.seed)
    x = x.to(dev)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(OPTIMISERS) * sum(cfg.budgets), desc="time to quality", unit="step")
    result: dict = {"n": cfg.n, "seed": cfg.seed, "budgets": list(cfg.budgets), "optim": {}, "encoders": {}}
    for method in OPTIMISERS:
        curve: dict[str, list] = {"steps": list(cfg.budgets), "seconds_per_image": []}
        for steps in cfg.budgets:
            res = invert(x, method, generator=G, steps=steps)
            curve["seconds_per_image"].append(res.seconds)
            for k, v in _means(res.image, x, factors, sfn).items():
                curve.setdefault(k, []).append(v)
            if bar is not None:
                bar.update(steps)
                bar.set_postfix(method=method, steps=steps)
        result["optim"][method] = curve
    if bar is not None:
        bar.close()
    for method in cfg.encoders:
        encoder = resolve_encoder(method, cfg.encoder, dev)
        invert(x[:2], method, generator=G, encoder=encoder)  # warm-up: first-call allocations are not timed
        res = invert(x, method, generator=G, encoder=encoder)  # times its own forward pass and G
        result["encoders"][method] = {"seconds_per_image": res.seconds, **_means(res.image, x, factors, sfn)}
    result["match"] = match_table(result)
    return rounded(result, 6)


def steps_to_match(curve: Mapping, metric: str, target: float) -> dict:
    """The optimisation steps (and seconds per image) at which ``curve`` first reaches ``target`` on
    ``metric``: interpolated linearly in the metric between the two budgets that bracket the crossing, on a
    log axis of steps, seconds scaled with the steps. ``{"steps", "seconds_per_image", "bound"}`` where bound
    is "=" (a crossing), "<=" (already reached at the smallest budget) or ">" (not reached by the largest;
    steps and seconds are then the largest budget's)."""
    lower = LOWER_IS_BETTER[metric]
    steps, seconds, values = curve["steps"], curve["seconds_per_image"], curve[metric]
    reached = [(v <= target) if lower else (v >= target) for v in values]
    if reached[0]:
        return {"steps": steps[0], "seconds_per_image": seconds[0], "bound": "<="}
    if not any(reached):
        return {"steps": steps[-1], "seconds_per_image": seconds[-1], "bound": ">"}
    i = reached.index(True)
    v0, v1 = values[i - 1], values[i]
    t = 0.0 if v1 == v0 else (target - v0) / (v1 - v0)  # in [0, 1]: the crossing lies between the budgets
    s0, s1 = math.log(steps[i - 1]), math.log(steps[i])
    at = math.exp(s0 + t * (s1 - s0))
    per_step = seconds[i] / steps[i]
    return {"steps": at, "seconds_per_image": at * per_step, "bound": "="}


def match_table(result: Mapping, metrics: Sequence[str] = ("lpips_sfn", "psnr", "factor_error")) -> dict:
    """For every metric, encoder and optimiser: :func:`steps_to_match` of the encoder's value, plus
    ``"speed_ratio"``: the optimiser's seconds at the match over the encoder's seconds per image."""
    table: dict = {}
    for metric in metrics:
        for enc, row in result["encoders"].items():
            for method, curve in result["optim"].items():
                m = steps_to_match(curve, metric, row[metric])
                m["speed_ratio"] = m["seconds_per_image"] / max(row["seconds_per_image"], 1e-12)
                table.setdefault(metric, {}).setdefault(enc, {})[method] = m
    return table


def match_lines(result: Mapping, metric: str = "lpips_sfn") -> str:
    """A Markdown table: per encoder, its value and the optimisation steps / seconds / slowdown that match
    it."""
    lines = [
        f"| encoder | {metric} | encoder s/img | "
        + " | ".join(f"{o}: steps, s/img, × encoder" for o in OPTIMISERS),
        "|---|---|---|" + "---|" * len(OPTIMISERS),
    ]
    for enc, row in result["encoders"].items():
        cells = []
        for method in OPTIMISERS:
            m = result["match"][metric][enc][method]
            bound = "" if m["bound"] == "=" else m["bound"] + " "
            cells.append(f"{bound}{m['steps']:.0f}, {m['seconds_per_image']:.3g}, {m['speed_ratio']:.0f}×")
        lines.append(
            f"| {enc} | {row[metric]:.4g} | {row['seconds_per_image']:.3g} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def time_to_quality_figure(
    result: Mapping, path: str | os.PathLike | None = None, metrics: Sequence[str] = ("lpips_sfn", "psnr")
):
    """One panel per metric: the optimisers' quality against seconds per image (log axis, each point
    labelled with its steps) and every encoder as one point at its own time and quality."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6.2 * len(metrics), 4.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, (method, curve) in enumerate(result["optim"].items()):
            ax.plot(
                curve["seconds_per_image"],
                curve[metric],
                "-o",
                color=f"C{i}",
                label=f"{method} (optimisation)",
            )
            for s, t, v in zip(curve["steps"], curve["seconds_per_image"], curve[metric], strict=True):
                ax.annotate(
                    f"{s}", (t, v), textcoords="offset points", xytext=(4, 4), fontsize=7, color=f"C{i}"
                )
        for j, (enc, row) in enumerate(result["encoders"].items()):
            ax.scatter(row["seconds_per_image"], row[metric], marker="s", s=40, color=f"C{j + 2}", label=enc,
                       zorder=3)  # fmt: skip
        better = "lower" if LOWER_IS_BETTER[metric] else "higher"
        ax.set(xscale="log", xlabel="seconds per image (log; this machine)",
               ylabel=f"{metric} ({better} is better)",
               title=f"{metric}: optimisation steps vs encoders, n = {result['n']}")  # fmt: skip
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    if path is not None:
        from ..viz import save_figure

        save_figure(fig, path, dpi=110)
    return fig
