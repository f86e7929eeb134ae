"""CLCAE stage 2: shapes, the w_avg start, the single-token reduction vs real multi-token attention, ablation
switches, reconstruction with G, the blend ramp, a short training run, checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from ganinv.checkpoints import CheckpointError, save_checkpoint
from ganinv.losses import LossWeights, ReconstructionLoss, feature_regulariser
from ganinv.models.clcae import (
    CLCAE,
    AttentionBlock,
    CLCAEConfig,
    CLCAEOutput,
    attention_maps,
    edit_feature,
    f_blend_at,
    load_clcae,
    own_feature,
    reconstruct,
    save_clcae,
)
from ganinv.models.contrastive import ContrastiveAligner, ContrastiveModelConfig
from ganinv.models.encoders import EncoderConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def make(G, **kw) -> CLCAE:
    return CLCAE.from_generator(G, CLCAEConfig.for_generator(G, backbone="tiny", **kw))


def images(n=2, seed=1):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


# -- shapes and the starting point -----------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["single", "multi"])
@pytest.mark.parametrize("f_res", [16, 8])
def test_shapes_and_untrained_model_gives_w_avg_exactly(G, attention, f_res):
    model = make(G, attention=attention, f_res=f_res).eval()
    out = model(images(3))
    assert isinstance(out, CLCAEOutput)
    assert out.w.shape == (3, 16) and out.w_plus.shape == (3, G.n_latent, 16)
    assert out.f.shape == (3, G.channels[f_res], f_res, f_res)
    w_avg = G.get_w_avg()
    assert torch.equal(out.w, w_avg.expand(3, 16))  # zero-initialised w head
    assert torch.equal(out.w_plus, w_avg.expand(3, G.n_latent, 16))  # zero-initialised final LayerNorms
    assert model.reconstruct(G, out, "f").shape == (3, 3, 32, 32)
    # the release's init (zero_init=False): o_i ends in a unit-variance LayerNorm, w_plus != w (quirk 2)
    raw = make(G, attention=attention, f_res=f_res, zero_init=False).eval()(images(3))
    assert (raw.w_plus - raw.w.unsqueeze(1)).std() > 0.5


def test_config_and_input_checks(G, tiny_generator):
    with pytest.raises(ValueError, match="attention must be one of"):
        CLCAEConfig(attention="cross")
    with pytest.raises(ValueError, match=r"f_res must be a power of two in \[8, 16\]"):
        CLCAEConfig.for_generator(G, backbone="tiny", f_res=32)
    with pytest.raises(ValueError, match="not a resolution of the 32 px generator"):
        CLCAEConfig.for_generator(G, backbone="tiny", f_res=64)
    with pytest.raises(ValueError, match=r"heads \(3\) must divide style_dim"):
        CLCAEConfig.for_generator(G, backbone="tiny", heads=3)
    with pytest.raises(ValueError, match="unknown field"):
        CLCAEConfig.from_dict({"n_latents": 8})
    cfg = CLCAEConfig.for_generator(G, backbone="tiny", attention="multi")
    assert CLCAEConfig.from_dict(cfg.to_dict()) == cfg  # nested backbone dict round trip
    model = make(G)
    with pytest.raises(ValueError, match=r"image: expected shape \[\*, 3, 32, 32\]"):
        model(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"w_shift: expected shape \[2, 16\]"):
        model(images(2), w_shift=torch.zeros(3, 16))
    with pytest.raises(ValueError, match=r"w_shift: expected shape \[2, 16\], got \[2, 8\]"):
        model(images(2), w_shift=torch.zeros(8))
    other = tiny_generator(64)
    with pytest.raises(ValueError, match="does not match the CLCAE config"):
        model.reconstruct(other, model(images(2)))


# -- the attention variants ------------------------------------------------------------------------------


def test_single_token_attention_is_a_linear_map_of_the_token_and_multi_token_is_not():
    block = AttentionBlock(16, 8, heads=4, ffn=32, dropout=0.1).eval()
    attn = block.attn
    q1, q2 = torch.randn(5, 1, 16), torch.randn(5, 1, 16)
    kv = torch.randn(5, 1, 8)
    a1, a2 = attn(q1, kv, kv), attn(q2, kv, kv)
    linear = F.linear(F.linear(kv, attn.v.weight, attn.v.bias), attn.out.weight, attn.out.bias)
    torch.testing.assert_close(a1, linear, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a2, linear, rtol=1e-5, atol=1e-6)  # the query has no effect
    # the whole block: the query enters only through the residual, t = LN1(q + A kv + b), o = LN2(t + FFN t)
    t = block.norm1(q1 + linear)
    torch.testing.assert_close(block(q1, kv), block.norm2(t + block.ffn(t)), rtol=1e-5, atol=1e-5)
    # several key/value tokens: real attention, the output now depends on the query
    kv6 = torch.randn(5, 6, 8)
    assert not torch.allclose(attn(q1, kv6, kv6), attn(q2, kv6, kv6), atol=1e-4)


def test_attention_weights_are_the_ones_forward_uses():
    attn = AttentionBlock(16, 8, heads=4, ffn=32, dropout=0.0).eval().attn
    q, kv = torch.randn(3, 2, 16), torch.randn(3, 6, 8)
    a = attn.weights(q, kv)  # [3, 4, 2, 6]
    assert a.shape == (3, 4, 2, 6)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 4, 2))
    v = attn.v(kv).view(3, 6, 4, 4).transpose(1, 2)  # [N, heads, Lk, d_head]
    mixed = (a @ v).transpose(1, 2).reshape(3, 2, 16)
    torch.testing.assert_close(attn.out(mixed), attn(q, kv, kv), rtol=1e-5, atol=1e-6)
    assert torch.all(attn.weights(q, kv[:, :1]) == 1)  # one token: weight 1 whatever the query


def test_attention_maps_of_the_multi_token_model(G):
    model = make(G, attention="multi", zero_init=False).eval()
    x = images(2)
    maps = attention_maps(model, x)
    assert len(maps["wplus"]) == G.n_latent
    for i, m in enumerate(maps["wplus"]):
        s = getattr(model.backbone(x - model.image_avg), model._level_name(i)).shape[-1]
        assert m.shape == (2, s, s)
        torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))
    fine = model.backbone(x - model.image_avg).fine
    assert maps["f"].shape == (2, G.n_latent, *fine.shape[-2:])
    torch.testing.assert_close(maps["f"].sum(1), torch.ones(2, *fine.shape[-2:]))
    assert maps["wplus"][0].std() > 0  # the maps depend on the position
    with pytest.raises(ValueError, match="only for attention='multi'"):
        attention_maps(make(G), x)


@pytest.mark.parametrize("attention", ["single", "multi"])
def test_query_and_key_projections_get_gradient_only_with_multi_token_attention(G, attention):
    model = make(G, attention=attention, zero_init=False, dropout=0.0)
    out = model(images(2))
    (out.w_plus.pow(2).sum() + out.f.pow(2).sum()).backward()
    blocks = [*model.wplus_blocks, model.f_block]
    grads = [b.attn.q.weight.grad.abs().max() + b.attn.k.weight.grad.abs().max() for b in blocks]
    if attention == "single":
        # softmax over one key is constant: W_Q, W_K never train. Their gradient is zero up to the rounding of
        # the softmax backward (exactly 0 with AVX-512 kernels, ~1e-8 with oneDNN's AVX2 ones)
        v_grads = [b.attn.v.weight.grad.abs().max() for b in blocks]
        assert all(v > 0 and g <= 1e-6 * v for g, v in zip(grads, v_grads)), (grads, v_grads)
    else:
        assert all(g > 0 for g in grads)


def test_multi_wplus_attention_depends_on_the_spatial_arrangement(G):
    model = make(G, attention="multi", zero_init=False).eval()
    with torch.no_grad():
        pyramid = model.backbone(images(2) - model.image_avg)
        w_off = model.w_head(pyramid.coarse)
        base = model._wplus_offsets(pyramid, w_off)
        perm = torch.randperm(16 * 16, generator=torch.Generator().manual_seed(3))
        fine = pyramid.fine.flatten(2)[:, :, perm].view_as(pyramid.fine)  # the same tokens, moved around
        shuffled = model._wplus_offsets(pyramid._replace(fine=fine), w_off)
        fine_rows = [i for i in range(G.n_latent) if model._level_name(i) == "fine"]
        assert fine_rows == [7]
        torch.testing.assert_close(shuffled[:, :7], base[:, :7])  # layers on other levels: untouched
        assert not torch.allclose(shuffled[:, 7], base[:, 7], atol=1e-4)
        # moving the positional embeddings with the tokens restores the output: a set attention + positions
        model.pos["fine"].copy_(model.pos["fine"][perm])
        torch.testing.assert_close(model._wplus_offsets(pyramid._replace(fine=fine), w_off), base)


def test_single_wplus_rows_are_the_block_of_w_off_and_the_pooled_token(G):
    model = make(G, zero_init=False).eval()
    with torch.no_grad():
        pyramid = model.backbone(images(2) - model.image_avg)
        w_off = model.w_head(pyramid.coarse)
        offsets = model._wplus_offsets(pyramid, w_off)
        tokens = [
            w_off,
            *(model.delta_heads[i - 1](getattr(pyramid, model._level_name(i))) for i in range(1, 8)),
        ]
        for i, (block, token) in enumerate(zip(model.wplus_blocks, tokens)):
            a = F.linear(F.linear(token, block.attn.v.weight, block.attn.v.bias), block.attn.out.weight)
            t = block.norm1(w_off + a + block.attn.out.bias)
            torch.testing.assert_close(offsets[:, i], block.norm2(t + block.ffn(t)), rtol=1e-5, atol=1e-5)


# -- ablations -------------------------------------------------------------------------------------------


def top_modules(model):
    return {name.split(".")[0] for name, _ in model.named_parameters()}


def test_ablation_switches_change_parameters_and_outputs(G):
    x = images(2)
    assert top_modules(make(G)) == {"backbone", "w_head", "delta_heads", "wplus_blocks", "f_block", "f_cnn"}
    assert top_modules(make(G, attention="multi")) == {
        "backbone", "w_head", "pos", "wplus_blocks", "f_block", "layer_embed", "f_cnn"
    }  # fmt: skip

    # without W+ attention: w_plus_i = w + map2style_i(level_i), row 0 is w
    plain = make(G, use_wplus_attention=False).eval()
    assert top_modules(plain) == {"backbone", "w_head", "delta_heads", "f_block", "f_cnn"}
    out = plain(x)
    assert torch.equal(out.w_plus, out.w.unsqueeze(1).expand_as(out.w_plus))  # zero-initialised heads
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.05 * torch.randn_like(p))
        out = plain(x)
        pyramid = plain.backbone(x - plain.image_avg)
        assert torch.equal(out.w_plus[:, 0], out.w)
        for i in range(1, G.n_latent):
            delta = plain.delta_heads[i - 1](getattr(pyramid, plain._level_name(i)))
            torch.testing.assert_close(out.w_plus[:, i], out.w + delta)

    # without F attention: f from the CNN alone, so it ignores w (and a shift of w)
    shift = torch.randn(16)
    no_fa = make(G, use_f_attention=False).eval()
    assert top_modules(no_fa) == {"backbone", "w_head", "delta_heads", "wplus_blocks", "f_cnn"}
    assert torch.equal(no_fa(x).f, no_fa(x, w_shift=shift).f)
    full = make(G).eval()
    assert not torch.allclose(full(x).f, full(x, w_shift=shift).f)

    # without the F branch: no f at all (CLCAE_W+)
    no_f = make(G, use_f=False).eval()
    assert top_modules(no_f) == {"backbone", "w_head", "delta_heads", "wplus_blocks"}
    out = no_f(x)
    assert out.f is None
    with pytest.raises(ValueError, match="out.f is None"):
        reconstruct(G, out, "f")
    assert reconstruct(G, out, "w_plus").shape == (2, 3, 32, 32)


def test_w_shift_edits_w_before_both_attention_modules(G):
    model = make(G).eval()
    shift = torch.randn(16)
    base, edited = model(images(2)), model(images(2), w_shift=shift)
    torch.testing.assert_close(edited.w, base.w + shift)
    torch.testing.assert_close(edited.w_plus, edited.w.unsqueeze(1).expand_as(edited.w_plus))
    assert not torch.allclose(edited.f, base.f)  # the F block reads the shifted w


# -- using the generator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("f_res", [16, 8])
def test_reconstruct_modes_and_g_own_feature(G, f_res):
    w = G.mapping(torch.randn(2, 16))
    w_plus = G.broadcast(w) + 0.3 * torch.randn(2, G.n_latent, 16)
    f_own = own_feature(G, w_plus, f_res)
    assert f_own.shape == (2, G.channels[f_res], f_res, f_res)
    out = CLCAEOutput(w, w_plus, f_own)
    assert torch.equal(reconstruct(G, out, "w"), G.synthesis(w))
    assert torch.equal(reconstruct(G, out, "w_plus"), G.synthesis(w_plus))
    assert torch.equal(reconstruct(G, out, "f"), G.synthesis(w_plus))  # G's own feature changes nothing
    other = CLCAEOutput(w, w_plus, torch.randn_like(f_own))
    assert torch.equal(reconstruct(G, other, "f", f_blend=0.0), G.synthesis(w_plus))
    assert not torch.allclose(reconstruct(G, other, "f", f_blend=0.5), G.synthesis(w_plus))
    assert feature_regulariser(f_own, own_feature(G, w_plus, f_res)) == 0
    torch.testing.assert_close(edit_feature(G, other.f, w_plus, w_plus), other.f)
    edited = edit_feature(G, f_own, w_plus, w_plus + 0.5)
    torch.testing.assert_close(edited, own_feature(G, w_plus + 0.5, f_res))  # f = own: f̂ is ŵ⁺'s own feature
    with pytest.raises(ValueError, match="mode must be one of"):
        reconstruct(G, out, "wp")


def test_f_blend_ramp():
    assert [f_blend_at(s, 10) for s in (-1, 0, 5, 10, 25)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert f_blend_at(7, 0) == 1.0
    # the release: linear over each epoch of 11 batches, back to 0 at the next epoch
    assert [f_blend_at(s, 10, restart=True) for s in (0, 10, 11, 16, 21)] == [0.0, 1.0, 0.0, 0.5, 1.0]


def test_averages_and_contrastive_backbone(G):
    model = make(G)
    torch.testing.assert_close(model.w_avg, G.get_w_avg())
    torch.testing.assert_close(model.image_avg, G.synthesis(G.get_w_avg()[None])[0])
    aligner = ContrastiveAligner(
        ContrastiveModelConfig(backbone=EncoderConfig.preset("tiny"), style_dim=16, latent_blocks=1)
    )
    model.load_backbone_from(aligner)
    for a, b in zip(
        model.backbone.state_dict().values(), aligner.image_encoder.backbone.state_dict().values()
    ):
        assert torch.equal(a, b)
    assert torch.equal(model.w_head.linear.weight, torch.zeros_like(model.w_head.linear.weight))
    model.load_backbone_from(aligner, with_head=True)
    assert torch.equal(model.w_head.linear.weight, aligner.image_encoder.head.linear.weight)
    small = ContrastiveAligner(ContrastiveModelConfig(backbone=EncoderConfig.preset("small"), style_dim=16))
    with pytest.raises(ValueError, match="does not match this encoder"):
        model.load_backbone_from(small)


# -- training --------------------------------------------------------------------------------------------


def test_short_training_run_reduces_the_reconstruction_loss(G):
    torch.manual_seed(0)
    with torch.no_grad():
        w = G.mapping(torch.randn(8, 16))
        x = G.synthesis(w)  # the generator's own samples
    model = make(G)
    rec = ReconstructionLoss(LossWeights(lpips=0, id=0))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_of(out, s):
        total = sum(rec(reconstruct(G, out, m, f_blend=s), x)["total"] for m in ("w", "w_plus", "f"))
        return total + 0.01 * feature_regulariser(out.f, own_feature(G, out.w_plus))

    with torch.no_grad():
        before = loss_of(model.eval()(x), 1.0).item()
    for step in range(30):
        loss = loss_of(model.train()(x), f_blend_at(step, 10))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = loss_of(model.eval()(x), 1.0).item()
    assert after < 0.7 * before, (before, after)


# -- checkpoints -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["single", "multi"])
def test_save_load_round_trip(G, tmp_path, monkeypatch, attention):
    model = make(G, attention=attention, f_res=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.eval()
    save_clcae(tmp_path / "clcae.pt", model, step=12)
    loaded = load_clcae(tmp_path / "clcae.pt")
    assert loaded.cfg == model.cfg and not loaded.training
    x = images(2)
    a, b = model(x), loaded(x)
    for t, u in zip(a, b):
        assert torch.equal(t, u)
    assert torch.equal(loaded.w_avg, model.w_avg) and torch.equal(loaded.image_avg, model.image_avg)
    # a bundled name resolves to <pretrained dir>/<name>/clcae.pt
    (tmp_path / "bundle" / "toy").mkdir(parents=True)
    save_clcae(tmp_path / "bundle" / "toy" / "clcae.pt", model)
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path / "bundle"))
    assert torch.equal(load_clcae("toy")(x).w_plus, a.w_plus)
    with pytest.raises(CheckpointError, match="no pretrained model 'missing'"):
        load_clcae("missing")


def test_corrupt_and_mismatched_checkpoints(G, tmp_path):
    model = make(G)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_clcae(bad)
    save_clcae(tmp_path / "good.pt", model)
    (tmp_path / "cut.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_clcae(tmp_path / "cut.pt")
    save_checkpoint(tmp_path / "psp.pt", "psp_encoder", model.config, model.state_dict())
    with pytest.raises(CheckpointError, match="expected 'clcae'"):
        load_clcae(tmp_path / "psp.pt")
    save_checkpoint(tmp_path / "cfg.pt", "clcae", {**model.config, "heads": 3}, model.state_dict())
    with pytest.raises(CheckpointError, match="stored CLCAE config is invalid"):
        load_clcae(tmp_path / "cfg.pt")
    multi = make(G, attention="multi")
    save_checkpoint(tmp_path / "mixed.pt", "clcae", model.config, multi.state_dict())
    with pytest.raises(CheckpointError, match="state dict does not fit CLCAE"):
        load_clcae(tmp_path / "mixed.pt")
