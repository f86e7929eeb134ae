"""ganinv.eval.metric_battery: the distortion battery, its statistics (Spearman, equal-MSE weights, verdicts),
the realism score it relies on, and `ganinv eval metrics`."""

import json
import math

import pytest
import torch

from ganinv.cli import main
from ganinv.eval import metric_battery as mv
from ganinv.eval import reconstruction as recon_eval
from ganinv.fid import realism_scores
from ganinv.metrics import mse
from ganinv.models.sfn import SFN, SFNConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sfn():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)).eval()


def test_spearman_and_equal_mse_slope():
    assert mv.spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert mv.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert mv.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # one swap of three
    assert mv.spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(0.894427, rel=1e-5)  # ties: mean ranks
    assert math.isnan(mv.spearman([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match="equal length"):
        mv.spearman([1, 2], [1, 2, 3])
    assert mv.equal_mse_slope([0.2, 0.4, 0.6], [0.1, 0.2, 0.3]) == pytest.approx(2.0)
    assert math.isnan(mv.equal_mse_slope([float("inf"), 1.0], [0.1, 0.2]))


def test_realism_score_is_the_ratio_of_the_best_real_ball():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    # k=1 radii: 1, 1, 2, ~12.8; keep=0.5 keeps the two radius-1 balls
    fake = torch.tensor([[0.5, 0.0], [0.0, 3.0], [10.0, 10.0]])
    r = realism_scores(real, fake, k=1, keep=0.5)
    assert r[0] == pytest.approx(2.0)  # 0.5 from both kept centres: 1 / 0.5
    assert r[1] == pytest.approx(1 / 3, rel=1e-5)  # the outlier's huge ball was pruned
    assert r[2] < 0.1
    assert realism_scores(real, fake, k=1, keep=1.0)[2] == math.inf  # unpruned: inside the outlier's ball
    with pytest.raises(ValueError, match="k="):
        realism_scores(real, fake, k=4)
    with pytest.raises(ValueError, match="feature sizes"):
        realism_scores(real, fake[:, :1])


@pytest.mark.parametrize("family", mv.FAMILIES)
def test_each_distortion_grows_with_its_strength_and_keeps_the_range(family):
    x, _ = recon_eval.held_out(3, 32)
    draws = mv.draw(3, 32, seed=1)
    errors = []
    for level in mv.LEVELS[family]:
        d = mv.distort(x, family, level, draws)
        assert d.shape == x.shape and d.min() >= -1 and d.max() <= 1
        errors.append(float(mse(d, x).mean()))
    assert errors[0] > 0 and mv.spearman(range(len(errors)), errors) >= 0.9, errors
    again = mv.distort(x, family, mv.LEVELS[family][2], mv.draw(3, 32, seed=1))
    assert torch.equal(again, mv.distort(x, family, mv.LEVELS[family][2], draws))  # deterministic
    with pytest.raises(ValueError, match="unknown family"):
        mv.distort(x, "sepia", 1.0, draws)


def test_battery_scores_every_metric_and_states_verdicts(sfn):
    cfg = mv.BatteryConfig(n=4, size=32, reference_n=8, families=("noise", "blur", "shift"), lpips_alex=False)
    half = {"half": lambda x: 0.5 * x}  # a fake encoder: its "reconstruction" is a dimmer image
    result = mv.evaluate_battery(sfn, cfg, encoders=half, progress=False)
    assert list(result["families"]) == ["noise", "blur", "shift", "encoder:half"]
    assert set(result["spearman"]) == set(mv.METRIC_ORIENTATION) - {"lpips_alex"}
    noise = result["families"]["noise"]
    assert noise["levels"] == list(mv.LEVELS["noise"]) and len(noise["per_set"]["fid_sfn"]) == 6
    for m in ("mse", "mae", "psnr", "ssim"):  # pixel metrics see noise perfectly monotonically
        assert result["spearman"][m]["noise"] == pytest.approx(1.0)
    # the encoder family is x + s (x/2 - x) = (1 - s/2) x: its MSE is exactly s² / 4 * mean(x²)
    x, _ = recon_eval.held_out(4, 32)
    expected = [s**2 / 4 * float(x.pow(2).mean()) for s in mv.ENCODER_LEVELS]
    got = result["families"]["encoder:half"]["per_image_mean"]["mse"]
    assert got == pytest.approx(expected, rel=1e-4)
    w = result["weight_at_equal_mse"]
    assert all(v == pytest.approx(1.0) for v in w["mse"].values())  # MSE weighs every family alike
    assert w["lpips_sfn"]["noise"] == pytest.approx(1.0) and result["reference_family"] == "noise"
    assert all(v is None for v in w["psnr"].values())  # infinite on the clean images: no slope
    v = result["verdicts"]["factor_error"]
    assert v["meant_to_see"] == ["encoder:half"]
    assert v["monotone_in_meant"] == (result["spearman"]["factor_error"]["encoder:half"] >= mv.MONOTONE)
    table = mv.verdict_table(result)
    assert table.count("\n") == len(result["verdicts"]) + 1 and "| mse | yes |" in table


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="n >= 2"):
        mv.BatteryConfig(n=1)
    with pytest.raises(ValueError, match="unknown"):
        mv.BatteryConfig(families=("blur", "sepia"))
    with pytest.raises(ValueError, match="reference_family"):
        mv.BatteryConfig(families=("blur",))


def test_cli_writes_json_and_figure(tmp_path, sfn, capsys):
    from ganinv.models.sfn import save_sfn

    path = tmp_path / "sfn.pt"
    save_sfn(path, sfn)
    out, fig = tmp_path / "mv.json", tmp_path / "mv.png"
    main(["eval", "metrics", "-n", "3", "--size", "32", "--reference-n", "6", "--encoders", "--sfn",
          str(path), "--json", str(out), "--figure", str(fig), "--device", "cpu"])  # fmt: skip
    result = json.loads(out.read_text())
    assert list(result["families"]) == list(mv.FAMILIES) and result["generator"] is None
    assert fig.stat().st_size > 10_000
    assert "| lpips_sfn |" in capsys.readouterr().out
