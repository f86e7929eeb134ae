"""ganinv.eval.reconstruction: factor error against ground truth, the benchmark over inversion methods, its
table and the `ganinv eval reconstruction` command."""

import json

import pytest
import torch
from torch import nn

from ganinv.checkpoints import save_generator
from ganinv.cli import main
from ganinv.data import synthfaces as sf
from ganinv.data.images import pool_to
from ganinv.eval import reconstruction as recon_eval
from ganinv.metrics import id_similarity, mse
from ganinv.models.encoders import save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


class Reader(nn.Module):
    """An SFN stand-in whose read-out is fixed (to test the error arithmetic alone)."""

    def __init__(self, read: dict) -> None:
        super().__init__()
        self.read = read

    def attributes(self, x):
        return self.read


def truth_read(factors: torch.Tensor) -> dict:
    read = {}
    for i, f in enumerate(sf.FACTORS):
        col = factors[:, i].clone()
        read[f.name] = col.long() if f.kind == "categorical" else col
    return read


def test_factor_errors_are_zero_for_the_truth_and_count_each_kind_of_miss():
    images, factors = recon_eval.held_out(3, 32)
    assert images.shape == (3, 3, 32, 32) and factors.shape == (3, len(sf.FACTORS))
    errors = recon_eval.factor_errors(Reader(truth_read(factors)), images, factors)
    assert set(errors) == set(sf.FACTOR_NAMES) | {"factor_error"}
    assert all(float(v.abs().max()) == 0 for v in errors.values())
    read = truth_read(factors)
    read["smiling"][0] = 1 - read["smiling"][0]  # a wrong binary read-out: error 1
    read["yaw"][1] = read["yaw"][1] + 0.5  # yaw lives on [-1, 1]: error 0.5 / 2
    read["hair_style"][2] = (read["hair_style"][2] + 1) % 4  # wrong class: error 1
    errors = recon_eval.factor_errors(Reader(read), images, factors)
    assert errors["smiling"].tolist() == [1, 0, 0]
    torch.testing.assert_close(errors["yaw"], torch.tensor([0.0, 0.25, 0.0]))
    assert errors["hair_style"].tolist() == [0, 0, 1]
    n = len(sf.FACTORS)
    torch.testing.assert_close(errors["factor_error"], torch.tensor([1 / n, 0.25 / n, 1 / n]))
    with pytest.raises(ValueError, match="factors must be"):
        recon_eval.factor_errors(Reader(read), images, factors[:, :3])


@pytest.fixture(scope="module")
def tiny(G, tiny_psp_sfn):
    return tiny_psp_sfn(G)


def test_benchmark_scores_each_entry_on_the_same_held_out_images(G, tiny):
    enc, sfn = tiny
    entries = {
        "psp": recon_eval.Entry("psp", enc),
        "optim-w (2 steps)": recon_eval.Entry("optim-w", options={"steps": 2}, n=2),
    }
    result = recon_eval.evaluate_reconstruction(entries, G, sfn, n=3, batch_size=2, progress=False)
    assert result["n"] == 3 and result["image_size"] == 32 and list(result["methods"]) == list(entries)
    psp, optim = result["methods"]["psp"], result["methods"]["optim-w (2 steps)"]
    assert psp["n"] == 3 and optim["n"] == 2 and optim["options"] == {"steps": 2}
    for row in (psp, optim):
        for key in recon_eval.METRIC_KEYS:
            assert key in row, key
        assert set(row["factor_error_by_factor"]) == set(sf.FACTOR_NAMES)
        assert row["seconds_per_image"] > 0
    # the numbers are those of the encoder's own reconstruction of the held-out images
    x, factors = recon_eval.held_out(3, 32)
    with torch.no_grad():
        image = pool_to(G.synthesis(enc(x), noise_mode="const"), 32).clamp(-1, 1)
        identity = id_similarity(image, x, sfn).mean()
    assert psp["mse"] == pytest.approx(float(mse(image, x).mean()), rel=1e-5)
    assert psp["id_sfn"] == pytest.approx(float(identity), rel=1e-5)
    errors = recon_eval.factor_errors(sfn, image, factors)
    assert psp["factor_error"] == pytest.approx(float(errors["factor_error"].mean()), rel=1e-5)
    floor = recon_eval.factor_errors(sfn, x, factors)["factor_error"].mean()
    assert result["input"]["factor_error"] == pytest.approx(float(floor), rel=1e-5)
    # realism: the reconstructions against held-out faces of another seed (never the inputs themselves)
    reference = recon_eval.realism_reference(sfn, 32)
    assert recon_eval.REFERENCE_SEED != recon_eval.EVAL_SEED and reference["texture"].shape[0] == 1000
    expected = recon_eval.realism_columns(reference, recon_eval.realism_features(sfn, image))
    assert psp["fid_sfn"] == pytest.approx(expected["fid_sfn"], rel=1e-5)
    assert psp["fid_sfn_texture"] == pytest.approx(expected["fid_sfn_texture"], rel=1e-5)
    assert psp["realism_sfn_texture"] == pytest.approx(
        float(expected["realism_sfn_texture"].mean()), rel=1e-5
    )
    assert psp["realism_reference"] == {"seed": recon_eval.REFERENCE_SEED, "n": 1000}
    table = recon_eval.markdown_table(result)
    assert table.count("\n") == 4 and "input (SFN floor)" in table
    best_mse = min(psp["mse"], optim["mse"])
    assert f"**{best_mse:.4g}**" in table


