"""Feature-pyramid backbone, pSp and e4e encoders: shapes, input checks, w_avg start, e4e's progressive
stages and delta regulariser, checkpoints."""

import pytest
import torch

from ganinv.checkpoints import CheckpointError
from ganinv.models.encoders import (
    E4EEncoder,
    EncoderConfig,
    FeaturePyramid,
    PSPEncoder,
    WPlusEncoderConfig,
    load_encoder,
    save_encoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(**kw) -> WPlusEncoderConfig:
    return WPlusEncoderConfig(backbone=EncoderConfig.preset("tiny"), n_latent=8, style_dim=16, **kw)


@pytest.mark.parametrize(
    "name, size, sizes, channels",
    [("tiny", 32, (16, 8, 4), 8), ("small", 64, (16, 8, 4), 128), ("small", 32, (8, 4, 2), 128)],
)
def test_pyramid_shapes(name, size, sizes, channels):
    cfg = EncoderConfig.preset(name, size=size)
    assert cfg.pyramid_sizes == sizes and cfg.channels == channels
    pyr = FeaturePyramid(cfg).eval()(torch.randn(2, 3, size, size))
    assert [tuple(t.shape) for t in (pyr.fine, pyr.medium, pyr.coarse)] == [
        (2, channels, s, s) for s in sizes
    ]


def test_ir_se50_config_matches_psp_taps():
    cfg = EncoderConfig.preset("ir_se50")
    assert cfg.size == 256 and cfg.pyramid_sizes == (64, 32, 16) and cfg.widths[-3:] == (128, 256, 512)
    assert sum(cfg.blocks) == 24  # IR-SE50's 3 + 4 + 14 + 3 units


def test_input_checks_name_the_expected_shape():
    enc = PSPEncoder(tiny_cfg())
    for bad in (torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 32, 32), torch.zeros(3, 32, 32)):
        with pytest.raises(ValueError, match=r"expected shape \[\*, 3, 32, 32\]"):
            enc(bad)
    with pytest.raises(ValueError, match="floating-point"):
        enc(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        enc(torch.zeros(0, 3, 32, 32))
    rgbm = FeaturePyramid(EncoderConfig.preset("tiny", in_channels=4))
    assert rgbm(torch.zeros(1, 4, 32, 32)).coarse.shape == (1, 8, 4, 4)


def test_config_validation():
    with pytest.raises(ValueError, match=">= 3 stages"):
        EncoderConfig(widths=(8, 8), blocks=(1, 1), strides=(2, 2))
    with pytest.raises(ValueError, match="strides must be 1 or 2"):
        EncoderConfig(strides=(2, 2, 4, 2))
    with pytest.raises(ValueError, match="power of two"):
        EncoderConfig(size=48)
    with pytest.raises(ValueError, match="power of two >= 16"):
        EncoderConfig(size=8)
    with pytest.raises(ValueError, match="unknown backbone"):
        EncoderConfig.preset("resnet50")
    with pytest.raises(ValueError, match="coarse_ind"):
        tiny_cfg(coarse_ind=5, middle_ind=2)


def test_psp_shape_and_zero_init_gives_w_avg(tiny_generator):
    G = tiny_generator()
    cfg = WPlusEncoderConfig.for_generator(G, backbone="tiny")
    assert (cfg.n_latent, cfg.style_dim, cfg.backbone.size) == (8, 16, 32)
    enc = PSPEncoder(cfg)
    enc.set_w_avg(G.get_w_avg())
    x = torch.randn(3, 3, 32, 32)
    w_plus = enc(x)
    assert w_plus.shape == (3, G.n_latent, G.style_dim)
    torch.testing.assert_close(w_plus, G.get_w_avg().expand(3, 8, 16), rtol=0, atol=0)
    # one optimiser step moves every head away from w_avg, differently for different images
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    (enc(x) - torch.randn(3, 8, 16)).pow(2).sum().backward()
    opt.step()
    moved = enc(x) - G.get_w_avg()
    assert (moved.abs().amax(dim=(0, 2)) > 0).all()
    assert not torch.allclose(moved[0], moved[1])
    with pytest.raises(ValueError, match=r"w_avg: expected shape \[16\]"):
        enc.set_w_avg(torch.zeros(8))


def test_psp_heads_read_the_pyramid_level_of_their_resolution():
    enc = PSPEncoder(tiny_cfg(zero_init=False))
    spatial = [head.spatial for head in enc.heads]
    assert spatial == [4, 4, 4, 8, 8, 8, 8, 16]  # coarse 0-2, medium 3-6, fine 7
    out = enc(torch.randn(2, 3, 32, 32))
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_e4e_progressive_stages_mask_deltas():
    enc = E4EEncoder(tiny_cfg(zero_init=False))
    x = torch.randn(2, 3, 32, 32)
    assert enc.stage == 0 and enc.max_stage == 7
    w_plus = enc(x)
    torch.testing.assert_close(w_plus, w_plus[:, :1].expand_as(w_plus), rtol=0, atol=0)  # a single w
    assert enc.delta_regulariser() == 0
    enc.set_stage(3)
    w_plus = enc(x)
    deltas = w_plus - w_plus[:, :1]
    assert (deltas[:, 1:4].abs().amax(dim=(0, 2)) > 0).all()
    assert torch.equal(deltas[:, 4:], torch.zeros_like(deltas[:, 4:]))
    w_plus.sum().backward()
    assert all(enc.heads[i].linear.weight.grad is not None for i in range(4))
    assert all(enc.heads[i].linear.weight.grad is None for i in range(4, 8))
    # e4e's delta loss: sum over active layers of the batch-mean L2 norm of the delta
    by_hand = sum(deltas[:, i].norm(dim=1).mean() for i in range(1, 4))
    torch.testing.assert_close(enc.delta_regulariser(w_plus), by_hand)
    torch.testing.assert_close(enc.delta_regulariser(), by_hand)
    w, d = enc.encode(x)
    assert w.shape == (2, 16) and d.shape == (2, 8, 16) and torch.equal(d[:, 0], torch.zeros(2, 16))
    with pytest.raises(ValueError, match=r"stage must be in \[0, 7\]"):
        enc.set_stage(8)
    assert [enc.stage_for_step(s, 100) for s in (0, 99, 100, 350, 10_000)] == [0, 0, 1, 3, 7]
    assert enc.stage_for_step(5, 0) == 7


def test_e4e_zero_init_starts_at_w_avg_and_save_load_keeps_stage(tmp_path):
    enc = E4EEncoder(tiny_cfg())
    enc.set_w_avg(torch.arange(16.0))
    enc.set_stage(7)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(enc(x), torch.arange(16.0).expand(2, 8, 16), rtol=0, atol=0)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01 * torch.randn_like(p))
    enc.set_stage(5)
    save_encoder(tmp_path / "e4e.pt", enc, step=3)
    loaded = load_encoder(tmp_path / "e4e.pt", "e4e_encoder")
    assert isinstance(loaded, E4EEncoder) and loaded.stage == 5 and loaded.cfg == enc.cfg
    torch.testing.assert_close(loaded(x), enc.eval()(x))
    with pytest.raises(CheckpointError, match="expected 'psp_encoder'"):
        load_encoder(tmp_path / "e4e.pt", "psp_encoder")
