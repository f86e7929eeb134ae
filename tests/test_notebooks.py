"""Every numbered notebook runs headless (papermill, SMOKE parameters) and writes its figures and metrics.

The committed, executed notebooks are additionally re-run by nbval (``make test``:
``pytest --nbval-lax --nbval-current-env -p no:python notebooks/``).
"""

import json
import math

import nbformat
import pytest
from PIL import Image

from ganinv import reproduce
from ganinv.eval import budget as budget_eval
from ganinv.eval import claims

pytestmark = pytest.mark.slow

NB01 = reproduce.NOTEBOOKS / "01_stylegan2_and_latent_spaces.ipynb"
NB01_FIGURES = [
    "01_synthfaces",
    "01_synthfaces_flips",
    "01_mapping",
    "01_demodulation",
    "01_noise",
    "01_torgb_skips",
    "01_interpolation_z_vs_w",
    "01_style_mixing",
    "01_f_space",
    "01_truncation",
    "01_live_training_losses",
    "01_live_training_samples",
    "01_samples",
    "01_attribute_frequency",
]


def smoke_run(notebook, tmp_path, figure_names) -> tuple[dict, str]:
    """Execute ``notebook`` with the SMOKE parameters into ``tmp_path``, check that each named figure was
    written (and is not a stub), and return its metrics JSON and the text of all its outputs."""
    figures = tmp_path / "figures"
    out = reproduce.execute(
        notebook,
        {"SMOKE": True, "DEVICE": "cpu", "FIGURES": str(figures)},
        output=tmp_path / notebook.name,
        timeout=900,
    )
    for name in figure_names:
        with Image.open(figures / f"{name}.png") as im:
            assert im.width > 100 and im.height > 100, name
    metrics = json.loads((figures / f"{notebook.name[:2]}_metrics.json").read_text())
    text = "".join(
        o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
    )
    return metrics, text


def test_notebooks_have_parameters_cell_and_python3_kernel():
    paths = reproduce.numbered_notebooks()
    assert NB01 in paths
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{path.name}: first code cell not tagged"
        for name in ("SMOKE", "DEVICE", "CHECKPOINT", "SEED"):
            assert f"{name} =" in first_code.source, f"{path.name}: parameter {name} missing"
        # committed executed: every code cell has an execution count (nbval needs them; nbstripout keeps them)
        assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code"), path.name


def test_notebook_01_smoke_run_writes_figures_and_metrics(tmp_path):
    metrics, text = smoke_run(NB01, tmp_path, NB01_FIGURES)
    assert metrics["smoke"] is True and metrics["n"] == 200
    # the mapping network warps the isotropic Gaussian: W's principal variances spread far more than Z's
    assert metrics["pca_condition_w"] > 3 * metrics["pca_condition_z"]
    for key in ("fid_sfn", "fid_sfn_blurred_data", "fid_sfn_data_vs_data", "ppl_sfn_z", "ppl_sfn_w"):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
    # two disjoint samples of the data are closer than blurred data is to the data
    assert metrics["fid_sfn_data_vs_data"] < metrics["fid_sfn_blurred_data"]
    assert "reproduces G(w_A): max |difference| = 0.0e+00" in text
    assert "trained 4 steps" in text


NB02 = reproduce.NOTEBOOKS / "02_w_space_contrastive_alignment.ipynb"


