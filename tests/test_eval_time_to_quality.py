"""ganinv.eval.time_to_quality: the steps at which optimisation reaches an encoder's quality, the curves of
the tiny models, and `ganinv eval time-to-quality` writing into the budget study's JSON."""

import json

import matplotlib.pyplot as plt
import pytest

from ganinv.checkpoints import save_generator
from ganinv.cli import main
from ganinv.eval import reconstruction as recon_eval
from ganinv.eval import time_to_quality as ttq
from ganinv.models.encoders import save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

CURVE = {"steps": [10, 100, 1000], "seconds_per_image": [1.0, 10.0, 100.0], "lpips_sfn": [0.5, 0.3, 0.1],
         "psnr": [20.0, 25.0, 30.0]}  # fmt: skip


def test_steps_to_match_interpolates_on_log_steps_and_reports_bounds():
    mid = ttq.steps_to_match(CURVE, "lpips_sfn", 0.4)  # halfway between 10 and 100 steps, on a log axis
    assert mid["bound"] == "=" and mid["steps"] == pytest.approx(10**1.5)
    assert mid["seconds_per_image"] == pytest.approx(10**1.5 * 0.1)
    up = ttq.steps_to_match(CURVE, "psnr", 27.5)  # higher is better for PSNR
    assert up["bound"] == "=" and up["steps"] == pytest.approx(10**2.5)
    assert ttq.steps_to_match(CURVE, "lpips_sfn", 0.6) == {
        "steps": 10,
        "seconds_per_image": 1.0,
        "bound": "<=",
    }
    assert ttq.steps_to_match(CURVE, "lpips_sfn", 0.05)["bound"] == ">"
    exact = ttq.steps_to_match(CURVE, "lpips_sfn", 0.3)
    assert exact["steps"] == pytest.approx(100) and exact["bound"] == "="
    # a curve that gets worse before it gets better: the first crossing counts
    wavy = {**CURVE, "lpips_sfn": [0.5, 0.6, 0.2]}
    assert ttq.steps_to_match(wavy, "lpips_sfn", 0.4)["steps"] == pytest.approx(10 ** (2 + 0.5))


def test_match_table_divides_by_the_encoders_time():
    encoder = {"seconds_per_image": 0.01, "lpips_sfn": 0.4, "psnr": 22.5, "factor_error": 0.1}
    curve = {**CURVE, "factor_error": [0.2, 0.1, 0.05]}
    result = {"optim": {"optim-w": curve}, "encoders": {"psp": encoder}}
    table = ttq.match_table(result)
    m = table["lpips_sfn"]["psp"]["optim-w"]
    assert m["speed_ratio"] == pytest.approx(m["seconds_per_image"] / 0.01)
    assert table["factor_error"]["psp"]["optim-w"]["steps"] == pytest.approx(100)


@pytest.fixture(scope="module")
def tiny(G, tiny_psp_sfn):
    return tiny_psp_sfn(G)


def test_curves_and_encoder_points_are_scored_on_the_same_held_out_images(G, tiny):
    enc, sfn = tiny
    cfg = ttq.TimeToQualityConfig(n=3, budgets=(1, 4), encoders=("psp",), encoder=enc)
    result = ttq.evaluate_time_to_quality(G, sfn, cfg, progress=False)
    assert list(result["optim"]) == ["optim-w", "optim-w+"] and result["budgets"] == [1, 4]
    for curve in result["optim"].values():
        assert curve["steps"] == [1, 4] and all(len(curve[k]) == 2 for k in ttq.KEYS)
        assert curve["seconds_per_image"][1] > 0
    # the encoder's point is the reconstruction benchmark's number on those images
    bench = recon_eval.evaluate_reconstruction({"psp": recon_eval.Entry("psp", enc)}, G, sfn, n=3,
                                               progress=False)  # fmt: skip
    for k in ttq.KEYS:
        assert result["encoders"]["psp"][k] == pytest.approx(bench["methods"]["psp"][k], rel=1e-4)
    assert set(result["match"]) == {"lpips_sfn", "psnr", "factor_error"}
    assert set(result["match"]["psnr"]["psp"]) == {"optim-w", "optim-w+"}
    assert "| psp |" in ttq.match_lines(result)
    fig = ttq.time_to_quality_figure(result)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="increasing"):
        ttq.evaluate_time_to_quality(G, sfn, ttq.TimeToQualityConfig(budgets=(4, 1)), progress=False)


def test_cli_stores_the_curves_beside_the_budget_study(G, tiny, tmp_path, capsys):
    gen, enc = tmp_path / "g.pt", tmp_path / "psp.pt"
    save_generator(gen, G)
    save_encoder(enc, tiny[0])
    out = tmp_path / "03_budget.json"
    out.write_text(json.dumps({"steps": [1200], "claims": []}))
    main(["eval", "time-to-quality", "--generator", str(gen), "--encoder", str(enc), "--encoders", "psp",
          "-n", "2", "--budgets", "1", "2", "--json", str(out), "--device", "cpu"])  # fmt: skip
    stored = json.loads(out.read_text())
    assert stored["steps"] == [1200] and stored["time_to_quality"]["n"] == 2  # the study's keys stay
    assert "optim-w+" in stored["time_to_quality"]["optim"]
    assert "| psp |" in capsys.readouterr().out
