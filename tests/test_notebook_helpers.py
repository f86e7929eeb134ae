"""ganinv.notebook: the chapter setup, verdict lines, live-training curves and the rounded metrics JSON."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ganinv import notebook as nb  # noqa: E402


def test_start_checks_the_device_seeds_and_uses_the_figures_override(tmp_path, monkeypatch):
    monkeypatch.setenv(nb.FIGURES_ENV, str(tmp_path / "figs"))
    chapter = nb.start("cpu", 3, "../figures", checkpoint="synthfaces64", smoke=True)
    a = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(a, torch.rand(2))  # seeded with SEED
    assert chapter.device == torch.device("cpu") and chapter.fig_dir == tmp_path / "figs"
    assert chapter.fig_dir.is_dir() and chapter.metrics == {
        "checkpoint": "synthfaces64",
        "smoke": True,
        "seed": 3,
    }
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        nb.start("tpu")


def test_metrics_are_rounded_so_reruns_write_the_same_file(tmp_path, monkeypatch):
    monkeypatch.setenv(nb.FIGURES_ENV, str(tmp_path))
    chapter = nb.start("cpu")
    chapter.metrics["scores"] = {"fid": 0.08312345678901, "list": [1 / 3, 2.0, float("inf")], "n": 7}
    text = chapter.write_metrics("m.json").read_text()
    assert json.loads(text.replace("Infinity", "1e999"))["scores"]["fid"] == 0.0831235
    chapter.metrics["scores"]["fid"] = 0.08312345678999  # noise in the 12th digit
    assert chapter.write_metrics("m.json").read_text() == text
    assert nb.rounded({"a": (0.1234567891, 0.0)}) == {"a": [0.123457, 0.0]}
    # wall times differ in every run: they are left out (at any depth), everything else is kept
    chapter.metrics["live"] = {
        "psp": {"mse": 0.5, "seconds_per_image": 0.01},
        "rows": [{"wall_s": 3, "n": 2}],
    }
    saved = json.loads(chapter.write_metrics("m.json").read_text().replace("Infinity", "1e999"))
    assert saved["live"] == {"psp": {"mse": 0.5}, "rows": [{"n": 2}]}


def test_claim_prints_a_verdict_and_why_a_claim_fails(capsys):
    assert nb.claim("the mixer makes completions diverse", True) is True
    assert nb.claim("stage 2 reduces seams", False, why="its features are fused at 16 px only") is False
    nb.claim("needs the full benchmark", None, why="ignored")
    assert capsys.readouterr().out.splitlines() == [
        "the mixer makes completions diverse: yes",
        "stage 2 reduces seams: NO",
        "  why: its features are fused at 16 px only",
        "needs the full benchmark: not measured",
    ]


def test_decide_prints_the_verdict_its_interval_allows(capsys):
    lower = {"mean": -0.02, "lo": -0.03, "hi": -0.01, "n": 200, "level": 0.95}
    spans_zero = {**lower, "hi": 0.005}
    assert nb.decide("fusion lowers the seams", lower, "lower") == "confirmed"
    assert nb.decide("fusion raises the seams", lower, "higher") == "refuted"
    assert nb.decide("close call", spans_zero, "lower") == "undecided"
    assert nb.decide("no rows", None, "lower") is None
    assert capsys.readouterr().out.splitlines() == [
        "fusion lowers the seams: confirmed (difference -0.020, 95% interval [-0.030, -0.010], n = 200)",
        "fusion raises the seams: refuted (difference -0.020, 95% interval [-0.030, -0.010], n = 200)",
        "close call: undecided (difference -0.020, 95% interval [-0.030, +0.005], n = 200)",
        "no rows: not measured",
    ]


def test_plot_history_draws_one_labelled_curve_per_series():
    history = [{"step": 1, "d": 1.0, "g": 2.0}, {"step": 2, "d": 0.5}, {"step": 3, "d": 0.4, "g": 1.0}]
    fig, ax = plt.subplots()
    nb.plot_history(ax, history, {"D": "d", "G": "g", "absent": "x"}, title="live", ylabel="loss")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"D", "G"} and list(lines["G"].get_xdata()) == [1, 3]  # entries without "g" skipped
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss" and ax.get_legend() is not None
    plt.close(fig)


def test_draw_or_show_draws_when_the_models_exist_else_shows_the_stored_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(nb.FIGURES_ENV, str(tmp_path / "out"))
    chapter = nb.start("cpu")
    model, stored = tmp_path / "model.pt", tmp_path / "stored"
    stored.mkdir()
    drawn = []

    def build():
        drawn.append(1)
        return plt.figure()

    assert chapter.draw_or_show("f.png", build, [model], stored) == "missing"
    assert "neither the models" in capsys.readouterr().out and not drawn
    plt.figure().savefig(stored / "f.png")
    assert chapter.draw_or_show("f.png", build, [model], stored) == "stored" and not drawn
    model.write_bytes(b"x")
    assert chapter.draw_or_show("f.png", build, [model], stored, skip=True) == "stored"
    assert chapter.draw_or_show("f.png", build, [model], stored) == "drawn" and drawn == [1]
    assert (tmp_path / "out" / "f.png").is_file()


def test_results_json_keeps_number_lists_on_one_line_and_reads_back_the_same():
    from ganinv.common import dumps

    values = {"per_image": {"lpips_sfn": [0.5, -1e-05, 3]}, "nested": [[1, 2], ["a"]], "empty": [], "x": 1.5}
    text = dumps(values)
    assert '"lpips_sfn": [0.5, -1e-05, 3]' in text and '      "a"' in text.splitlines()
    assert json.loads(text) == values