def test_realism_columns_tell_the_reference_from_noise_and_tables_cope_without_them(tiny):
    sfn = tiny[1]
    reference = recon_eval.realism_reference(sfn, 32, n=200)
    clean, _ = recon_eval.held_out(50, 32)  # the evaluated inputs: another seed than the reference
    noisy = (clean + 0.3 * torch.randn(clean.shape)).clamp(-1, 1)
    a = recon_eval.realism_columns(reference, recon_eval.realism_features(sfn, clean))
    b = recon_eval.realism_columns(reference, recon_eval.realism_features(sfn, noisy))
    assert b["fid_sfn_texture"] > 3 * a["fid_sfn_texture"]
    assert float(b["realism_sfn_texture"].mean()) < float(a["realism_sfn_texture"].mean())
    assert (
        recon_eval.realism_columns(reference, recon_eval.realism_features(sfn, clean[:1]))["fid_sfn"] is None
    )
    with pytest.raises(ValueError, match="n >= 4"):
        recon_eval.realism_reference(sfn, 32, n=3)
    # rows scored before the realism columns existed show "—" and take no part in the ranking
    old = {"mse": 0.01, "psnr": 20.0, "ssim": 0.7, "lpips_sfn": 0.5, "id_sfn": 0.6, "factor_error": 0.1,
           "seconds_per_image": 0.01, "n": 10}  # fmt: skip
    new = {**old, "fid_sfn": 0.2, "fid_sfn_texture": 0.1, "realism_sfn_texture": 0.9}
    table = recon_eval.markdown_table(
        {"n": 10, "input": {"factor_error": 0.02}, "methods": {"old": old, "new": new}}
    )
    old_line = next(line for line in table.splitlines() if line.startswith("| old |"))
    assert old_line.count("—") == 3 and old_line.endswith("| — | — | — | **0.01** |")
    assert "**0.2**" in table and "**0.9**" in table


