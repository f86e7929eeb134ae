"""The training-budget study: every encoder of the reconstruction benchmark trained far past the bundled
budget, its snapshots scored on the same held-out images, and each claim of CLCAE (Liu et al., CVPR 2023,
Sec. 4.3 and its ablation table) decided at each budget.

A run folder (``ganinv train clcae|psp|e4e ... --snapshot-steps 1200,3000,6000,12000``) keeps its export at
every snapshot step in ``snapshots/step_NNNNNN/``. :data:`RUNS` names the runs of the study (the seven
:data:`MODELS` and second training seeds of those in :data:`SEEDED`) and the benchmark rows each gives (CLCAE:
its W, W+ and F outputs); the row names are those of ``figures/03_reconstruction.json``; the bundled encoders
are the 12,000-step snapshots of these runs, and ``figures/03_reconstruction_1200.json`` keeps the 1,200-step
encoders bundled before them.

:func:`evaluate_budget` scores the snapshots of each step with
:func:`ganinv.eval.reconstruction.evaluate_reconstruction` (per-image values kept) and caches the result in
the runs folder (``eval/step_NNNNNN.json``), so that a later session only scores what is new.
:func:`summarize` turns the cached results into learning curves and, for every :data:`CLAIMS` entry and
metric, the paired difference with its 95 % bootstrap interval over images and its verdict
(:mod:`ganinv.stats`: "undecided" whenever the interval contains 0). ``ganinv eval budget`` writes
``figures/03_budget.json`` and its figure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from ..common import EVAL_SEED, rounded, write_json
from ..stats import paired_bootstrap, verdict
from .reconstruction import Entry, evaluate_reconstruction

EXPORTS = {"clcae": "clcae.pt", "psp": "psp_encoder.pt", "e4e": "e4e_encoder.pt"}
CLCAE_ROWS = {"w": "clcae-w", "w+": "clcae-w+", "f": "clcae-f"}
SEED_1 = " (seed 1)"  # row suffix of a second training seed: "clcae-f (seed 1)" is the twin of "clcae-f"


@dataclass(frozen=True)
class Run:
    """One training run of the study: its encoder ``kind``, the outputs it is scored on, the row suffix."""

    kind: str
    outputs: tuple[str, ...]  # "w", "w+", "f" (CLCAE) or () for pSp / e4e (their W+)
    suffix: str = ""  # " (multi-token)", " (w/o L_align)", ...

    def rows(self, path: str) -> dict[str, Entry]:
        """``{row name: Entry}`` of this run's export at ``path``."""
        if self.kind != "clcae":
            return {self.kind + self.suffix: Entry(self.kind, path)}
        return {CLCAE_ROWS[o] + self.suffix: Entry(CLCAE_ROWS[o], path) for o in self.outputs}


MODELS: dict[str, Run] = {  # run folder name -> Run (the training options are in data/pretrained/README.md)
    "psp": Run("psp", ()),
    "e4e": Run("e4e", ()),
    "clcae": Run("clcae", ("w", "w+", "f")),
    "clcae-multi": Run("clcae", ("w+", "f"), " (multi-token)"),  # --attention multi
    "clcae-noalign": Run("clcae", ("w", "w+", "f"), " (w/o L_align)"),  # --use-align false
    "clcae-nowplus": Run("clcae", ("w+", "f"), " (w/o W+ attention)"),  # --use-wplus-attention false
    "clcae-nof": Run("clcae", ("f",), " (w/o F attention)"),  # --use-f-attention false
}
SEEDED = ("clcae", "psp", "e4e", "clcae-nof", "clcae-multi", "clcae-nowplus")  # with a second training seed
# "NAME-seed1": NAME's options plus --seed 1 (same data, another initialisation and noise); rows end in SEED_1
RUNS: dict[str, Run] = {
    **MODELS,
    **{f"{n}-seed1": replace(MODELS[n], suffix=MODELS[n].suffix + SEED_1) for n in SEEDED},
}


