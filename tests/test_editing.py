"""ganinv.editing: InterFaceGAN boundaries, GANSpace PCA, W / W+ / F edits, saving and loading."""

import pytest
import torch
import torch.nn.functional as F

from ganinv import editing as E
from ganinv.checkpoints import CheckpointError
from ganinv.models.stylegan2 import Generator


def tiny_g(seed: int = 0, size: int = 32) -> Generator:
    """A tiny generator of another seed or size than the ``G`` fixture (conftest.py); seeds the global RNG."""
    torch.manual_seed(seed)
    return Generator(size, 16, 2, channel_multiplier=0.125, channel_max=16).eval().requires_grad_(False)


def unit(seed: int, d: int = 16) -> torch.Tensor:
    return F.normalize(torch.randn(d, generator=torch.Generator().manual_seed(seed)), dim=0)


# ---------------------------------------------------------------------------------------------------------
# InterFaceGAN


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interfacegan_recovers_a_linear_boundary(G, seed):
    w = E.sample_w(G, 2000, seed=1)  # the tiny G's real (anisotropic) w distribution
    u = unit(seed)
    b = float((w @ u).quantile(0.4))
    d = E.fit_interfacegan(w, {"attr": ((w @ u) > b).float()})["attr"]
    assert d.kind == "interfacegan"
    assert d.vector.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert float(d.vector @ u) > 0.95  # points towards the attribute
    assert d.accuracy > 0.95
    assert d.offset == pytest.approx(b, abs=0.15)
    assert d.std == pytest.approx(float((w @ d.vector).std()), rel=1e-4)


def test_interfacegan_drops_ambiguous_samples_and_checks_classes(G):
    w = E.sample_w(G, 1000, seed=3)
    u = unit(5)
    s = w @ u - (w @ u).median()
    # confident labels follow u; the ambiguous ones (p within 0.2 of 0.5) are deliberately wrong
    p = torch.where(s.abs() > 0.3, (s > 0).float(), 0.45 + 0.1 * (s < 0).float())
    d = E.fit_interfacegan(w, {"a": p}, ambiguous=0.2)["a"]
    assert float(d.vector @ u) > 0.95 and d.accuracy > 0.95
    with pytest.raises(ValueError, match="too few confident samples"):
        E.fit_interfacegan(w, {"rare": torch.zeros(1000)})


def test_interfacegan_pipeline_with_an_image_reader(G):
    """End to end: render, read an image statistic, fit; editing along the result changes the statistic."""
    with torch.no_grad():
        c = G.synthesis(E.sample_w(G, 256, seed=5)).mean((1, 2, 3)).median()

    def reader(images):
        return {"bright": torch.sigmoid((images.mean((1, 2, 3)) - c) * 200)}

    dirs = E.interfacegan_directions(G, reader, n=600, ambiguous=0.1, generator="tiny")
    d = dirs["bright"]
    assert dirs.generator == "tiny" and dirs.generator_config == G.config
    assert 0.6 < d.accuracy <= 1.0
    w = E.sample_w(G, 64, seed=9)
    with torch.no_grad():
        means = [G.synthesis(E.edit(G, w, d, k * d.std)).mean().item() for k in (-2, 0, 2)]
    assert means[0] < means[1] < means[2]


def test_sfn_reader_returns_binary_probabilities(G):
    reader = E.sfn_reader(attributes=["smiling", "glasses"])
    with torch.no_grad():
        out = reader(G.synthesis(E.sample_w(G, 4)))
    assert set(out) == {"smiling", "glasses"}
    for p in out.values():
        assert p.shape == (4,) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="not binary SFN attributes"):
        E.sfn_reader(attributes=["yaw"])


def test_orthogonalize_removes_the_projection_exactly():
    d, others = unit(0), torch.stack([unit(1), unit(2), unit(3)])
    r = E.orthogonalize(d, others)
    assert r.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert (others @ r).abs().max() < 1e-6
    # r lies in span{d, others}: d = a r + (component in span(others))
    basis = torch.cat([others, r[None]]).t()
    coef = torch.linalg.lstsq(basis.double(), d.double()[:, None]).solution
    assert (basis.double() @ coef).squeeze(1).sub(d.double()).abs().max() < 1e-6
    # single direction: InterFaceGAN's n1 - (n1.n2) n2, normalised
    expect = F.normalize(d - (d @ others[0]) * others[0], dim=0)
    assert torch.allclose(E.orthogonalize(d, [others[0]]), expect, atol=1e-6)
    dirs = E.Directions({k: E.Direction(v, "interfacegan", 1.0) for k, v in zip("abcd", [d, *others])})
    assert torch.allclose(dirs.conditional("a", ["b", "c", "d"]).vector, r, atol=1e-6)
    with pytest.raises(ValueError, match="span"):
        E.orthogonalize(others[0] + others[1], others)


