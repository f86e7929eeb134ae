"""Diverse inpainting models (ganinv.models.inpainting): erased encoder, gated mixing network, mask-aware
stage-2 fusion, sampling, compositing, mask validation, checkpoints and a short case-A training run."""

import pytest
import torch
import torch.nn.functional as F

from ganinv.checkpoints import CheckpointError, save_checkpoint, save_generator
from ganinv.data.masks import MaskError, random_masks
from ganinv.models.encoders import EncoderConfig, WPlusEncoderConfig
from ganinv.models.inpainting import (
    KIND,
    ErasedEncoder,
    Inpainter,
    InpaintingConfig,
    MixingNetwork,
    composite,
    load_inpainter,
    mask_at,
    save_inpainter,
    synthesis_fused,
)
from ganinv.models.stylegan2 import Generator

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_generator(seed: int = 0, **kw) -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(32, 16, 2, **{"channel_multiplier": 0.125, "channel_max": 16, **kw})
    G.get_w_avg()
    return G.eval()


@pytest.fixture(scope="module")
def G():
    """Overrides conftest's ``G``: the same weights, but parameters not frozen (as ``tiny_generator``)."""
    return tiny_generator()


def make(G, seed: int = 1, **kw) -> Inpainter:
    torch.manual_seed(seed)
    return Inpainter(G, InpaintingConfig.for_generator(G, "tiny", **kw)).eval()


@torch.no_grad()
def perturb(*modules, std: float = 0.3) -> None:
    """Give zero-initialised layers (encoder heads, mixer output, skip heads) non-trivial weights."""
    for m in modules:
        for p in m.parameters():
            p.add_(torch.randn_like(p) * std)


def box_mask(n: int = 4, size: int = 32, lo: int = 8, hi: int = 24) -> torch.Tensor:
    mask = torch.ones(n, 1, size, size)
    mask[:, :, lo:hi, lo:hi] = 0
    return mask


@pytest.fixture(scope="module")
def x(G):
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return G.synthesis(G.mapping(z)).clamp(-1, 1)  # [4, 3, 32, 32]


def hole_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a - b).abs() * (1 - mask)).sum() / (1 - mask).sum() / 3)


# -- shapes and initial state ----------------------------------------------------------------------------


def test_shapes_of_both_stages_and_samples(G, x):
    m = make(G)
    out1 = m(x, box_mask(), stage=1)
    assert out1.w_plus_e.shape == out1.w_plus_mix.shape == out1.gate.shape == (4, 8, 16)
    assert out1.w_r.shape == (4, 16) and out1.image.shape == (4, 3, 32, 32)
    assert "f" not in out1
    out2 = m(x, box_mask()[:1], stage=2)  # one mask for the whole batch
    assert out2.mask.shape == (4, 1, 32, 32)
    assert out2.f[8].shape == out2.f_gen[8].shape == out2.delta[8].shape == (4, 16, 8, 8)
    assert out2.image.shape == out2.image_stage1.shape == (4, 3, 32, 32)
    assert m.sample(x, box_mask(), n=3, seed=0).shape == (4, 3, 3, 32, 32)
    per_row = m(x, box_mask(), z=torch.randn(4, 8, 16))  # one z per W+ row
    assert per_row.w_r.shape == (4, 8, 16) and not torch.allclose(per_row.w_r[:, 0], per_row.w_r[:, 1])
    with pytest.raises(ValueError, match="z: expected"):
        m(x, box_mask(), z=torch.randn(4, 15))


def test_untrained_encoder_outputs_w_avg(G, x):
    m = make(G)
    enc = m.encoder(x * box_mask(), box_mask())
    assert enc.w_plus.shape == (4, 8, 16)
    torch.testing.assert_close(enc.w_plus, G.get_w_avg().expand(4, 8, 16), rtol=0, atol=0)
    assert enc.pyramid.fine.shape == (4, 8, 16, 16)  # tiny backbone at 32 px: 16, 8, 4