def test_entries_and_bad_arguments(G, tiny):
    name, entry = recon_eval.parse_entry("no align=clcae-f@runs/x/clcae.pt")
    assert name == "no align" and entry.method == "clcae-f" and entry.encoder == "runs/x/clcae.pt"
    assert recon_eval.parse_entry("w=optim-w")[1].encoder is None
    for bad, match in [("clcae-f", "NAME=METHOD"), ("a=nope", "unknown inversion method"),
                       ("a=optim-w@enc.pt", "takes no encoder")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            recon_eval.parse_entry(bad)
    entries = recon_eval.default_entries(optim_steps=7, optim_n=5)
    assert set(entries) == {"optim-w", "optim-w+", "psp", "e4e", "clcae-w", "clcae-w+", "clcae-f"}
    assert entries["optim-w+"].options == {"steps": 7} and entries["optim-w+"].n == 5
    assert entries["psp"].encoder == "synthfaces64" and entries["optim-w"].encoder is None
    specs = recon_eval.entries_from_specs(["p=psp", "q=e4e@q.pt", "w=optim-w"], 7, 5, encoder="gen")
    assert (specs["p"].encoder, specs["q"].encoder, specs["w"].encoder) == ("gen", "q.pt", None)
    assert specs["w"].options == {"steps": 7} and specs["w"].n == 5
    with pytest.raises(ValueError, match="needs an encoder"):  # no silent fallback to a bundled name
        recon_eval.evaluate_reconstruction({"p": recon_eval.Entry("psp")}, G, tiny[1], n=2, progress=False)
    with pytest.raises(ValueError, match="n must be"):
        recon_eval.evaluate_reconstruction({"p": recon_eval.Entry("psp", tiny[0], n=0)}, G, tiny[1], n=2)


def test_cli_writes_the_json(G, tiny, tmp_path, capsys):
    gen, enc = tmp_path / "g.pt", tmp_path / "psp.pt"
    save_generator(gen, G)
    save_encoder(enc, tiny[0])
    out = tmp_path / "03.json"
    main(["eval", "reconstruction", "--generator", str(gen), "--entry", f"pSp=psp@{enc}", "--entry",
          "W=optim-w", "-n", "2", "--optim-n", "1", "--optim-steps", "2", "--json", str(out),
          "--device", "cpu"])  # fmt: skip
    result = json.loads(out.read_text())
    assert list(result["methods"]) == ["pSp", "W"] and result["methods"]["W"]["n"] == 1
    assert result["methods"]["W"]["options"] == {"steps": 2} and result["generator"] == str(gen)
    assert "| pSp | 2 |" in capsys.readouterr().out
    grid = tmp_path / "grid.png"  # the picture: inputs, then each row's images and error maps
    main(["eval", "reconstruction", "--generator", str(gen), "--entry", f"pSp=psp@{enc}", "-n", "2",
          "--grid", str(grid), "--grid-n", "2", "--device", "cpu"])  # fmt: skip
    from PIL import Image

    assert Image.open(grid).size[1] > Image.open(grid).size[0] / 4  # three rows of two faces
    # --add puts more rows into the same file; a different image count is refused
    main(["eval", "reconstruction", "--generator", str(gen), "--entry", f"pSp again=psp@{enc}", "-n", "2",
          "--json", str(out), "--add", "--device", "cpu"])  # fmt: skip
    merged = json.loads(out.read_text())
    assert list(merged["methods"]) == ["pSp", "W", "pSp again"]
    assert merged["methods"]["pSp again"]["mse"] == pytest.approx(merged["methods"]["pSp"]["mse"])
    with pytest.raises(SystemExit, match="n 2 vs 3"):
        main(["eval", "reconstruction", "--generator", str(gen), "--entry", f"p=psp@{enc}", "-n", "3",
              "--json", str(out), "--add", "--device", "cpu"])  # fmt: skip
    # per-image values are kept, and --compare pairs rows of the file with new ones
    assert len(merged["methods"]["pSp"]["per_image"]["lpips_sfn"]) == 2
    main(["eval", "reconstruction", "--generator", str(gen), "--entry", "W2=optim-w", "-n", "2", "--optim-n",
          "2", "--optim-steps", "2", "--json", str(out), "--add", "--compare", "pSp", "W2", "--device",
          "cpu"])  # fmt: skip
    d = json.loads(out.read_text())["comparisons"]["W2 vs pSp"]["lpips_sfn"]
    rows = json.loads(out.read_text())["methods"]
    expect = sum(
        b - a for a, b in zip(rows["pSp"]["per_image"]["lpips_sfn"], rows["W2"]["per_image"]["lpips_sfn"])
    )
    assert (
        d["mean"] == pytest.approx(expect / 2, abs=1e-4) and d["lo"] <= d["mean"] <= d["hi"] and d["n"] == 2
    )
    with pytest.raises(SystemExit, match="'W' and 'pSp' were scored on 1 and 2 images"):
        main(["eval", "reconstruction", "--generator", str(gen), "--entry", f"p=psp@{enc}", "-n", "2",
              "--json", str(out), "--add", "--compare", "W", "pSp", "--device", "cpu"])  # fmt: skip


def test_results_figure_colours_the_methods_and_explains_them():
    import matplotlib.pyplot as plt

    result = {
        "methods": {"psp": {"lpips_sfn": 0.5, "factor_error": 0.12}, "clcae-f": {"lpips_sfn": 0.4,
                    "factor_error": 0.07}},
        "input": {"factor_error": 0.02},
    }  # fmt: skip
    fig = recon_eval.results_figure(result)
    bars = [p for p in fig.axes[0].patches]
    assert [b.get_facecolor() for b in bars][0] != [b.get_facecolor() for b in bars][1]  # baseline vs CLCAE
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["CLCAE and its ablations", "baselines", "SFN floor (the inputs themselves)"]
    assert [line.get_xdata()[0] for line in fig.axes[1].get_lines()] == [0.02]  # the floor where it applies
    assert not fig.axes[0].get_lines()  # no LPIPS-SFN floor
    plt.close(fig)
