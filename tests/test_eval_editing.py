"""ganinv.eval.editing: edits of inversions scored against the SFN read-out, the directions file, the table,
the trade-off figure and the `ganinv train directions` / `ganinv eval editing` commands."""

import json

import pytest
import torch
import torch.nn.functional as F

from ganinv import editing as E
from ganinv.checkpoints import save_generator
from ganinv.cli import main
from ganinv.data import synthfaces as sf
from ganinv.eval import editing as edit_eval
from ganinv.eval import reconstruction as recon_eval
from ganinv.metrics import id_similarity
from ganinv.models.encoders import save_encoder
from ganinv.models.sfn import SFN, SFNConfig, save_sfn

pytestmark = pytest.mark.usefixtures("one_thread")


class BrightSFN(SFN):
    """A tiny random SFN whose "smiling" read-out is P = sigmoid(k (mean brightness - c)) (a known reader)."""

    c, k = 0.0, 200.0

    def attributes(self, x):
        out = super().attributes(x)
        out["smiling"] = torch.sigmoid(self.k * (x.mean((1, 2, 3)) - self.c))
        return out


@pytest.fixture(scope="module")
def tiny(G, tiny_psp_sfn):
    enc, sfn = tiny_psp_sfn(G, BrightSFN)
    return enc, sfn.requires_grad_(False)


def unit(seed: int, d: int = 16) -> torch.Tensor:
    return F.normalize(torch.randn(d, generator=torch.Generator().manual_seed(seed)), dim=0)


def direct(G, enc, sfn, n: int, vector: torch.Tensor, strength: float):
    """Reconstruction and edit of the first n held-out faces, computed by hand: (x, ref, edited)."""
    x, _ = recon_eval.held_out(n, G.size)
    with torch.no_grad():
        w_plus = enc(x)  # [n, L, D]
        ref = G.synthesis(w_plus, noise_mode="const").clamp(-1, 1)
        edited = G.synthesis(w_plus + strength * vector, noise_mode="const").clamp(-1, 1)
    return x, ref, edited


def test_factor_changes_follow_the_factor_error_conventions():
    before = {f.name: torch.zeros(2) for f in sf.FACTORS}
    before["hair_style"] = torch.tensor([1, 2])
    after = {k: v.clone() for k, v in before.items()}
    after["smiling"] = torch.tensor([0.6, 0.4])  # crosses 0.5 for the first image only
    after["yaw"] = torch.tensor([0.5, -1.0])  # yaw spans [-1, 1]
    after["hair_style"] = torch.tensor([1, 3])
    ch = edit_eval.factor_changes(before, after)
    assert set(ch) == set(sf.FACTOR_NAMES)
    assert ch["smiling"].tolist() == [1, 0] and ch["hair_style"].tolist() == [0, 1]
    torch.testing.assert_close(ch["yaw"], torch.tensor([0.25, 0.5]))
    assert float(ch["age"].abs().sum()) == 0