def test_erased_encoder_sees_the_mask_and_zeroes_holes(G, x):
    enc = ErasedEncoder(InpaintingConfig.for_generator(G, "tiny").encoder).eval()
    perturb(enc.heads)
    mask = box_mask()
    a = enc(x, mask).w_plus  # erases inside
    torch.testing.assert_close(a, enc(x * mask, mask).w_plus)  # idempotent on erased images
    b = enc(x * mask, torch.ones_like(mask)).w_plus  # same pixels, but "black" rather than "hole"
    assert not torch.allclose(a, b)


# -- mixing network --------------------------------------------------------------------------------------


def test_gate_forced_to_one_gives_w_e_and_to_zero_gives_w_r(G):
    cfg = InpaintingConfig.for_generator(G, "tiny", mix_candidate=False)
    mixer = MixingNetwork(cfg)
    perturb(mixer, std=0.1)
    w_e, w_r = torch.randn(3, 8, 16), torch.randn(3, 16)
    torch.testing.assert_close(mixer(w_e, w_r, gate=1.0).w_plus, w_e, rtol=0, atol=0)
    torch.testing.assert_close(
        mixer(w_e, w_r, gate=0.0).w_plus, w_r[:, None].expand(3, 8, 16), rtol=0, atol=0
    )
    free = mixer(w_e, w_r)
    assert ((free.gate > 0) & (free.gate < 1)).all()
    torch.testing.assert_close(free.w_plus, free.gate * w_e + (1 - free.gate) * w_r[:, None])
    w_r_rows = torch.randn(3, 8, 16)  # per-row random codes
    torch.testing.assert_close(mixer(w_e, w_r_rows, gate=0.0).w_plus, w_r_rows, rtol=0, atol=0)


def test_untrained_candidate_mixer_starts_near_the_encoding(G):
    mixer = MixingNetwork(InpaintingConfig.for_generator(G, "tiny"))  # residual candidate, zero-init
    w_e, w_r = torch.randn(2, 8, 16), torch.randn(2, 16)
    torch.testing.assert_close(mixer(w_e, w_r, gate=1.0).w_plus, w_e, rtol=0, atol=0)
    torch.testing.assert_close(
        mixer(w_e, w_r).gate, torch.full((2, 8, 16), torch.sigmoid(torch.tensor(2.0)).item())
    )
    with pytest.raises(ValueError, match="w_r"):
        mixer(w_e, torch.randn(2, 15))


def test_different_z_change_holes_only_in_mixing_mode(G, x):
    m = make(G)
    perturb(m.encoder.heads, m.mixer)
    mask = box_mask()
    z1, z2 = torch.randn(4, 16), torch.randn(4, 16)
    with torch.no_grad():
        a, b = m(x, mask, z=z1).image, m(x, mask, z=z2).image
        assert hole_diff(a, b, mask) > 1e-3
        c, d = m(x, mask, z=z1, mixing=False), m(x, mask, z=z2, mixing=False)
    assert torch.equal(c.image, d.image) and c.w_r is None
    assert torch.equal(c.w_plus_mix, c.w_plus_e)

    ablation = make(G, mixing="none")  # the "no mixing" model: no mixer at all, deterministic
    assert ablation.mixer is None and not any(k.startswith("mixer.") for k in ablation.state_dict())
    with torch.no_grad():
        assert torch.equal(ablation(x, mask, z=z1).image, ablation(x, mask, z=z2).image)


def test_ungated_mixing_ablation(G, x):
    m = make(G, mixing="ungated")
    assert m.mixer.n_gate == 0
    with torch.no_grad():
        out = m(x, box_mask())
        torch.testing.assert_close(out.w_plus_mix, out.w_plus_e)  # zero-init residual
        with pytest.raises(ValueError, match="gated"):
            m.mixer(out.w_plus_e, out.w_r, gate=1.0)


# -- stage 2 ---------------------------------------------------------------------------------------------