@dataclass(frozen=True)
class Claim:
    """A claim "``b`` is better than ``a``" on each of :data:`CLAIM_METRICS` (the difference is b - a)."""

    text: str
    a: str
    b: str


CLAIMS: tuple[Claim, ...] = (
    Claim("CLCAE-W+ beats pSp", "psp", "clcae-w+"),
    Claim("CLCAE-W+ beats e4e", "e4e", "clcae-w+"),
    Claim("CLCAE-F beats CLCAE-W+", "clcae-w+", "clcae-f"),
    Claim("L_align improves W inversion", "clcae-w (w/o L_align)", "clcae-w"),
    Claim("W+ attention helps (W+)", "clcae-w+ (w/o W+ attention)", "clcae-w+"),
    Claim("F attention helps (F)", "clcae-f (w/o F attention)", "clcae-f"),
    Claim("multi-token beats single-token (W+)", "clcae-w+", "clcae-w+ (multi-token)"),
    Claim("multi-token beats single-token (F)", "clcae-f", "clcae-f (multi-token)"),
)
# metric -> the sign B - A takes when the claim holds: fidelity (lower is better) and the realism that sees
# artefacts (higher is better; ganinv.eval.metric_battery)
CLAIM_METRICS = {"lpips_sfn": "lower", "factor_error": "lower", "realism_sfn_texture": "higher"}
CURVE_METRICS = ("psnr", "ssim", "lpips_sfn", "id_sfn", "factor_error", "fid_sfn", "fid_sfn_texture",
                 "realism_sfn_texture")  # fmt: skip


def snapshots(runs_dir: str | os.PathLike) -> dict[int, dict[str, Path]]:
    """``{step: {run name: export path}}`` of every kept snapshot of the :data:`RUNS` in ``runs_dir``."""
    found: dict[int, dict[str, Path]] = {}
    for name, run in RUNS.items():
        for folder in sorted((Path(runs_dir) / name / "snapshots").glob("step_*")):
            export = folder / EXPORTS[run.kind]
            if export.is_file() and folder.name[5:].isdigit():
                found.setdefault(int(folder.name[5:]), {})[name] = export
    return dict(sorted(found.items()))


def cache_path(runs_dir: str | os.PathLike, step: int) -> Path:
    return Path(runs_dir) / "eval" / f"step_{step:06d}.json"


def evaluate_budget(
    runs_dir: str | os.PathLike,
    G: nn.Module,
    sfn: nn.Module,
    n: int = 1000,
    steps: Sequence[int] | None = None,
    seed: int = EVAL_SEED,
    progress: bool = True,
) -> dict[int, dict]:
    """Score every snapshot of ``runs_dir`` (or of ``steps`` only) on ``n`` held-out images; rows already in
    the step's cache (same ``n`` and ``seed``) are not scored again. Returns ``{step: reconstruction result
    with per-image values}`` for every step that has a cache afterwards."""
    found = snapshots(runs_dir)
    if steps is not None:
        if missing := sorted(set(steps) - set(found)):
            raise ValueError(f"no snapshot of step(s) {missing} in {runs_dir}; found steps {sorted(found)}")
        found = {s: found[s] for s in steps}
    results = {}
    for step, exports in found.items():
        path = cache_path(runs_dir, step)
        old = json.loads(path.read_text()) if path.is_file() else None
        if old is not None and (old["n"], old["seed"]) != (n, seed):
            old = None  # scored on other images: score again
        entries = {row: e for name, p in exports.items() for row, e in RUNS[name].rows(str(p)).items()}
        todo = {row: e for row, e in entries.items() if old is None or row not in old["methods"]}
        if todo:
            new = evaluate_reconstruction(todo, G, sfn, n=n, seed=seed, per_image=True, progress=progress)
            new["step"] = step
            if old is not None:
                new = {**old, "methods": {**old["methods"], **new["methods"]}}
            write_json(new, path)
            old = new
        results[step] = old
    return results


