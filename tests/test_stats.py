"""Paired bootstrap intervals and verdicts (ganinv.stats)."""

import pytest
import torch

from ganinv.stats import compare_rows, paired_bootstrap, verdict


def test_a_constant_difference_has_a_point_interval_and_a_clear_verdict():
    a = torch.rand(50)
    ci = paired_bootstrap(a, a - 0.1)
    assert (
        ci["mean"] == pytest.approx(-0.1)
        and ci["lo"] == pytest.approx(-0.1)
        and ci["hi"] == pytest.approx(-0.1)
    )
    assert verdict(ci, "lower") == "confirmed" and verdict(ci, "higher") == "refuted"


def test_interval_covers_the_true_difference_and_narrows_with_more_images():
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, generator=gen)
    small = paired_bootstrap(torch.zeros(40), 0.05 + noise[:40])
    large = paired_bootstrap(torch.zeros(4000), 0.05 + noise)
    assert small["lo"] < 0 < small["hi"] and verdict(small, "higher") == "undecided"  # too few images
    assert large["lo"] < 0.05 < large["hi"] and large["lo"] > 0 and verdict(large, "higher") == "confirmed"
    assert large["hi"] - large["lo"] < 0.2 * (small["hi"] - small["lo"])  # ~ 1 / sqrt(n): 10x narrower
    half_width = 1.96 * noise.std().item() / 4000**0.5  # the normal-theory interval, for comparison
    assert (large["hi"] - large["lo"]) / 2 == pytest.approx(half_width, rel=0.1)
    assert paired_bootstrap(torch.zeros(40), noise[:40], seed=3) == paired_bootstrap(
        torch.zeros(40), noise[:40], seed=3
    )


def test_equivalence_claims_are_decided_against_their_margin():
    tiny_real_change = {"lo": -0.0015, "hi": -0.0012}  # excludes 0, yet far inside a bound of 0.03
    assert verdict(tiny_real_change, "same", margin=0.03) == "confirmed"
    assert verdict(tiny_real_change, "higher") == "refuted"  # what the one-sided reading would say
    assert verdict({"lo": -0.05, "hi": -0.04}, "same", margin=0.03) == "refuted"  # beyond the bound
    assert verdict({"lo": 0.04, "hi": 0.05}, "same", margin=0.03) == "refuted"
    assert verdict({"lo": -0.01, "hi": 0.04}, "same", margin=0.03) == "undecided"  # straddles the bound
    with pytest.raises(ValueError, match="margin"):
        verdict(tiny_real_change, "same")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1.0, 2.0], [1.0, 3.0], level=1.5)
    with pytest.raises(ValueError, match="expect"):
        verdict({"lo": 0.1, "hi": 0.2}, "better")


def test_compare_rows_pairs_per_image_values_and_names_what_is_wrong():
    rows = {
        "a": {"n": 3, "per_image": {"m": [1.0, 2.0, 3.0]}},
        "b": {"n": 3, "per_image": {"m": [2.0, 3.0, 5.0]}},
        "old": {"n": 3, "m": 1.0},
        "short": {"n": 2, "per_image": {"m": [1.0, 2.0]}},
    }
    out = compare_rows(rows, [("a", "b")], ["m"], lambda row, k: row["per_image"][k])
    assert list(out) == ["b vs a"] and out["b vs a"]["m"]["mean"] == pytest.approx(4 / 3)
    assert 1 <= out["b vs a"]["m"]["lo"] <= out["b vs a"]["m"]["hi"] <= 2
    for pair, match in [(("a", "zz"), "no row named 'zz'"), (("a", "old"), "'old' has no per-image"),
                        (("a", "short"), "scored on 3 and 2 images")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            compare_rows(rows, [pair], ["m"], lambda row, k: row["per_image"][k])
