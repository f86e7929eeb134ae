"""The ablation claims of both papers, decided from the results files rather than typed by hand.

Each claim compares two benchmark rows, A (the ablated or baseline model) and B (the full model), on one
metric scored per held-out image, with the sign the paper expects for B - A. Where the results file holds the
paired comparison (per-image values of both rows), the verdict comes from its 95 % bootstrap interval
(:func:`ganinv.stats.verdict`: *undecided* whenever the interval contains 0). Where it does not (rows scored
before per-image values were kept), the row says so and gives the difference of the means without a verdict.

* CLCAE (Liu et al., CVPR 2023): :data:`ganinv.eval.budget.CLAIMS`, decided per training budget in
  ``figures/03_budget.json`` (``ganinv eval budget``).
* Diverse inpainting (Yildirim et al., ICCV 2023): :data:`INPAINTING_CLAIMS` on ``figures/05_inpainting.json``
  (``ganinv eval inpainting --compare A B``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..stats import verdict
from .budget import CLAIM_METRICS


@dataclass(frozen=True)
class RowClaim:
    """ "``b`` beats ``a``" on ``metric``: B - A is ``expect``-ed "lower" or "higher"; or "``b`` keeps what
    ``a`` has" (``expect`` "same"): |B - A| below ``margin`` times B's mean (:func:`ganinv.stats.verdict`)."""

    text: str
    a: str
    b: str
    metric: str
    expect: str
    margin: float = 0.0  # "same" only: the equivalence bound, a fraction of B's mean


OURS, FULL_15K = (
    "diverse (ours)",
    "diverse (1.5k)",
)  # the bundle, and its 1,500-step copy beside the ablations
BASE16 = "fusion 16 (bundled until 2026-12-06)"
DIV, PSNR, SEAM = "diversity_lpips_sfn", "psnr_unerased", "seam_excess"
INPAINTING_CLAIMS: tuple[RowClaim, ...] = (
    RowClaim("the mixer makes completions diverse", "no mixing (1.5k)", FULL_15K, DIV, "higher"),
    RowClaim("case A is needed: without it completions lose diversity", "only case B (1.5k)", FULL_15K, DIV,
             "higher"),
    RowClaim("case B is needed: without it the unerased pixels are lost", "only case A (1.5k)", FULL_15K,
             PSNR, "higher"),
    RowClaim("stage 2 raises the fidelity of the unerased pixels", "no stage 2", OURS, PSNR, "higher"),
    RowClaim("stage 2 keeps the diversity (within ±5 %)", "no stage 2", OURS, DIV, "same", margin=0.05),
    RowClaim("higher-rate fusion (16, 32) lowers the seams", BASE16, "fusion 16,32", SEAM, "lower"),
    RowClaim("higher-rate fusion (16, 32, 64) lowers the seams", BASE16, OURS, SEAM, "lower"),
)  # fmt: skip


def _row(paper: str, text: str, metric: str, where: str, interval: Mapping | None, expect: str, means=None,
         margin: float = 0.0):  # fmt: skip
    row = {"paper": paper, "claim": text, "metric": metric, "where": where, "expect": expect}
    if expect == "same":
        row["margin"] = margin
    if interval is not None and (expect != "same" or margin > 0):
        keys = ("mean", "lo", "hi", "n", "level")
        decided = verdict(interval, expect, margin)
        word = decided + (" (close call)" if interval.get("close_call") else "")
        if twin := interval.get("seed_1"):  # decided again with the second training seed's rows
            if twin["verdict"] == decided:
                word += f"; seed 1 agrees ({twin['mean']:+.4f})"
            else:
                seed_1 = f"seed 1 {twin['verdict']} {twin['mean']:+.4f}"
                word = f"undecided: the seeds disagree (seed 0 {word}, {seed_1})"
        return {**row, "verdict": word, **{k: interval[k] for k in keys}}
    if means is not None:  # both rows exist but were not paired: no interval, no verdict
        return {**row, "verdict": "no interval", "mean": means[1] - means[0]}
    return {**row, "verdict": "not measured"}


def inpainting_rows(result: Mapping | None, claims: Sequence[RowClaim] = INPAINTING_CLAIMS) -> list[dict]:
    """One row per claim from an inpainting benchmark result (``entries`` and ``comparisons``)."""
    entries = (result or {}).get("entries", {})
    comparisons = (result or {}).get("comparisons", {})
    rows = []
    for c in claims:
        interval = comparisons.get(f"{c.b} vs {c.a}", {}).get(c.metric)
        means = None
        if c.a in entries and c.b in entries:
            means = (entries[c.a]["mean"][c.metric], entries[c.b]["mean"][c.metric])
        margin = c.margin * abs(means[1]) if means else 0.0  # "same": the bound in the metric's units
        rows.append(_row("Diverse inpainting", c.text, c.metric, "", interval, c.expect, means, margin))
    return rows


def clcae_rows(summary: Mapping | None, steps: Sequence[int] | None = None) -> list[dict]:
    """One row per claim and metric of a budget summary (:func:`ganinv.eval.budget.summarize`), each metric
    with the sign of :data:`CLAIM_METRICS`: at the largest budget at which both of the claim's rows were
    scored (the study's latest word on it), or at each of ``steps``."""
    from .budget import CLAIMS

    if summary is None:
        return [_row("CLCAE", c.text, m, "", None, e) for c in CLAIMS for m, e in CLAIM_METRICS.items()]
    rows = []
    for c in summary["claims"]:
        for metric, expect in CLAIM_METRICS.items():
            by_step = c.get(metric, {})
            measured = [s for s in summary["steps"] if str(s) in by_step]
            at = steps or measured[-1:] or summary["steps"][-1:]
            for step in at:
                interval = by_step.get(str(step))
                rows.append(_row("CLCAE", c["text"], metric, f"{step:,} steps", interval, expect))
    return rows


def claims_table(rows: Sequence[Mapping]) -> str:
    """Markdown: paper, claim, metric, where, verdict, B − A with its 95 % interval (when there is one)."""
    lines = [
        "| paper | claim | metric | where | verdict | B − A [95 % interval] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "lo" in r:
            diff = f"{r['mean']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}], n = {r['n']}"
        elif "mean" in r:
            diff = f"{r['mean']:+.4f} (means only)"
        else:
            diff = "—"
        lines.append(
            f"| {r['paper']} | {r['claim']} | {r['metric']} | {r['where'] or '—'} | {r['verdict']} | {diff} |"
        )
    return "\n".join(lines)