def test_synthesis_fused_matches_the_generator(G):
    w = G.mapping(torch.randn(2, 16))
    noise = G.make_noise(2, "random")
    with torch.no_grad():
        img, feats = G.synthesis(w, noise=noise, return_features=True)
        zero = {16: torch.zeros(2, 16, 16, 16)}
        out, f_gen, f = synthesis_fused(G, G.broadcast(w), noise, zero, {16: torch.ones(2, 1, 16, 16)})
        torch.testing.assert_close(out, img)
        torch.testing.assert_close(f_gen[16], feats[16])
        delta, m16 = {16: torch.randn(2, 16, 16, 16)}, mask_at(box_mask(2), 16)
        out, _, f = synthesis_fused(G, G.broadcast(w), noise, delta, {16: m16})
        want = G.synthesis(w, noise=noise, f=feats[16] + m16 * delta[16], f_res=16)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(f[16], feats[16] + m16 * delta[16])


def test_untrained_stage2_equals_stage1(G, x):
    m = make(G)
    perturb(m.encoder.heads, m.mixer)
    z = torch.randn(4, 16)
    with torch.no_grad():
        out = m(x, box_mask(), z=z, stage=2)
        torch.testing.assert_close(out.image, out.image_stage1)
        torch.testing.assert_close(out.image, m(x, box_mask(), z=z, stage=1).image)


@pytest.mark.parametrize("f_res", [(8,), (8, 16)])
def test_fusion_with_full_and_empty_masks(G, x, f_res):
    m = make(G, f_res=f_res)
    perturb(m.encoder.heads, m.mixer, m.skip)
    w_r = G.mapping(torch.randn(4, 16))
    with torch.no_grad():
        full = m(x, torch.ones(4, 1, 32, 32), w_r=w_r, stage=2)
        own = G.synthesis(full.w_plus_mix, return_features=True)[1]
        r0 = f_res[0]
        torch.testing.assert_close(full.f_gen[r0], own[r0])
        for r in f_res:  # mask all ones: the fused feature is the encoder's
            torch.testing.assert_close(full.f[r], full.f_enc[r], rtol=0, atol=0)
            assert full.delta[r].abs().max() > 1e-3
        assert not torch.allclose(full.image, full.image_stage1)

        empty = m(x, torch.zeros(4, 1, 32, 32), w_r=w_r, stage=2)
        own = G.synthesis(empty.w_plus_mix, return_features=True)[1]
        for r in f_res:  # mask all zeros: the generator's own feature for the same w+
            torch.testing.assert_close(empty.f[r], own[r], rtol=0, atol=0)
        torch.testing.assert_close(empty.image, empty.image_stage1, rtol=0, atol=0)


def test_stage2_never_writes_into_holes_and_keeps_diversity(G, x):
    m = make(G, f_res=(8, 16, 32))
    perturb(m.encoder.heads, m.mixer, m.skip)
    mask = box_mask(lo=5, hi=21)  # not aligned to 8 px cells: partial cells count as holes ("hard")
    with torch.no_grad():
        a, b = m(x, mask, stage=2), m(x, mask, stage=2)
    for r in (8, 16, 32):
        hole_r = 1 - mask_at(mask, r, "hard")
        assert float(((a.f[r] - a.f_gen[r]) * hole_r).abs().max()) == 0
    assert hole_diff(a.image, b.image, mask) > 1e-3


def test_mask_downsampling_hard_and_soft():
    mask = torch.ones(1, 1, 8, 8)
    mask[0, 0, 0, 0] = 0  # one hole pixel in the top-left 4x4 cell
    hard, soft = mask_at(mask, 2, "hard"), mask_at(mask, 2, "soft")
    assert hard.tolist() == [[[[0.0, 1.0], [1.0, 1.0]]]]
    assert soft.tolist() == [[[[15 / 16, 1.0], [1.0, 1.0]]]]
    assert mask_at(mask, 8) is mask
    # feather: the hard mask, faded into the hole over two cells (1 on known cells, 0 far inside the hole)
    big = torch.ones(1, 1, 32, 32)
    big[..., :, 16:] = 0  # right half is hole
    feather = mask_at(big, 16, "feather")[0, 0, 5]  # one row: 8 known cells, then the hole
    assert torch.equal(feather[:8], torch.ones(8)) and torch.equal(feather[11:], torch.zeros(5))
    assert feather[8:11].tolist() == pytest.approx([0.4, 0.2, 0.0])  # 2/5, 1/5, 0/5 of the 5 x 5 box known
    assert torch.equal(mask_at(big, 16, "feather") >= 1, mask_at(big, 16, "hard") >= 1)