def test_notebook_02_smoke_run_writes_figures_and_metrics(tmp_path):
    names = ("02_pairs", "02_live_training", "02_similarity", "02_retrieval")
    metrics, _ = smoke_run(NB02, tmp_path, names)
    assert metrics["smoke"] is True and metrics["n_retrieval"] == 64
    for key in (
        "image_to_latent_top1",
        "latent_to_image_top1",
        "image_to_latent_top5",
        "latent_to_image_top5",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["image_to_latent_top5"] >= metrics["image_to_latent_top1"]
    # the bundled aligner prefers each image's own code to another image's code and to the average code
    align = metrics["align_loss"]
    assert align["true w"] < align["shuffled w"] and align["true w"] < align["w_avg for every image"]


NB03 = reproduce.NOTEBOOKS / "03_wplus_f_cross_attention_encoding.ipynb"


def test_notebook_03_smoke_run_writes_figures_and_metrics(tmp_path):
    names = ["03_attention", "03_live_training", "03_reconstructions", "03_error_maps", "03_results"]
    metrics, text = smoke_run(NB03, tmp_path, names)
    assert metrics["smoke"] is True and metrics["live_n"] == 8
    live = metrics["live"]
    assert set(live) == {"clcae-w", "clcae-w+", "clcae-f", "psp", "e4e"}
    # the bundled encoder: the F code reconstructs held-out faces better than the W code alone
    assert live["clcae-f"]["lpips_sfn"] < live["clcae-w"]["lpips_sfn"]
    assert live["clcae-f"]["mse"] < live["clcae-w"]["mse"]
    assert sum(metrics["f_attention_share_coarse_middle_fine"]) == pytest.approx(1.0, abs=1e-4)
    # the released single-token attention ignores its query, and W_Q gets no gradient
    assert "with one token: 0.0e+00" in text
    assert "W_V gets a gradient: True; W_Q and W_K only rounding noise (< 1e-4 of W_V's): True" in text
    assert "trained 2 steps" in text


NB04 = reproduce.NOTEBOOKS / "04_editing.ipynb"


def test_notebook_04_smoke_run_writes_figures_and_metrics(tmp_path):
    names = [
        "04_direction_cosines",
        "04_interfacegan_edits",
        "04_ganspace",
        "04_edits_by_method",
        "04_tradeoff",
    ]
    metrics, text = smoke_run(NB04, tmp_path, names)
    assert metrics["smoke"] is True and metrics["live_n"] == 4
    assert set(metrics["live"]) == {"e4e", "psp", "clcae-w", "clcae-w+", "clcae-f"}
    # the bundled boundaries separate their attributes far better than chance
    assert min(metrics["boundary_accuracy"].values()) > 0.6
    # the conditional direction moves the correlated partner attribute less than the plain one (the mean
    # |change of P(partner)| counts every face; the flip share of 16 faces is too coarse to compare)
    cond = metrics["conditional"]
    partner = cond["partner"]
    assert cond["target"] != partner and abs(cond["cosine"]) > 0.05
    assert cond[f"conditioned on {partner}"]["partner_shift"] < cond["plain"]["partner_shift"]
    assert cond[f"conditioned on {partner}"]["target"] > 0.2  # the edit still takes effect
    # the explorer cell: moving a slider changes the picture, reset restores it exactly
    assert "picture changed: True" in text and "after reset: True" in text


NB05 = reproduce.NOTEBOOKS / "05_diverse_inpainting.ipynb"


def test_notebook_05_smoke_run_writes_figures_and_metrics(tmp_path):
    names = ["05_masks", "05_gates", "05_cases", "05_live_training", "05_stages", "05_diverse", "05_mouth",
             "05_edits"]  # fmt: skip
    metrics, text = smoke_run(NB05, tmp_path, names)
    assert metrics["smoke"] is True and metrics["live_n"] == 4 and metrics["live_steps"] == 4
    live = metrics["live"]
    assert set(live) == {"diverse (ours)", "no stage 2", "no mixing"}
    # the bundled model: mixing makes the completions differ, the deterministic path does not
    assert (
        live["diverse (ours)"]["diversity_lpips_sfn"] > 0.01 and live["no mixing"]["diversity_lpips_sfn"] == 0
    )
    # stage 2 makes the known pixels more faithful than stage 1 (same inputs, masks and z)
    assert metrics["psnr_known_stage2"] > metrics["psnr_known_stage1"]
    assert live["diverse (ours)"]["psnr_unerased"] > live["no stage 2"]["psnr_unerased"]
    for share in metrics["mouth_erased_smiling_share"]:
        assert 0 <= share <= 1
    # editing the completed eyes towards the attribute yields more of it than editing away from it
    edit_share, mean_p = metrics["edit_share"], metrics["edit_mean_p"]
    assert metrics["edit_attribute"] == "glasses" and edit_share["+1"] > edit_share["-1"]
    assert mean_p["+1"] > mean_p["-1"] + 0.5  # the glasses edit shows inside the eyes-and-brows hole
    assert "trained 4 steps" in text


NB06 = reproduce.NOTEBOOKS / "06_ablations.ipynb"


def test_notebook_06_smoke_run_writes_figures_and_a_claims_table_from_the_results(tmp_path):
    metrics, text = smoke_run(NB06, tmp_path, ["06_stage2"])
    assert metrics["smoke"] is True and metrics["clcae_step"] == 12000
    # stage 2 keeps the known pixels closer to the input than stage 1 does (same faces, masks and z)
    errors = metrics["unerased_abs_error"]
    assert errors["stage 2 (raw)"] < errors["stage 1 (raw)"]
    # every claim of both papers has a line, and a verdict only where an interval allows one
    # (CLCAE's at the largest budget that measured each)
    n_clcae = len(budget_eval.CLAIM_METRICS) * len(budget_eval.CLAIMS)
    assert len(metrics["claims"]) == len(claims.INPAINTING_CLAIMS) + n_clcae
    for row in metrics["claims"]:
        if row["verdict"].split(" (")[0] in ("confirmed", "refuted"):
            assert row["lo"] > 0 or row["hi"] < 0, row
        elif row["verdict"] == "undecided":
            assert row["lo"] <= 0 <= row["hi"], row
    assert "| paper | claim | metric |" in text