# ---------------------------------------------------------------------------------------------------------
# GANSpace


def test_ganspace_components(G):
    dirs = E.ganspace_directions(G, n=3000, seed=4)
    v = dirs.matrix()  # [16, 16]
    assert list(dirs)[:2] == ["pc0", "pc1"] and len(dirs) == 16
    assert torch.allclose(v @ v.t(), torch.eye(16), atol=1e-5)
    stds = torch.tensor([d.std for d in dirs.values()])
    assert (stds[:-1] >= stds[1:]).all() and stds[0] > stds[-1]
    ev = torch.tensor([d.explained_variance for d in dirs.values()])
    assert ev.sum().item() == pytest.approx(1.0, abs=1e-5)
    w = E.sample_w(G, 3000, seed=4)
    cov = torch.cov(w.t().double())
    vals, vecs = torch.linalg.eigh(cov)
    assert abs(float(vecs[:, -1].float() @ dirs["pc0"].vector)) > 0.9999
    assert dirs["pc0"].std == pytest.approx(vals[-1].sqrt().item(), rel=1e-4)
    assert len(E.ganspace_directions(G, n=500, k=3)) == 3


# ---------------------------------------------------------------------------------------------------------
# Edits


def test_edit_on_w_and_w_plus(G):
    w, d = E.sample_w(G, 5, seed=2), unit(7)
    assert torch.equal(E.edit(G, w, d, 0.0), w)
    out = E.edit(G, w, d, 1.5)
    assert out.shape == w.shape and torch.allclose(out - w, 1.5 * d.expand(5, -1), atol=1e-6)
    per_sample = torch.arange(5.0)
    assert torch.allclose(E.edit(G, w, d, per_sample) - w, per_sample[:, None] * d, atol=1e-6)
    # restricting layers turns w into w+; only layers [2, 5) move
    wp = E.edit(G, w, d, 2.0, layers=(2, 5))
    assert wp.shape == (5, G.n_latent, 16)
    moved = (wp - G.broadcast(w)).abs().amax(dim=(0, 2)) > 0
    assert moved.tolist() == [2 <= i < 5 for i in range(G.n_latent)]
    assert torch.allclose(wp[:, 3] - w, 2.0 * d.expand(5, -1), atol=1e-6)
    # a w+ input, layers from the Direction by default
    direction = E.Direction(d, "ganspace", 1.0).with_layers(6, G.n_latent)
    wp2 = E.edit(G, G.broadcast(w), direction, -1.0)
    assert torch.equal(wp2[:, :6], G.broadcast(w)[:, :6])
    assert torch.allclose(wp2[:, 6:] - w[:, None], -d.expand(5, G.n_latent - 6, -1), atol=1e-6)
    with pytest.raises(ValueError, match="layers"):
        E.edit(G, w, d, 1.0, layers=(3, 3))
    with pytest.raises(ValueError, match="direction"):
        E.edit(G, w, torch.ones(8), 1.0)


def test_edit_f_strength_zero_is_identity(G):
    w_plus = G.broadcast(E.sample_w(G, 3, seed=1)) + 0.1 * torch.randn(3, G.n_latent, 16)
    f = torch.randn(3, G.channels[16], 16, 16)
    w_hat, f_hat = E.edit_f(G, w_plus, f, unit(3), 0.0, f_res=16)
    assert torch.equal(w_hat, w_plus) and torch.equal(f_hat, f)
    assert torch.equal(G.synthesis(w_hat, f=f_hat, f_res=16), G.synthesis(w_plus, f=f, f_res=16))


def test_edit_f_with_own_feature_equals_the_w_plus_edit(G):
    w_plus = G.broadcast(E.sample_w(G, 3, seed=2)) + 0.1 * torch.randn(3, G.n_latent, 16)
    f = G.synthesis(w_plus, return_features=True)[1][16]
    d = unit(4)
    w_hat, f_hat = E.edit_f(G, w_plus, f, d, 2.0)
    assert torch.allclose(w_hat, E.edit(G, w_plus, d, 2.0))
    assert torch.allclose(f_hat, G.synthesis(w_hat, return_features=True)[1][16], atol=1e-5)
    assert not torch.allclose(f_hat, f, atol=1e-3)  # the edit did change the feature
    edited_f = G.synthesis(w_hat, f=f_hat, f_res=16)
    assert torch.allclose(edited_f, G.synthesis(w_hat), atol=1e-5)
    # an edit of layers after the 16x16 block (index >= 5) leaves f untouched
    _, f_fine = E.edit_f(G, w_plus, f + 1.0, d, 3.0, layers=(5, G.n_latent))
    assert torch.equal(f_fine, f + 1.0)
    with pytest.raises(ValueError, match="f_res"):
        E.edit_f(G, w_plus, f, d, 1.0, f_res=8)