# -- sampling and compositing ----------------------------------------------------------------------------


def test_sample_is_reproducible_and_diverse(G, x):
    m = make(G)
    perturb(m.encoder.heads, m.mixer)
    mask = box_mask()
    a, b = m.sample(x, mask, n=3, seed=5), m.sample(x, mask, n=3, seed=5)
    assert torch.equal(a, b)
    assert hole_diff(a[:, 0], a[:, 1], mask) > 1e-3
    assert not torch.equal(a, m.sample(x, mask, n=3, seed=6))


def test_composite_keeps_known_pixels_exactly(G, x):
    mask = box_mask()
    y = torch.randn(4, 3, 32, 32)
    out = composite(x, mask, y)
    keep = mask.expand_as(x).bool()
    assert torch.equal(out[keep], x[keep]) and torch.equal(out[~keep], y[~keep])
    ys = torch.randn(4, 2, 3, 32, 32)  # a samples axis
    outs = Inpainter.composite(x, mask, ys)
    assert torch.equal(outs[:, 1][keep], x[keep])
    m = make(G)
    pasted = m.sample(x, mask, n=2, paste=True)
    assert torch.equal(pasted[:, 0][keep], x[keep])


# -- input validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.ones(4, 3, 32, 32), "channels"),
        (torch.full((4, 1, 32, 32), 0.5), "neither 0 nor 1"),
        (torch.ones(4, 1, 16, 16), "16x16"),
        (torch.ones(3, 1, 32, 32), "batch of 3"),
    ],
)
def test_bad_masks_raise_mask_error(G, x, bad, match):
    m = make(G)
    with pytest.raises(MaskError, match=match):
        m(x, bad)
    with pytest.raises(MaskError, match=match):
        m.encoder(x, bad)
    with pytest.raises(MaskError):
        composite(x, bad, x)


def test_bad_images_and_stage_raise(G, x):
    m = make(G)
    with pytest.raises(ValueError, match="x"):
        m(torch.zeros(4, 3, 16, 16), box_mask(size=16))
    with pytest.raises(ValueError, match="stage"):
        m(x, box_mask(), stage=3)


def test_config_round_trip_and_validation(G):
    cfg = InpaintingConfig.for_generator(G, "tiny", f_res=(8, 16))
    assert cfg.f_channels == (16, 16)
    assert InpaintingConfig.from_dict(cfg.to_dict()) == cfg
    g64 = Generator(64, 128, 4, channel_multiplier=0.125, channel_max=128)  # synthfaces64's architecture
    assert InpaintingConfig.for_generator(g64, "small") == InpaintingConfig()  # the documented defaults
    for bad in (dict(mixing="sum"), dict(fuse_mask="blur"), dict(f_res=(12,)), dict(f_res=(16, 8))):
        with pytest.raises(ValueError):
            InpaintingConfig.for_generator(G, "tiny", **bad)
    rgb = WPlusEncoderConfig(backbone=EncoderConfig.preset("tiny"), n_latent=8, style_dim=16)
    with pytest.raises(ValueError, match="in_channels=4"):
        InpaintingConfig(encoder=rgb, size=32)
    with pytest.raises(ValueError, match="unknown"):
        InpaintingConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="does not fit"):
        Inpainter(tiny_generator(channel_multiplier=0.25, channel_max=32), cfg)


def test_smaller_encoder_than_image(G, x):
    bb = EncoderConfig.preset("tiny", size=16, in_channels=4)
    enc = WPlusEncoderConfig(backbone=bb, n_latent=8, style_dim=16)
    m = make(G, encoder=enc)
    out = m(x, box_mask(lo=7, hi=13), stage=2)
    assert out.image.shape == (4, 3, 32, 32) and out.pyramid.fine.shape == (4, 8, 8, 8)


