"""The claims table is generated from the results files: verdicts from stored intervals, means otherwise."""

from ganinv.eval import claims

ENTRIES = {
    "no mixing (1.5k)": {"mean": {"diversity_lpips_sfn": 0.0}},
    "diverse (1.5k)": {"mean": {"diversity_lpips_sfn": 0.7}},
    "fusion 16 (bundled until 2026-12-06)": {"mean": {"seam_excess": 0.057}},
    "fusion 16,32": {"mean": {"seam_excess": 0.053}},
}
INTERVAL = {"mean": -0.004, "lo": -0.0042, "hi": -0.0033, "n": 200, "level": 0.95}


def test_inpainting_claims_use_intervals_where_paired_and_say_so_where_not():
    result = {"entries": ENTRIES, "comparisons": {
        "fusion 16,32 vs fusion 16 (bundled until 2026-12-06)": {"seam_excess": INTERVAL}}}  # fmt: skip
    rows = {r["claim"]: r for r in claims.inpainting_rows(result)}
    assert len(rows) == len(claims.INPAINTING_CLAIMS)
    fusion = rows["higher-rate fusion (16, 32) lowers the seams"]
    assert fusion["verdict"] == "confirmed" and fusion["lo"] == -0.0042 and fusion["n"] == 200
    mixer = rows["the mixer makes completions diverse"]
    assert mixer["verdict"] == "no interval" and abs(mixer["mean"] - 0.7) < 1e-9 and "lo" not in mixer
    assert rows["stage 2 keeps the diversity (within ±5 %)"]["verdict"] == "not measured"
    # an interval on the wrong side of zero refutes; one containing zero decides nothing
    for lo, hi, word in [(0.001, 0.002, "refuted"), (-0.001, 0.002, "undecided")]:
        result["comparisons"]["fusion 16,32 vs fusion 16 (bundled until 2026-12-06)"]["seam_excess"] = {
            **INTERVAL, "lo": lo, "hi": hi}  # fmt: skip
        rows = {r["claim"]: r for r in claims.inpainting_rows(result)}
        assert rows["higher-rate fusion (16, 32) lowers the seams"]["verdict"] == word


def test_an_equivalence_claim_takes_its_bound_from_the_full_models_mean():
    entries = {
        "no stage 2": {"mean": {"diversity_lpips_sfn": 0.5639, "psnr_unerased": 21.06}},
        "diverse (ours)": {"mean": {"diversity_lpips_sfn": 0.5626, "psnr_unerased": 32.13}},
    }
    key, text = "diverse (ours) vs no stage 2", "stage 2 keeps the diversity (within ±5 %)"
    for lo, hi, word in [
        (-0.00145, -0.00123, "confirmed"),
        (-0.05, -0.03, "refuted"),
        (-0.04, 0.0, "undecided"),
    ]:
        interval = {"mean": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 200, "level": 0.95}
        result = {"entries": entries, "comparisons": {key: {"diversity_lpips_sfn": interval}}}
        row = {r["claim"]: r for r in claims.inpainting_rows(result)}[text]
        assert row["verdict"] == word and abs(row["margin"] - 0.05 * 0.5626) < 1e-9
    # without the rows' means there is no bound, so no verdict
    result = {"entries": {}, "comparisons": {key: {"diversity_lpips_sfn": interval}}}
    assert {r["claim"]: r for r in claims.inpainting_rows(result)}[text]["verdict"] == "not measured"


def test_clcae_claims_per_budget_and_the_table():
    summary = {"steps": [1200, 3000], "claims": [{"text": "F attention helps (F)", "a": "x", "b": "y",
               "lpips_sfn": {"1200": {**INTERVAL, "verdict": "confirmed"}}, "factor_error": {}}]}  # fmt: skip
    rows = claims.clcae_rows(summary)  # each claim at the largest budget that measured it
    assert [(r["metric"], r["where"], r["verdict"]) for r in rows] == [
        ("lpips_sfn", "1,200 steps", "confirmed"),
        ("factor_error", "3,000 steps", "not measured"),
        ("realism_sfn_texture", "3,000 steps", "not measured"),  # a summary written before the column
    ]
    every = claims.clcae_rows(summary, steps=[1200, 3000])
    assert [(r["metric"], r["where"], r["verdict"]) for r in every] == [
        ("lpips_sfn", "1,200 steps", "confirmed"),
        ("lpips_sfn", "3,000 steps", "not measured"),
        ("factor_error", "1,200 steps", "not measured"),
        ("factor_error", "3,000 steps", "not measured"),
        ("realism_sfn_texture", "1,200 steps", "not measured"),
        ("realism_sfn_texture", "3,000 steps", "not measured"),
    ]
    assert rows[-1]["expect"] == "higher" and rows[0]["expect"] == "lower"
    assert len(claims.clcae_rows(None)) == 3 * 8  # every claim on every metric, none measured
    table = claims.claims_table(rows + claims.inpainting_rows({"entries": ENTRIES}))
    line = "| CLCAE | F attention helps (F) | lpips_sfn | 1,200 steps | confirmed |"
    assert line + " -0.0040 [-0.0042, -0.0033], n = 200 |" in table
    assert "+0.7000 (means only)" in table and table.count("\n") == 1 + 3 + len(claims.INPAINTING_CLAIMS)