def test_apply_edit_dispatches_on_the_result(G):
    from ganinv.models.clcae import CLCAEOutput

    w = E.sample_w(G, 2, seed=6)
    w_plus = G.broadcast(w) + 0.05 * torch.randn(2, G.n_latent, 16)
    d = unit(8)
    out = E.apply_edit(G, {"w": w}, d, 1.0)
    assert set(out) == {"w", "image"} and torch.allclose(out["w"], w + d)
    assert torch.equal(out["image"], G.synthesis(out["w"]))
    out = E.apply_edit(G, {"w": w}, d, 1.0, layers=(0, 4))
    assert set(out) == {"w_plus", "image"}
    out = E.apply_edit(G, {"w": w, "w_plus": w_plus, "f": None}, d, 1.0)
    assert set(out) == {"w_plus", "image"} and torch.allclose(out["w_plus"], w_plus + d)
    f = torch.randn(2, G.channels[16], 16, 16)
    out = E.apply_edit(G, CLCAEOutput(w, w_plus, f), d, 0.0)
    assert set(out) == {"w_plus", "f", "image"}
    assert torch.equal(out["image"], G.synthesis(w_plus, f=f, f_res=16))
    out_nof = E.apply_edit(G, CLCAEOutput(w, w_plus, f), d, 0.0, use_f=False)
    assert torch.equal(out_nof["image"], G.synthesis(w_plus))
    # inpainting stage 2: w_plus_mix and F features at several resolutions {res: feature}
    feats = {r: torch.randn(2, G.channels[r], r, r) for r in (8, 16)}
    out = E.apply_edit(G, {"w_plus_e": w_plus * 0, "w_plus_mix": w_plus, "f": feats}, d, 0.0)
    ref = G.synthesis(w_plus, feature_hook=lambda r, x: feats.get(r, x))
    assert torch.equal(out["image"], ref) and all(torch.equal(out["f"][r], feats[r]) for r in feats)
    with pytest.raises(ValueError, match="no latent code"):
        E.apply_edit(G, {"image": torch.zeros(1)}, d, 1.0)


# ---------------------------------------------------------------------------------------------------------
# Saving and loading


def _some_directions(G):
    dirs = E.ganspace_directions(G, n=400, k=2, generator="tiny")
    dirs["pc1"] = dirs["pc1"].with_layers(4, 8)
    dirs["smile"] = E.Direction(unit(1), "interfacegan", 0.7, accuracy=0.97, offset=-0.2)
    return dirs


def test_save_load_round_trip(G, tmp_path, monkeypatch):
    dirs = _some_directions(G)
    path = tmp_path / "d.pt"
    E.save_directions(path, dirs)
    back = E.load_directions(path, G)
    assert list(back) == list(dirs) and back.generator == "tiny" and back.generator_config == G.config
    for k in dirs:
        assert torch.equal(back[k].vector, dirs[k].vector.float())
        for field in ("kind", "std", "accuracy", "explained_variance", "offset", "layers"):
            assert getattr(back[k], field) == getattr(dirs[k], field)
    assert back["pc1"].layers == (4, 8)
    # a bundled name resolves to <pretrained>/<name>/directions.pt
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    E.save_directions(tmp_path / "mini" / "directions.pt", dirs, generator="other", generator_config=G.config)
    named = E.load_directions("mini")
    assert named.generator == "other" and list(named) == list(dirs)


def test_load_rejects_another_generator(G, tmp_path):
    path = tmp_path / "d.pt"
    E.save_directions(path, _some_directions(G))
    with pytest.raises(CheckpointError, match="another generator.*size"):
        E.load_directions(path, tiny_g(size=16))
    wide = Generator(32, 8, 2, channel_multiplier=0.125, channel_max=16)
    with pytest.raises(CheckpointError, match="style_dim"):
        E.load_directions(path, wide)
    with pytest.raises(CheckpointError):
        E.load_directions(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="non-empty mapping"):
        E.save_directions(path, {})