def load_cached(runs_dir: str | os.PathLike) -> dict[int, dict]:
    """The cached step results of ``runs_dir`` (``eval/step_*.json``), ``{step: result}``."""
    out = {}
    for path in sorted((Path(runs_dir) / "eval").glob("step_*.json")):
        out[int(path.stem[5:])] = json.loads(path.read_text())
    return out


def rerun_spread(rerun: Mapping, *references: Mapping) -> dict[str, dict[str, float]]:
    """How far training runs of the same recipe land apart: ``{row: {metric: largest |mean difference|}}``
    between ``rerun`` and each of ``references``, for every row of :data:`CLAIM_METRICS` that both hold
    (scored on the same held-out images). E.g. the budget study's snapshots at the bundled budget against
    the bundled encoders (other arithmetic: fp32, not compiled) and against an earlier run of the study
    itself. The bootstrap interval of a claim covers the choice of images only; this is the part of the
    uncertainty that comes from training itself (a stand-in for a second seed)."""
    if any((rerun["n"], rerun["seed"]) != (ref["n"], ref["seed"]) for ref in references):
        raise ValueError("rerun_spread: a reference was scored on different held-out images")
    return _merge_spreads(*(_gaps(rerun["methods"], ref["methods"]) for ref in references))


def close_call(interval: Mapping, spread_a: float, spread_b: float) -> bool:
    """A difference within 2x its uncertainty, the half-width of its image interval and the two rows'
    re-run spreads combined in quadrature: the verdict could change with another training seed."""
    half = (interval["hi"] - interval["lo"]) / 2
    return abs(interval["mean"]) < 2 * (half**2 + spread_a**2 + spread_b**2) ** 0.5


def seed_spread(result: Mapping) -> dict[str, dict[str, float]]:
    """``{row: {metric: |mean difference|}}`` between each row and its second-seed twin (row + :data:`SEED_1`)
    in one step's result: the training-seed part of the uncertainty, measured where a twin exists."""
    rows = result["methods"]
    return _gaps(rows, {row: rows[row + SEED_1] for row in rows if row + SEED_1 in rows})


def _gaps(rows: Mapping, others: Mapping) -> dict[str, dict[str, float]]:
    """``{row: {metric: |rows[row] - others[row]|}}`` on :data:`CLAIM_METRICS`, where both have a value."""
    gaps: dict[str, dict[str, float]] = {}
    for row, values in rows.items():
        other = others.get(row, {})
        for metric in CLAIM_METRICS:
            if values.get(metric) is not None and other.get(metric) is not None:
                gaps.setdefault(row, {})[metric] = abs(values[metric] - other[metric])
    return gaps


def _merge_spreads(*spreads: Mapping | None) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for spread in spreads:
        for row, metrics in (spread or {}).items():
            for metric, gap in metrics.items():
                merged.setdefault(row, {})[metric] = max(gap, merged.get(row, {}).get(metric, 0.0))
    return merged


def _decide(rows: Mapping, a: str, b: str, metric: str, expect: str) -> dict | None:
    """The paired interval of ``b - a`` on ``metric`` with its verdict, or None if a row lacks it."""
    if not all(r in rows and metric in rows[r].get("per_image", {}) for r in (a, b)):
        return None
    interval = paired_bootstrap(rows[a]["per_image"][metric], rows[b]["per_image"][metric])
    return {**interval, "verdict": verdict(interval, expect)}


