"""The training-budget study: snapshots found per step, scored once (cache), claims decided with intervals."""

import json

import pytest
import torch

from ganinv.cli import main as cli_main
from ganinv.eval import budget as be
from ganinv.models.sfn import SFN, SFNConfig
from ganinv.training import encoders as te

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(sfn="", lambda_lpips=0.0, lambda_id=0.0, progress=False, eval_n=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A study folder with pSp and CLCAE runs (tiny, 4 steps, snapshots at 2 and 4) and another folder."""
    root = tmp_path_factory.mktemp("budget")
    for name, kind in [("psp", "psp"), ("clcae", "clcae")]:
        te.train(te.preset("tiny", kind=kind, out_dir=str(root / name), snapshot_steps="2,4", **FAST))
    (root / "notes").mkdir()
    return root


@pytest.fixture(scope="module")
def sfn():
    torch.manual_seed(3)
    return SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)).eval()


def test_snapshots_are_found_per_step(runs):
    found = be.snapshots(runs)
    assert list(found) == [2, 4] and set(found[2]) == {"psp", "clcae"}
    assert found[4]["clcae"].name == "clcae.pt" and found[4]["psp"].parent.name == "step_000004"
    rows = be.RUNS["clcae-nowplus"].rows("x.pt")
    assert list(rows) == ["clcae-w+ (w/o W+ attention)", "clcae-f (w/o W+ attention)"]
    assert rows["clcae-f (w/o W+ attention)"].method == "clcae-f"


def test_scoring_is_cached_and_claims_get_intervals(runs, G, sfn):
    results = be.evaluate_budget(runs, G, sfn, n=3, progress=False)
    assert list(results) == [2, 4]
    assert set(results[4]["methods"]) == {"psp", "clcae-w", "clcae-w+", "clcae-f"}
    cache = be.cache_path(runs, 4)
    stamp = cache.stat().st_mtime_ns
    again = be.evaluate_budget(runs, G, sfn, n=3, steps=[4], progress=False)
    assert cache.stat().st_mtime_ns == stamp and again[4] == results[4]  # nothing scored twice
    with pytest.raises(ValueError, match=r"no snapshot of step\(s\) \[3\]"):
        be.evaluate_budget(runs, G, sfn, n=3, steps=[3], progress=False)
    summary = be.summarize(be.load_cached(runs))
    assert summary["steps"] == [2, 4] and summary["n"] == 3
    assert set(summary["curves"]["psp"]["lpips_sfn"]) == {"2", "4"}
    by_text = {c["text"]: c for c in summary["claims"]}
    d = by_text["CLCAE-W+ beats pSp"]["lpips_sfn"]["4"]
    rows = results[4]["methods"]
    diffs = [
        b - a
        for a, b in zip(rows["psp"]["per_image"]["lpips_sfn"], rows["clcae-w+"]["per_image"]["lpips_sfn"])
    ]
    assert d["mean"] == pytest.approx(sum(diffs) / 3, abs=1e-3) and d["lo"] <= d["mean"] <= d["hi"]
    assert d["verdict"] == ("confirmed" if d["hi"] < 0 else "refuted" if d["lo"] > 0 else "undecided")
    r = by_text["CLCAE-W+ beats pSp"]["realism_sfn_texture"]["4"]  # higher is better: the other side of 0
    assert r["verdict"] == ("confirmed" if r["lo"] > 0 else "refuted" if r["hi"] < 0 else "undecided")
    assert set(summary["curves"]["clcae-f"]) >= {"lpips_sfn", "fid_sfn_texture", "realism_sfn_texture"}
    assert by_text["F attention helps (F)"]["lpips_sfn"] == {}  # that run is not in the folder
    table = be.verdict_table(summary)
    assert (
        "| CLCAE-W+ beats pSp | " in table
        and "4 steps" in table
        and "| F attention helps (F) | — | — |" in table
    )


def test_other_held_out_images_are_refused_and_cli_writes_summary(runs, tmp_path, capsys):
    results = be.load_cached(runs)
    other = {**results[4], "n": 5}
    with pytest.raises(ValueError, match="other held-out images"):
        be.summarize({2: results[2], 4: other})
    with pytest.raises(ValueError, match="no scored snapshots"):
        be.summarize({})
    out, fig = tmp_path / "budget.json", tmp_path / "budget.png"
    cli_main(["eval", "budget", "--runs", str(runs), "--no-eval", "--json", str(out), "--figure", str(fig)])
    summary = json.loads(out.read_text())
    assert summary["steps"] == [2, 4] and fig.stat().st_size > 10_000
    assert "lpips_sfn:" in capsys.readouterr().out


def test_rerun_spread_flags_close_calls():
    rerun = {
        "n": 3,
        "seed": 1,
        "methods": {"a": {"lpips_sfn": 0.50}, "b": {"lpips_sfn": 0.40, "factor_error": 0.1}},
    }
    reference = {"n": 3, "seed": 1, "methods": {"a": {"lpips_sfn": 0.47}, "b": {"lpips_sfn": 0.41}}}
    spread = be.rerun_spread(rerun, reference)
    assert spread == {"a": {"lpips_sfn": pytest.approx(0.03)}, "b": {"lpips_sfn": pytest.approx(0.01)}}
    other = {"n": 3, "seed": 1, "methods": {"a": {"lpips_sfn": 0.49}, "b": {"factor_error": 0.16}}}
    widest = be.rerun_spread(rerun, reference, other)  # the largest gap to any earlier run
    assert widest == {"a": {"lpips_sfn": pytest.approx(0.03)}, "b": {"lpips_sfn": pytest.approx(0.01),
                      "factor_error": pytest.approx(0.06)}}  # fmt: skip
    with pytest.raises(ValueError, match="different held-out images"):
        be.rerun_spread({**rerun, "n": 4}, reference)
    tight = {"mean": -0.05, "lo": -0.051, "hi": -0.049}
    assert not be.close_call(tight, 0.0, 0.0)  # far outside a narrow interval, no training spread
    assert be.close_call(tight, 0.03, 0.01)  # within 2 x sqrt(0.001^2 + 0.03^2 + 0.01^2) = 0.063


def styles_of(row):
    return be.row_styles([row])[row]


def test_curve_styles_give_each_run_a_colour_and_each_output_a_line():
    rows = ["psp", "clcae-w", "clcae-w+", "clcae-f", "clcae-f (multi-token)", "clcae-w+ (multi-token)"]
    rows.append("other")
    styles = be.row_styles(rows)
    colour = {r: s["color"] for r, s in styles.items()}
    assert colour["clcae-w"] == colour["clcae-w+"] == colour["clcae-f"]  # one run, one colour
    assert colour["clcae-f (multi-token)"] == colour["clcae-w+ (multi-token)"] != colour["clcae-f"]
    assert len({colour["psp"], colour["clcae-f"], colour["clcae-f (multi-token)"], colour["other"]}) == 4
    assert styles["clcae-w+"]["linestyle"] == styles["psp"]["linestyle"] == "--"  # pSp is a W+ encoder
    assert len({styles[r]["marker"] for r in ("clcae-w", "clcae-w+", "clcae-f")}) == 3
    twins = be.row_styles(["clcae-f", "clcae-f (seed 1)", "e4e (seed 1)", "e4e"])
    assert twins["clcae-f (seed 1)"] == {**twins["clcae-f"], "markerfacecolor": "none"}  # same run, hollow
    assert twins["e4e (seed 1)"]["color"] == twins["e4e"]["color"] != twins["clcae-f"]["color"]
    nof = "clcae-f (w/o F attention)"  # an ablation's second seed is its twin too, not a run of its own
    assert be.row_styles([nof, nof + " (seed 1)"])[nof + " (seed 1)"] == {
        **styles_of(nof),
        "markerfacecolor": "none",
    }


def _rows(**per_image):
    return {
        row: {"lpips_sfn": sum(v) / len(v), "per_image": {"lpips_sfn": v}} for row, v in per_image.items()
    }


def test_a_second_seed_measures_the_spread_and_decides_each_claim_again():
    from ganinv.eval.claims import clcae_rows

    psp = [0.50, 0.52, 0.48, 0.51]
    methods = _rows(
        psp=psp, **{"clcae-w+": [v - 0.05 for v in psp], "clcae-w+ (seed 1)": [v + 0.02 for v in psp]}
    )
    summary = be.summarize({12: {"n": 4, "seed": 7, "methods": methods}})
    assert summary["seed_spread"] == {"12": {"clcae-w+": {"lpips_sfn": pytest.approx(0.07)}}}
    d = {c["text"]: c for c in summary["claims"]}["CLCAE-W+ beats pSp"]["lpips_sfn"]["12"]
    assert d["verdict"] == "confirmed" and d["seed_1"]["verdict"] == "refuted"  # seed 1 is worse than pSp
    assert d["seed_1"]["mean"] == pytest.approx(0.02) and d["close_call"]  # |-0.05| < 2 x 0.07
    assert (d["seed_1"]["a"], d["seed_1"]["b"]) == ("psp", "clcae-w+ (seed 1)")  # pSp has no twin: kept
    assert "; seed 1: refuted (+0.020)" in be.verdict_table(summary)
    row = next(r for r in clcae_rows(summary) if r["claim"] == "CLCAE-W+ beats pSp")
    assert row["verdict"].startswith("undecided: the seeds disagree (seed 0 confirmed (close call)")
    methods["clcae-w+ (seed 1)"] = {
        **methods["clcae-w+ (seed 1)"],
        "per_image": {"lpips_sfn": [v - 0.04 for v in psp]},
    }
    agree = be.summarize({12: {"n": 4, "seed": 7, "methods": methods}})
    row = next(r for r in clcae_rows(agree) if r["claim"] == "CLCAE-W+ beats pSp")
    assert row["verdict"].startswith("confirmed") and "seed 1 agrees (-0.0400)" in row["verdict"]
    fig = be.budget_figure(agree, metrics=("lpips_sfn",))  # the seed-1 decision drawn hollow beside seed 0
    right = fig.axes[1]
    hollow = [line for line in right.lines if line.get_markerfacecolor() == "none" and len(line.get_xdata())]
    assert len(hollow) == 1 and hollow[0].get_ydata()[0] == pytest.approx(-0.04)
    assert any("seed-1" in t.get_text() for t in right.get_legend().get_texts())
    fig.clf()