# -- checkpoints -----------------------------------------------------------------------------------------


def test_save_load_round_trip(G, x, tmp_path, monkeypatch):
    m = make(G, f_res=(8, 16))
    perturb(m.encoder.heads, m.mixer, m.skip)
    save_generator(tmp_path / "generator.pt", G)
    save_inpainter(tmp_path / "inpainter.pt", m, generator="generator.pt")
    z = torch.randn(4, 16)
    with torch.no_grad():
        want = m(x, box_mask(), z=z, stage=2).image
        for loaded in (load_inpainter(tmp_path / "inpainter.pt"), load_inpainter(tmp_path, G=G)):
            assert not loaded.training and loaded.cfg == m.cfg
            torch.testing.assert_close(loaded(x, box_mask(), z=z, stage=2).image, want)
        monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path / "bundle"))
        save_inpainter(tmp_path / "bundle" / "mini" / "inpainter.pt", m)
        loaded = load_inpainter("mini", G=G)
        torch.testing.assert_close(loaded(x, box_mask(), z=z, stage=2).image, want)
    assert not any(k.startswith("G.") for k in torch.load(tmp_path / "inpainter.pt")["state_dict"])


def test_load_errors_are_checkpoint_errors(G, tmp_path, monkeypatch):
    m = make(G)
    save_inpainter(tmp_path / "plain.pt", m)  # no generator recorded
    with pytest.raises(CheckpointError, match="pass G="):
        load_inpainter(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="another generator"):
        load_inpainter(tmp_path / "plain.pt", G=tiny_generator(channel_multiplier=0.25, channel_max=32))
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_inpainter(tmp_path / "corrupt.pt", G=G)
    save_generator(tmp_path / "generator.pt", G)
    with pytest.raises(CheckpointError, match="expected 'inpainter'"):
        load_inpainter(tmp_path / "generator.pt", G=G)
    save_checkpoint(tmp_path / "badcfg.pt", KIND, {**m.config, "mixing": "sum"}, {})
    with pytest.raises(CheckpointError, match="config is invalid"):
        load_inpainter(tmp_path / "badcfg.pt", G=G)
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith(("G.", "skip."))}
    save_checkpoint(tmp_path / "partial.pt", KIND, m.config, sd)
    with pytest.raises(CheckpointError, match="missing"):
        load_inpainter(tmp_path / "partial.pt", G=G)
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match="no pretrained model"):
        load_inpainter("nosuchmodel", G=G)


# -- training --------------------------------------------------------------------------------------------


def test_freeze_for_stage(G):
    m = make(G).train()
    params = m.freeze_for_stage(1)
    ids = {id(p) for p in params}
    assert ids == {id(p) for p in [*m.encoder.parameters(), *m.mixer.parameters()]}
    assert not any(p.requires_grad for p in [*m.skip.parameters(), *G.parameters()])
    assert m.encoder.training and not m.skip.training
    params = m.freeze_for_stage(2)
    assert {id(p) for p in params} == {id(p) for p in m.skip.parameters()}
    assert not any(p.requires_grad for p in [*m.encoder.parameters(), *m.mixer.parameters()])
    assert m.skip.training and not m.encoder.training


def test_case_a_training_reduces_the_loss(G):
    """Case A (docs/papers/diverse_inpainting.md §4): the original latent is the mixer's random input, loss
    on every pixel."""
    torch.manual_seed(0)
    m = make(G).train()
    opt = torch.optim.Adam(m.freeze_for_stage(1), lr=3e-3)
    with torch.no_grad():
        w1 = G.mapping(torch.randn(8, 16))
        x1 = G.synthesis(w1)  # [8, 3, 32, 32]
    mask = random_masks(8, 32, seed=0)
    losses = []
    for _ in range(30):
        out = m(x1, mask, w_r=w1)
        loss = F.mse_loss(out.image, x1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses  # 1.49 -> 0.29 here
    assert out.gate.mean() < torch.sigmoid(torch.tensor(2.0))  # the mixer learnt to draw on w_r