def summarize(
    results: Mapping[int, dict], claims: Sequence[Claim] = CLAIMS, spread: Mapping | None = None
) -> dict:
    """Learning curves and claim verdicts from ``{step: reconstruction result with per-image values}``:
    ``{"n", "seed", "steps", "curves": {row: {metric: {step: mean}}}, "claims": [{"text", "a", "b",
    "metric": {step: {"mean", "lo", "hi", "n", "level", "verdict", "close_call"?}}}],
    "rerun_spread": {...} or None}``;
    a claim is left out at a step where one of its rows was not scored. With ``spread``
    (:func:`rerun_spread`) or second-seed twins at the step (:func:`seed_spread`, ``"seed_spread": {step:
    ...}``) every decided interval also says whether it is a :func:`close_call`; a row without a measured
    spread counts with the largest one measured for that metric. Where a row of the claim has a twin, the
    claim is decided again with the twins in its place (``"seed_1": {"mean", "lo", "hi", "verdict", "a",
    "b"}``, ``a``/``b`` the rows paired: a row without a twin stays, so a pair may mix the seeds)."""
    if not results:
        raise ValueError(
            "no scored snapshots: run `ganinv eval budget` on a runs folder with snapshots first"
        )
    steps = sorted(results)
    first = results[steps[0]]
    if differ := [s for s in steps if (results[s]["n"], results[s]["seed"]) != (first["n"], first["seed"])]:
        raise ValueError(f"steps {differ} were scored on other held-out images than step {steps[0]}")
    curves: dict[str, dict] = {}
    for step in steps:
        for row, values in results[step]["methods"].items():
            for k in CURVE_METRICS:
                if values.get(k) is not None:  # rows scored before a column existed lack it
                    curves.setdefault(row, {}).setdefault(k, {})[str(step)] = values[k]
    seeds = {step: seed_spread(results[step]) for step in steps}
    spreads = {step: _merge_spreads(spread, seeds[step]) for step in steps}  # training spread per budget
    decided = []
    for c in claims:
        entry = {"text": c.text, "a": c.a, "b": c.b}
        for metric, expect in CLAIM_METRICS.items():
            by_step = {}
            for step in steps:
                rows = results[step]["methods"]
                if (d := _decide(rows, c.a, c.b, metric, expect)) is None:
                    continue
                step_spread = spreads[step]
                if step_spread and d["verdict"] != "undecided":
                    worst = max(v.get(metric, 0.0) for v in step_spread.values())
                    sa, sb = (step_spread.get(r, {}).get(metric, worst) for r in (c.a, c.b))
                    d["close_call"] = close_call(d, sa, sb)
                twins = [r + SEED_1 if r + SEED_1 in rows else r for r in (c.a, c.b)]
                if twins != [c.a, c.b] and (t := _decide(rows, *twins, metric, expect)) is not None:
                    d["seed_1"] = {k: t[k] for k in ("mean", "lo", "hi", "verdict")} | dict(zip("ab", twins))
                by_step[str(step)] = d
            entry[metric] = by_step
        decided.append(entry)
    out = {
        "n": first["n"],
        "seed": first["seed"],
        "steps": steps,
        "curves": curves,
        "claims": decided,
        "rerun_spread": dict(spread) if spread else None,
        "seed_spread": {str(step): gaps for step, gaps in seeds.items() if gaps},
    }  # always set: the file is updated key by key
    return rounded(out)