def test_scores_equal_a_direct_computation_and_zero_edits_change_nothing(G, tiny):
    enc, sfn = tiny
    v = unit(1)
    dirs = {"smiling": E.Direction(v, "interfacegan", std=0.7, accuracy=0.9),
            "glasses": E.Direction(torch.zeros(16), "interfacegan", std=1.0)}  # fmt: skip
    x, ref, _ = direct(G, enc, sfn, 3, v, 0.0)
    sfn.c = float(x.mean())
    result = edit_eval.evaluate_editing({"pSp": recon_eval.Entry("psp", enc)}, G, sfn, dirs, strengths=(0, 2),
                                        n=3, batch_size=2, progress=False)  # fmt: skip
    assert result["attributes"] == ["smiling", "glasses"] and result["strengths"] == [0.0, 2.0]
    row = result["methods"]["pSp"]
    assert (
        row["space"] == "W+"
        and row["n"] == 3
        and set(row["reconstruction"]) == {"mse", "lpips_sfn", "id_sfn"}
    )
    assert row["reconstruction"]["id_sfn"] == pytest.approx(
        float(id_similarity(ref, x, sfn).mean()), rel=1e-5
    )
    zero, two = row["edits"]["smiling"]["by_strength"]
    # realism of the edits: the images at |strength| 2 (both attributes), against the held-out reference
    reference = recon_eval.realism_reference(sfn, 32)
    edited = torch.cat([direct(G, enc, sfn, 3, v, 2 * 0.7)[2], ref])  # smiling; the zero glasses edit
    expected = recon_eval.realism_columns(reference, recon_eval.realism_features(sfn, edited))
    assert row["realism"]["edits"]["fid_sfn"] == pytest.approx(expected["fid_sfn"], rel=1e-4)
    assert row["realism"]["edits"]["realism_sfn_texture"] == pytest.approx(
        float(expected["realism_sfn_texture"].mean()), rel=1e-4
    )
    assert row["realism"]["reference"] == {"seed": recon_eval.REFERENCE_SEED, "n": recon_eval.REFERENCE_N}
    glasses_zero, glasses_two = row["edits"]["glasses"]["by_strength"]
    # strength 0, and the zero direction at any strength: nothing changes
    for r in (zero, glasses_zero, glasses_two):
        assert r["target_change"] == 0 and r["leakage"] == 0
        assert r["identity_to_reconstruction"] == pytest.approx(1.0, abs=1e-5)
    assert zero["success"] == glasses_zero["success"] == 1  # at strength 0 every image keeps its side
    with torch.no_grad():
        r0 = sfn.attributes(ref)
    # a zero direction pushed "up" succeeds only where the read-out was already up
    assert glasses_two["success"] == pytest.approx(float((r0["glasses"] > 0.5).float().mean()))
    # strength 2 (in units of std 0.7): the same numbers as G, the read-out and ID-SFN by hand
    _, ref, edited = direct(G, enc, sfn, 3, v, 2 * 0.7)
    with torch.no_grad():
        r1 = sfn.attributes(edited)
        others = [edit_eval.factor_changes(r0, r1)[f.name] for f in sf.FACTORS if f.name != "smiling"]
        assert two["target_change"] == pytest.approx(float((r1["smiling"] - r0["smiling"]).mean()), abs=1e-6)
        assert two["success"] == pytest.approx(float((r1["smiling"] > 0.5).float().mean()))
        assert two["leakage"] == pytest.approx(float(torch.stack(others).mean()), abs=1e-6)
        assert two["identity"] == pytest.approx(float(id_similarity(edited, x, sfn).mean()), rel=1e-5)
        assert two["target_change"] != 0 and two["identity_to_reconstruction"] < 1
    assert set(row["edits"]["smiling"]["leakage_by_factor"]) == set(sf.FACTOR_NAMES) - {"smiling"}
    s = row["summary"]
    assert s["strength"] == 2 and s["fidelity"] == row["reconstruction"]["id_sfn"]
    assert s["editability"] == pytest.approx((two["success"] + glasses_two["success"]) / 2)
    assert json.loads(json.dumps(result)) == result  # plain JSON types only


def test_signs_follow_the_direction(G, tiny):
    """Along the gradient of the brightness that the reader's P(smiling) rises with, +s raises P, -s lowers
    it; success counts the images on the pushed-to side."""
    enc, sfn = tiny
    x, _ = recon_eval.held_out(3, G.size)
    with torch.no_grad():
        w_plus = enc(x)
    delta = torch.zeros(16, requires_grad=True)
    G.synthesis(w_plus + delta, noise_mode="const").mean().backward()
    v = F.normalize(delta.grad, dim=0)
    _, ref, up = direct(G, enc, sfn, 3, v, 0.5)
    assert (up.mean((1, 2, 3)) > ref.mean((1, 2, 3))).all()  # the premise: brighter along +v
    sfn.c = float(ref.mean((1, 2, 3)).max()) + 1e-3  # every reconstruction reads P(smiling) < 0.5
    dirs = {"smiling": E.Direction(v, "interfacegan", std=0.25)}
    result = edit_eval.evaluate_editing({"p": recon_eval.Entry("psp", enc)}, G, sfn, dirs, strengths=(-2, 2),
                                        n=3, progress=False)  # fmt: skip
    down, plus = result["methods"]["p"]["edits"]["smiling"]["by_strength"]
    assert down["target_change"] < 0 < plus["target_change"]
    assert down["success"] == 1  # all stay below 0.5, where -s pushes
    assert plus["success"] == pytest.approx(float((up.mean((1, 2, 3)) > sfn.c).float().mean()))
    summary = result["methods"]["p"]["summary"]
    assert summary["target_change"] == pytest.approx((plus["target_change"] - down["target_change"]) / 2)


