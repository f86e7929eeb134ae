"""ganinv.nonlinear_editing: attribute classifiers on W, the gradient-field walk, its use through the
linear edits' entry points (edit, edit_f, apply_edit), the nonlinear.pt file and the benchmark rows."""

import json

import pytest
import torch

from ganinv import editing as E
from ganinv import nonlinear_editing as N
from ganinv.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, save_generator
from ganinv.cli import main
from ganinv.eval import editing as edit_eval
from ganinv.models.sfn import SFN, SFNConfig, save_sfn

pytestmark = pytest.mark.usefixtures("one_thread")


def toy(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A 2-D latent with two attributes: "xor" = (x0 > 0) xor (x1 > 0), whose classes no line separates
    better than chance (the distribution is symmetric under x1 -> -x1, which swaps the classes), and
    "right" = x0 > 0, which a line separates exactly."""
    w = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return w, truth(w)


def truth(w: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"xor": ((w[:, 0] > 0) ^ (w[:, 1] > 0)).float(), "right": (w[:, 0] > 0).float()}


@pytest.fixture(scope="module")
def toy_dirs():
    w, p = toy(4000, 0)
    cfg = N.ClassifierConfig(hidden=32, epochs=30, ambiguous=0.0)
    return N.fit_nonlinear(w, p, cfg)


def test_toy_xor_a_line_is_at_chance_and_the_nonlinear_edit_flips_it(toy_dirs):
    w, p = toy(4000, 0)
    normal, offset = E.fit_boundary(w, p["xor"])
    w_test, p_test = toy(1000, 1)
    linear_acc = float((((w_test @ normal) > offset).float() == p_test["xor"]).float().mean())
    assert abs(linear_acc - 0.5) < 0.06  # a line cannot do better than chance on xor
    assert toy_dirs["xor"].accuracy > 0.95 and toy_dirs["right"].accuracy > 0.97

    start = w_test[(w_test.abs() > 0.2).all(1)][:300]  # [N, 2], clear of the class borders
    before = truth(start)
    towards = 1.0 - 2.0 * before["xor"]  # +: make xor true, -: make it false
    after = truth(start + toy_dirs["xor"].shift(start, 3.0 * towards))
    success = float((after["xor"] != before["xor"]).float().mean())
    kept = float((after["right"] == before["right"]).float().mean())
    assert success >= 0.9, success
    assert kept >= 0.9, kept  # conditional: xor flipped by moving x1, the sign of x0 kept
    # the best linear edit (the boundary's normal) at the same distance flips about half, not all
    lin = truth(start + 3.0 * towards[:, None] * normal)
    assert float((lin["xor"] != before["xor"]).float().mean()) < 0.75


def test_the_conditional_step_keeps_the_other_attribute_where_the_plain_one_does_not(toy_dirs):
    w, _ = toy(600, 2)
    start = w[(w.abs() > 0.2).all(1)][:300]
    before = truth(start)
    towards = 1.0 - 2.0 * before["xor"]
    plain = toy_dirs["xor"].with_step(conditional=False)
    kept = {}
    for name, d in (("conditional", toy_dirs["xor"]), ("plain", plain)):
        after = truth(start + d.shift(start, 3.0 * towards))
        kept[name] = float((after["right"] == before["right"]).float().mean())
    assert kept["conditional"] > kept["plain"] + 0.2, kept


def test_shift_lengths_zero_strength_and_margin(toy_dirs):
    d = toy_dirs["xor"]
    w, _ = toy(50, 3)
    assert torch.equal(d.shift(w, 0.0), torch.zeros_like(w))
    root_inv = torch.linalg.inv(d.classifiers.sqrt_cov)
    u = d.shift(w, 1.3) @ root_inv  # the walk in whitened coordinates: its length is at most the budget
    assert float(u.norm(dim=1).max()) <= 1.3 + 1e-4 and float(u.norm(dim=1).min()) > 0.3
    per = d.shift(w, torch.linspace(0, 1, 50))  # one strength per sample
    assert torch.equal(per[0], torch.zeros(2)) and float(per[-1].norm()) > 0
    stopped = d.with_step(margin=-100.0).shift(w, 2.0)  # every sample starts past the margin: no move
    assert torch.equal(stopped, torch.zeros_like(w))
    with pytest.raises(ValueError, match="no classifier"):
        d.classifiers and N.nonlinear_shift(d.classifiers, w, "nope", 1.0)
    with pytest.raises(ValueError, match="expected shape"):
        d.shift(torch.zeros(3, 5), 1.0)


@pytest.fixture(scope="module")
def g_dirs(G):
    """Non-linear directions of two made-up attributes of a tiny generator's w (read off w itself)."""
    w = E.sample_w(G, 600, seed=1)  # [600, 16]
    probs = {"a": torch.sigmoid(4 * w[:, 0] * w[:, 1]), "b": torch.sigmoid(4 * w[:, 2])}
    return N.fit_nonlinear(w, probs, N.ClassifierConfig(hidden=16, epochs=5), generator_config=G.config)


def test_edit_dispatches_in_w_w_plus_layers_and_f(G, g_dirs):
    d = g_dirs["a"]
    w = E.sample_w(G, 3, seed=5)  # [3, D]
    shift = d.shift(w, 2.0)
    assert torch.allclose(E.edit(G, w, d, 2.0), w + shift) and float(shift.norm()) > 0
    w_plus = G.broadcast(w) + 0.1 * torch.randn(3, G.n_latent, G.style_dim)
    out = E.edit(G, w_plus, d, 2.0, layers=(2, 5))  # [3, L, D]
    delta = out - w_plus
    assert torch.equal(delta[:, :2], torch.zeros_like(delta[:, :2])) and torch.equal(
        delta[:, 5:], delta[:, 5:] * 0
    )
    assert torch.allclose(delta[:, 2], delta[:, 4]) and torch.allclose(
        delta[:, 2], d.shift(w_plus[:, 2:5].mean(1), 2.0)
    )
    f = G.synthesis(w_plus, noise_mode="const", return_features=True)[1][8]  # G's own feature: F == W+
    with torch.no_grad():  # the benchmark and ganinv inpaint call it under no_grad
        res = E.apply_edit(G, {"w_plus": w_plus, "f": f}, d, 2.0)
        plain = E.apply_edit(G, {"w_plus": w_plus}, d, 2.0)
    assert set(res) == {"w_plus", "f", "image"} and torch.allclose(res["image"], plain["image"], atol=1e-4)
    assert torch.allclose(res["w_plus"], E.edit(G, w_plus, d, 2.0))
    with pytest.raises(ValueError, match="layers must satisfy"):
        E.edit(G, w, d, 1.0, layers=(3, 3))


def test_file_roundtrip_is_small_and_bad_files_fail_clearly(G, g_dirs, tmp_path):
    path = tmp_path / "nonlinear.pt"
    N.save_nonlinear(path, g_dirs)
    back = N.load_nonlinear(path, G)
    assert list(back) == ["a", "b"] and back["a"].accuracy == g_dirs["a"].accuracy
    assert load_checkpoint(path, "nonlinear")["state_dict"]["nets.a.0.weight"].dtype == torch.float16
    w = E.sample_w(G, 4, seed=9)
    assert torch.allclose(back["a"].shift(w, 1.0), g_dirs["a"].shift(w, 1.0), atol=0.05)
    assert N.load_nonlinear(tmp_path, G)["b"].name == "b"  # a folder holding nonlinear.pt

    other = G.config | {"n_mlp": G.config["n_mlp"] + 1}
    N.save_nonlinear(tmp_path / "other.pt", N.NonlinearDirections(g_dirs, generator_config=other))
    with pytest.raises(CheckpointError, match="another generator"):
        N.load_nonlinear(tmp_path / "other.pt", G)
    ckpt = load_checkpoint(path, "nonlinear")
    bad = {
        "names": (ckpt["config"] | {"names": ["a"]}, ckpt["state_dict"], ckpt["meta"]),
        "shapes": (ckpt["config"] | {"hidden": 8}, ckpt["state_dict"], ckpt["meta"]),
        "nan": (ckpt["config"], ckpt["state_dict"] | {"nets.a.0.bias": torch.full((16,), float("nan"))},
                ckpt["meta"]),
        "meta": (ckpt["config"], ckpt["state_dict"], ckpt["meta"] | {"a": {"std": -1.0}}),
    }  # fmt: skip
    messages = {"names": "matching names", "shapes": "do not match", "nan": "NaN", "meta": "bad metadata"}
    for key, (cfg, sd, meta) in bad.items():
        save_checkpoint(tmp_path / f"{key}.pt", "nonlinear", cfg, sd, meta=meta)
        with pytest.raises(CheckpointError, match=messages[key]):
            N.load_nonlinear(tmp_path / f"{key}.pt")
    E.save_directions(tmp_path / "dirs.pt", {"x": E.Direction(torch.ones(16) / 4, "interfacegan", 1.0)})
    with pytest.raises(CheckpointError):
        N.load_nonlinear(tmp_path / "dirs.pt")  # a directions file is not a nonlinear one


def test_eval_editing_scores_nonlinear_and_generated_rows_and_adds_them(G, tmp_path, capsys):
    gen, sfn_path, dirs_path, nl_path = (tmp_path / f for f in ("g.pt", "sfn.pt", "dirs.pt", "nl.pt"))
    save_generator(gen, G)
    save_sfn(sfn_path, SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)), half=False)
    vec = torch.nn.functional.normalize(torch.ones(16), dim=0)
    E.save_directions(dirs_path, {"smiling": E.Direction(vec, "interfacegan", 0.5, accuracy=0.8)},
                      generator=str(gen), generator_config=G.config)  # fmt: skip
    w = E.sample_w(G, 300, seed=1)
    dirs = N.fit_nonlinear(w, {"smiling": torch.sigmoid(4 * w[:, 0]), "glasses": torch.sigmoid(4 * w[:, 1])},
                           N.ClassifierConfig(hidden=8, epochs=2), generator_config=G.config)  # fmt: skip
    N.save_nonlinear(nl_path, dirs)
    out = tmp_path / "04.json"
    common = ["--generator", str(gen), "--directions", str(dirs_path), "--sfn", str(sfn_path), "-n", "2",
              "--strengths", "-1", "1", "--json", str(out), "--device", "cpu"]  # fmt: skip
    main(["eval", "editing", *common, "--generated", "2", "--no-entries"])
    first = json.loads(out.read_text())
    assert set(first["methods"]) == {"generated"} and first["methods"]["generated"]["editor"] == "linear"
    assert first["methods"]["generated"]["reconstruction"]["mse"] < 1e-10  # G(w) is its own reconstruction
    main(["eval", "editing", *common, "--generated", "2", "--no-entries", "--editors", "non-linear",
          "--nonlinear", str(nl_path), "--add"])  # fmt: skip
    both = json.loads(out.read_text())
    assert set(both["methods"]) == {"generated", "generated · non-linear"}
    row = both["methods"]["generated · non-linear"]
    assert row["editor"] == "non-linear" and both["nonlinear_directions"]["smiling"]["kind"] == "nonlinear"
    assert row["edits"]["smiling"]["by_strength"][0]["identity"] < 1.0  # the walk changed the images
    table = edit_eval.attribute_table(both, ["generated", "generated · non-linear"])
    assert set(table["smiling"]) == {"generated", "generated · non-linear"}
    assert set(table["smiling"]["generated"]) == {"success", "target_change", "leakage", "identity"}
    other = [a if a != "1" else "2" for a in common]  # strengths -1 1 -> -1 2: scored differently
    with pytest.raises(SystemExit, match="cannot add rows scored differently"):
        main(["eval", "editing", *other, "--generated", "2", "--no-entries", "--add"])
    capsys.readouterr()