def verdict_table(summary: dict, metric: str = "lpips_sfn") -> str:
    """Markdown: one line per claim and one column per step, each cell ``verdict[, close call] (difference
    [interval])[; seed 1: verdict (difference)]``."""
    steps = [str(s) for s in summary["steps"]]
    lines = [
        "| claim | " + " | ".join(f"{int(s):,} steps" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for c in summary["claims"]:
        cells = []
        for s in steps:
            d = c[metric].get(s)
            close = ", close call" if d and d.get("close_call") else ""
            twin = d.get("seed_1") if d else None
            seed = f"; seed 1: {twin['verdict']} ({twin['mean']:+.3f})" if twin else ""
            cells.append(
                "—"
                if d is None
                else f"{d['verdict']}{close} ({d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]){seed}"
            )
        lines.append(f"| {c['text']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


OUTPUT_STYLES = {"w": (":", "s"), "w+": ("--", "^"), "f": ("-", "o")}  # line and marker of each output


def row_styles(rows: Sequence[str]) -> dict[str, dict]:
    """Matplotlib styles of the curves: one colour per training run, one line and marker per output
    (W dotted, W+ dashed, F solid; pSp and e4e are W+ encoders); a second seed's rows (:data:`SEED_1`) take
    their twin's style with hollow markers. Rows of no known run cycle the rest."""
    owner = {}
    for i, (name, run) in enumerate(MODELS.items()):
        for out, row in zip(run.outputs or ("w+",), run.rows(name), strict=True):
            owner[row] = (i, out)
    styles, extra = {}, len(MODELS)
    for row in rows:
        base = row.removesuffix(SEED_1)
        if base not in owner:
            owner[base], extra = (extra, "f"), extra + 1
        colour, out = owner[base]
        line, marker = OUTPUT_STYLES[out]
        styles[row] = {"color": f"C{colour % 10}", "linestyle": line, "marker": marker}
        if base != row:
            styles[row]["markerfacecolor"] = "none"
    return styles


def _intervals(ax, xs: Sequence[float], intervals: Sequence[Mapping], **style) -> None:
    """Each interval's mean at its x with error bars from ``lo`` to ``hi``."""
    means = [d["mean"] for d in intervals]
    err = [[d["mean"] - d["lo"] for d in intervals], [d["hi"] - d["mean"] for d in intervals]]
    ax.errorbar(xs, means, yerr=err, marker="o", **style)


def budget_figure(
    summary: dict,
    path: str | os.PathLike | None = None,
    metrics: Sequence[str] = ("lpips_sfn", "realism_sfn_texture"),
):
    """One row per metric. Left: the metric of every row against training steps (log axis). Right: each
    claim's difference b - a with its 95 % interval against steps (the claim holds on the side
    :data:`CLAIM_METRICS` names), and hollow beside it the same claim with the second seed's runs."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metrics), 2, figsize=(13, 5.2 * len(metrics)), squeeze=False)
    styles = row_styles(summary["curves"])
    steps = [int(s) for s in summary["steps"]]
    for metric, (left, right) in zip(metrics, axes, strict=True):
        for row, curve in summary["curves"].items():
            points = sorted((int(s), v) for s, v in curve.get(metric, {}).items())
            if points:
                xs, ys = zip(*points, strict=True)
                left.plot(xs, ys, label=row, **styles[row])
        better = "higher" if CLAIM_METRICS.get(metric) == "higher" else "lower"
        left.set(xscale="log", xlabel="training steps (batch 8)", ylabel=f"{metric} ({better} is better)",
                 title=f"held-out {metric}, n = {summary['n']}")  # fmt: skip
        left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        seed_1_drawn = False
        for i, c in enumerate(summary["claims"]):
            points = sorted((int(s), d) for s, d in c.get(metric, {}).items())
            if not points:
                continue
            xs = [x * (1 + 0.05 * (i - len(summary["claims"]) / 2)) for x, _ in points]  # no overlaps
            _intervals(right, xs, [d for _, d in points], capsize=3, color=f"C{i % 10}", label=c["text"])
            twins = [(x * 1.022, d["seed_1"]) for x, (_, d) in zip(xs, points, strict=True) if "seed_1" in d]
            if twins:  # the claim decided again with the second seed's runs: hollow, beside the first
                _intervals(right, *zip(*twins, strict=True), markerfacecolor="none", linestyle=":", capsize=2,
                           color=f"C{i % 10}")  # fmt: skip
                seed_1_drawn = True
        if seed_1_drawn:
            right.plot([], [], "o:", color="grey", markerfacecolor="none", label="hollow: the seed-1 runs")
        right.axhline(0, color="k", lw=1)
        side = "below" if CLAIM_METRICS.get(metric, "lower") == "lower" else "above"
        right.set(xscale="log", xlabel="training steps (batch 8)", ylabel=f"difference of {metric}, b − a",
                  title=f"claims on {metric}: {side} 0 the claim holds (95 % intervals)")  # fmt: skip
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        for ax in (left, right):  # the study's budgets as the ticks, room for the 12k one from the start
            ax.set_xticks(steps, [f"{s:,}" for s in steps])
            ax.minorticks_off()
            ax.set_xlim(steps[0] / 1.4, max(steps[-1], 12_000) * 1.4)
    fig.tight_layout()
    if path is not None:
        from ..viz import save_figure

        save_figure(fig, path, dpi=110)
    return fig