def test_f_space_edits_at_strength_zero_reproduce_the_reconstruction(G, tiny):
    _, sfn = tiny
    x, _ = recon_eval.held_out(2, G.size)
    w_plus = G.broadcast(E.sample_w(G, 2, seed=4))
    f = G.synthesis(w_plus, noise_mode="const", return_features=True)[1][8] + 0.3  # an off-manifold f
    codes = {"w_plus": w_plus, "f": f}
    assert edit_eval._space(codes) == "F"
    zero = edit_eval.edit_scores(G, sfn, codes, x, unit(2), 0.0, "glasses")
    assert float(zero["target_change"].abs().max()) == 0 and float(zero["leakage"].max()) == 0
    moved = edit_eval.edit_scores(G, sfn, codes, x, unit(2), 3.0, "glasses")
    assert float(moved["identity_to_reconstruction"].min()) < 1
    # the edited read-out is returned: target_change is its step from the unedited one
    torch.testing.assert_close(moved["read"]["glasses"] - zero["read"]["glasses"], moved["target_change"])


def test_bad_arguments(G, tiny):
    enc, sfn = tiny
    entries = {"p": recon_eval.Entry("psp", enc)}
    dirs = {
        "smiling": E.Direction(unit(0), "interfacegan", std=1.0),
        "pc0": E.Direction(unit(1), "ganspace", 1.0),
    }
    for kwargs, match in [({"attributes": ["happy"]}, "unknown attribute"),
                          ({"attributes": ["beard"]}, "no direction"), ({"attributes": []}, "at least one"),
                          ({"strengths": ()}, "strengths"), ({"strengths": (1, float("nan"))}, "strengths"),
                          ({"strengths": (1, 1.0)}, "distinct"), ({"n": 0}, "n >= 1")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            edit_eval.evaluate_editing(entries, G, sfn, dirs, progress=False, **kwargs)
    with pytest.raises(ValueError, match="no InterFaceGAN direction"):
        edit_eval.evaluate_editing(entries, G, sfn, {"pc0": dirs["pc0"]}, progress=False)
    with pytest.raises(ValueError, match="y must be"):
        edit_eval.tradeoff_figure({"methods": {}}, y="fidelity")


def test_fit_directions_skips_attributes_without_two_classes(G):
    with torch.no_grad():
        c = G.synthesis(E.sample_w(G, 40, seed=0), noise_mode="const").mean((1, 2, 3)).median()

    def reader(images):
        return {
            "bright": torch.sigmoid((images.mean((1, 2, 3)) - c) * 200),
            "never": torch.zeros(len(images)),
        }

    log: list[str] = []
    dirs = edit_eval.fit_directions(G, reader, n=40, components=3, pca_n=200, ambiguous=0.1, layers=(0, 4),
                                    generator="tiny", log=log.append)  # fmt: skip
    assert list(dirs) == ["bright", "pc0", "pc1", "pc2"] and dirs.generator_config == G.config
    assert dirs["bright"].kind == "interfacegan" and dirs["bright"].layers is None
    assert all(dirs[f"pc{i}"].layers == (0, 4) for i in range(3))
    assert any(m.startswith("warning: skipped attribute 'never'") for m in log)
    assert any("bright" in m and "held-out accuracy" in m for m in log)
    with pytest.raises(ValueError, match="no direction"):
        edit_eval.fit_directions(
            G, lambda im: {"never": torch.zeros(len(im))}, n=20, components=0, log=log.append
        )


def test_train_directions_cli_writes_what_the_explorer_loads(G, tmp_path, monkeypatch, capsys):
    from ganinv.widgets import explorer_directions

    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    name = "edit-eval-tiny"
    save_generator(tmp_path / name / "generator.pt", G)
    save_sfn(tmp_path / "sfn.pt", SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)), half=False)
    main(["train", "directions", "--generator", name, "--sfn", str(tmp_path / "sfn.pt"), "-n", "40",
          "--components", "2", "--pca-n", "200", "--ambiguous", "0", "--layers", "1", "5",
          "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    fitted = [a for a in sf.BINARY_ATTRIBUTES if f"{a}  interfacegan  held-out accuracy" in out]
    skipped = [a for a in sf.BINARY_ATTRIBUTES if f"skipped attribute '{a}'" in out]
    assert sorted(fitted + skipped) == sorted(sf.BINARY_ATTRIBUTES)  # each one reported, one way or the other
    assert (tmp_path / name / "directions.pt").is_file() and "wrote" in out
    dirs = E.load_directions(name, G)
    assert list(dirs) == [*fitted, "pc0", "pc1"] and dirs.generator == name
    assert dirs["pc1"].layers == (1, 5) and dirs["pc0"].explained_variance > dirs["pc1"].explained_variance
    loaded = explorer_directions(G, None, name)  # what LatentExplorer(name) uses: the file, not a new fit
    assert list(loaded) == list(dirs) and torch.equal(loaded["pc0"].vector, dirs["pc0"].vector)
    with pytest.raises(SystemExit, match="--out is required"):
        main(["train", "directions", "--generator", str(tmp_path / name / "generator.pt"), "--device", "cpu"])


def test_eval_editing_cli_writes_json_figure_and_table(G, tiny, tmp_path, capsys):
    enc, _ = tiny
    gen, encoder, sfn_path, dirs_path = (tmp_path / f for f in ("g.pt", "psp.pt", "sfn.pt", "dirs.pt"))
    save_generator(gen, G)
    save_encoder(encoder, enc)
    save_sfn(sfn_path, SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)), half=False)
    E.save_directions(dirs_path, {"smiling": E.Direction(unit(3), "interfacegan", 0.5, accuracy=0.8)},
                      generator=str(gen), generator_config=G.config)  # fmt: skip
    out, fig = tmp_path / "04.json", tmp_path / "04.png"
    main(["eval", "editing", "--generator", str(gen), "--directions", str(dirs_path), "--sfn", str(sfn_path),
          "--entry", f"pSp=psp@{encoder}", "-n", "2", "--strengths", "-1", "1", "--json", str(out),
          "--figure", str(fig), "--device", "cpu"])  # fmt: skip
    result = json.loads(out.read_text())
    assert {
        "n",
        "seed",
        "image_size",
        "strengths",
        "attributes",
        "directions",
        "methods",
        "generator",
    } <= set(result)
    assert result["strengths"] == [-1, 1] and result["directions"]["smiling"]["accuracy"] == 0.8
    assert result["directions_file"] == str(dirs_path) and result["sfn"] == str(sfn_path)
    row = result["methods"]["pSp"]
    assert set(row) == {"method", "options", "n", "space", "editor", "reconstruction", "edits", "summary",
                        "realism"}  # fmt: skip
    assert set(row["realism"]["edits"]) == {"fid_sfn", "fid_sfn_texture", "realism_sfn_texture"}
    assert [r["strength"] for r in row["edits"]["smiling"]["by_strength"]] == [-1, 1]
    assert set(row["summary"]) == {"strength", "fidelity", "editability", "target_change", "leakage",
                                   "identity", "identity_to_reconstruction"}  # fmt: skip
    assert fig.stat().st_size > 0
    table = capsys.readouterr().out
    assert "| pSp | W+ | 2 |" in table and table.count("\n") >= 3


def test_tradeoff_figure_names_every_method_in_a_legend():
    import matplotlib.pyplot as plt

    methods = {m: {"space": sp, "summary": {"fidelity": 0.5 + 0.001 * i, "editability": 0.7}}
               for i, (m, sp) in enumerate([("psp", "W+"), ("e4e", "W+"), ("clcae-f", "F")])}  # fmt: skip
    fig = edit_eval.tradeoff_figure({"methods": methods, "strengths": [-8, 8], "attributes": ["a"], "n": 3})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["psp (W+)", "e4e (W+)", "clcae-f (F)"]
    assert not ax.texts  # no labels at the points, which overlap when methods are close
    plt.close(fig)