def test_explorer_toggle_switches_the_attribute_sliders_to_the_nonlinear_edit(G, g_dirs):
    from ganinv import widgets as W

    lin = E.Directions(
        {"a": E.Direction(torch.nn.functional.normalize(torch.ones(16), dim=0), "interfacegan", 1.0)}
    )
    ex = W.LatentExplorer(G, lin, nonlinear=g_dirs, n_components=0, seed=2)
    assert ex.editor.layout.display == "" and ex.editor.value == "linear"
    ex.sliders["a"].value = 3.0
    linear_png = bytes(ex.image.value)
    ((d, strength, _),) = ex.edits()
    assert d is lin["a"] and strength == 3.0
    ex.editor.value = "non-linear"
    ((d, strength, _),) = ex.edits()
    assert d is g_dirs["a"] and strength == 3.0 * g_dirs["a"].std
    w = ex.sample_w(2)
    expected = W.png_bytes(E.render(G, w + g_dirs["a"].shift(w, strength)))
    assert bytes(ex.image.value) == expected != linear_png
    assert ex.state()["editor"] == "non-linear"
    plain = W.LatentExplorer(G, lin, n_components=0)  # a module, no bundled nonlinear.pt: no toggle
    assert plain.nonlinear == {} and plain.editor.layout.display == "none"
