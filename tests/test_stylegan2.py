"""Generator / Discriminator: rosinality-identical names and shapes, the public API, and derivatives."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganinv.models.stylegan2 import Discriminator, Generator, ModulatedConv2d, channel_table


def tiny_generator(size=32, **kw):
    kw = dict(style_dim=32, n_mlp=2, channel_max=32) | kw
    return Generator(size, **kw).eval()


def rosinality_channels(res, cm):
    """rosinality's table, written out as in its model.py docs (independent of channel_table)."""
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * cm,
        128: 128 * cm,
        256: 64 * cm,
        512: 32 * cm,
        1024: 16 * cm,
    }[res]


def expected_g_shapes(size, style_dim=512, n_mlp=8, cm=2):
    """Key -> shape of rosinality's Generator state_dict, from the reference table."""
    C = lambda r: rosinality_channels(r, cm)  # noqa: E731
    S = style_dim
    out = {}
    for i in range(1, n_mlp + 1):
        out[f"style.{i}.weight"], out[f"style.{i}.bias"] = [S, S], [S]
    out["input.input"] = [1, C(4), 4, 4]
    out |= {
        "conv1.conv.weight": [1, C(4), C(4), 3, 3],
        "conv1.conv.modulation.weight": [C(4), S],
        "conv1.conv.modulation.bias": [C(4)],
        "conv1.noise.weight": [1],
        "conv1.activate.bias": [C(4)],
        "to_rgb1.bias": [1, 3, 1, 1],
        "to_rgb1.conv.weight": [1, 3, C(4), 1, 1],
        "to_rgb1.conv.modulation.weight": [C(4), S],
        "to_rgb1.conv.modulation.bias": [C(4)],
    }
    log_size = int(math.log2(size))
    for k in range(log_size - 2):
        r = 2 ** (k + 3)
        for j, cin in ((2 * k, C(r // 2)), (2 * k + 1, C(r))):
            out[f"convs.{j}.conv.weight"] = [1, C(r), cin, 3, 3]
            if j == 2 * k:
                out[f"convs.{j}.conv.blur.kernel"] = [4, 4]
            out[f"convs.{j}.conv.modulation.weight"] = [cin, S]
            out[f"convs.{j}.conv.modulation.bias"] = [cin]
            out[f"convs.{j}.noise.weight"] = [1]
            out[f"convs.{j}.activate.bias"] = [C(r)]
        out |= {
            f"to_rgbs.{k}.bias": [1, 3, 1, 1],
            f"to_rgbs.{k}.upsample.kernel": [4, 4],
            f"to_rgbs.{k}.conv.weight": [1, 3, C(r), 1, 1],
            f"to_rgbs.{k}.conv.modulation.weight": [C(r), S],
            f"to_rgbs.{k}.conv.modulation.bias": [C(r)],
        }
    for i in range((log_size - 2) * 2 + 1):
        r = 2 ** ((i + 5) // 2)
        out[f"noises.noise_{i}"] = [1, 1, r, r]
    return out


def expected_d_shapes(size, cm=2):
    C = lambda r: rosinality_channels(r, cm)  # noqa: E731
    out = {"convs.0.0.weight": [C(size), 3, 1, 1], "convs.0.1.bias": [C(size)]}
    for j in range(1, int(math.log2(size)) - 1):
        r = size // 2 ** (j - 1)
        cin, cout = C(r), C(r // 2)
        out |= {
            f"convs.{j}.conv1.0.weight": [cin, cin, 3, 3],
            f"convs.{j}.conv1.1.bias": [cin],
            f"convs.{j}.conv2.0.kernel": [4, 4],
            f"convs.{j}.conv2.1.weight": [cout, cin, 3, 3],
            f"convs.{j}.conv2.2.bias": [cout],
            f"convs.{j}.skip.0.kernel": [4, 4],
            f"convs.{j}.skip.1.weight": [cout, cin, 1, 1],
        }
    c4 = C(4)
    out |= {
        "final_conv.0.weight": [c4, c4 + 1, 3, 3],
        "final_conv.1.bias": [c4],
        "final_linear.0.weight": [c4, c4 * 16],
        "final_linear.0.bias": [c4],
        "final_linear.1.weight": [1, c4],
        "final_linear.1.bias": [1],
    }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("size", [16, 32, 64, 128, 256, 512, 1024])
@pytest.mark.parametrize("cm", [1, 2])
def test_rosinality_names_and_shapes(size, cm):
    G = Generator(size, channel_multiplier=cm)
    got = {k: list(v.shape) for k, v in G.state_dict().items()}
    assert got == expected_g_shapes(size, cm=cm)
    D = Discriminator(size, channel_multiplier=cm)
    assert {k: list(v.shape) for k, v in D.state_dict().items()} == expected_d_shapes(size, cm=cm)
    # a foreign state dict with exactly those names and shapes loads strictly
    G.load_state_dict({k: torch.zeros(s) for k, s in expected_g_shapes(size, cm=cm).items()}, strict=True)
    assert G.n_latent == 2 * int(math.log2(size)) - 2
    if size == 1024 and cm == 2:
        assert sum(p.numel() for p in G.parameters()) == 30_370_060


def test_channel_table_small_models():
    assert channel_table(64, 2, 64) == {4: 64, 8: 64, 16: 64, 32: 64, 64: 64}
    assert channel_table(256, 1, 512)[256] == 64


def test_mapping_and_synthesis_shapes_and_errors():
    G = tiny_generator()
    z = torch.randn(3, 32)
    w = G.mapping(z)
    assert w.shape == (3, 32)
    img = G.synthesis(w)
    assert img.shape == (3, 3, 32, 32)
    w_plus = G.broadcast(w)
    assert w_plus.shape == (3, G.n_latent, 32)
    torch.testing.assert_close(G.synthesis(w_plus), img)
    with pytest.raises(ValueError, match=r"ws: expected shape \[\*, 8, 32\]"):
        G.synthesis(torch.randn(3, 5, 32))
    with pytest.raises(ValueError, match="z: expected shape"):
        G.mapping(torch.randn(3, 16))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(w, noise_mode="fresh")


def test_noise_modes():
    G = tiny_generator()
    for m in [G.conv1, *G.convs]:
        m.noise.weight.data.fill_(1.0)
    w = G.mapping(torch.randn(2, 32))
    const = G.synthesis(w, noise_mode="const")
    torch.testing.assert_close(G.synthesis(w, noise_mode="const"), const)
    assert not torch.allclose(G.synthesis(w, noise_mode="random"), const)
    none = G.synthesis(w, noise_mode="none")
    assert not torch.allclose(none, const)
    for m in [G.conv1, *G.convs]:
        m.noise.weight.data.zero_()
    torch.testing.assert_close(G.synthesis(w, noise_mode="random"), G.synthesis(w, noise_mode="none"))


def test_f_space_replacement():
    G = tiny_generator()
    w_plus = G.broadcast(G.mapping(torch.randn(2, 32)))
    img, feats = G.synthesis(w_plus, return_features=True)
    assert {r: tuple(f.shape) for r, f in feats.items()} == {r: (2, 32, r, r) for r in (4, 8, 16, 32)}
    # its own feature back in: same image; zero feature: a different image; blend 0: ignored
    torch.testing.assert_close(G.synthesis(w_plus, f=feats[16], f_res=16), img)
    zeros = torch.zeros_like(feats[16])
    assert not torch.allclose(G.synthesis(w_plus, f=zeros), img)
    torch.testing.assert_close(G.synthesis(w_plus, f=zeros, f_blend=0.0), img)
    half = G.synthesis(w_plus, f=zeros, f_blend=0.5, return_features=True)[1][16]
    torch.testing.assert_close(half, feats[16] * 0.5)
    # with f given, the styles that act below the 16x16 second conv no longer reach the 32x32 features
    w2 = w_plus.clone()
    w2[:, :5] = G.mapping(torch.randn(2, 32)).unsqueeze(1)  # conv1 .. 16x16 second conv
    a = G.synthesis(w_plus, f=feats[16], return_features=True)[1][32]
    b = G.synthesis(w2, f=feats[16], return_features=True)[1][32]
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="f: expected shape"):
        G.synthesis(w_plus, f=torch.zeros(2, 32, 8, 8), f_res=16)


def test_truncation_and_style_mixing():
    G = tiny_generator()
    z = torch.randn(4, 32)
    w0 = G.mapping(z, truncation=0.0)
    torch.testing.assert_close(w0, G.get_w_avg().expand(4, -1))
    torch.testing.assert_close(G.get_w_avg(), G.mean_latent(4096))
    w_half = G.mapping(z, truncation=0.5)
    torch.testing.assert_close(w_half, 0.5 * (G.mapping(z) + G.get_w_avg()))
    w1, w2 = G.mapping(z[:2]), G.mapping(z[2:])
    mixed = G.style_mix(w1, w2, 3)
    torch.testing.assert_close(mixed[:, :3], w1.unsqueeze(1).expand(-1, 3, -1))
    torch.testing.assert_close(mixed[:, 3:], w2.unsqueeze(1).expand(-1, G.n_latent - 3, -1))
    torch.testing.assert_close(G.synthesis(G.style_mix(w1, w2, G.n_latent)), G.synthesis(w1))
    with pytest.raises(ValueError, match="cutoff"):
        G.style_mix(w1, w2, 99)


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_fused_and_unfused_forms_agree(upsample):
    """Eqs. 1-3 as a per-sample grouped conv (fused) and the faster shared-weight form (unfused, the default)
    give the same outputs and the same gradients, and both match an independent computation."""
    conv = ModulatedConv2d(6, 5, 3, style_dim=8, upsample=upsample)
    x, w = torch.randn(3, 6, 8, 8, requires_grad=True), torch.randn(3, 8)
    with torch.no_grad():
        s = conv.modulation(w)  # [N, I]
        weight = conv.weight[0] * conv.scale  # [O, I, k, k]
        w_mod = weight[None] * s[:, None, :, None, None]  # [N, O, I, k, k]
        w_mod = w_mod * torch.rsqrt(w_mod.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        if upsample:
            y = torch.cat(
                [F.conv_transpose2d(x[i : i + 1], w_mod[i].transpose(0, 1), stride=2) for i in range(3)]
            )
            y = conv.blur(y)
        else:
            y = torch.cat([F.conv2d(x[i : i + 1], w_mod[i], padding=1) for i in range(3)])
    outs, grads = [], []
    for fused in (True, False):
        conv.fused = fused
        out = conv(x, w)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([x.grad.clone(), conv.weight.grad.clone(), conv.modulation.weight.grad.clone()])
        x.grad, conv.weight.grad, conv.modulation.weight.grad = None, None, None
    for out in outs:
        torch.testing.assert_close(out, y, rtol=1e-4, atol=1e-5)
    for g_fused, g_unfused in zip(*grads):
        torch.testing.assert_close(g_fused, g_unfused, rtol=1e-4, atol=1e-5)


def test_discriminator_shape_and_mbstd():
    D = Discriminator(32, channel_max=32)
    assert D(torch.randn(8, 3, 32, 32)).shape == (8, 1)
    assert D(torch.randn(3, 3, 32, 32)).shape == (3, 1)  # group = min(batch, 4)
    with pytest.raises(ValueError, match="divisible"):
        D(torch.randn(6, 3, 32, 32))
    with pytest.raises(ValueError, match=r"images: expected shape \[\*, 3, 32, 32\]"):
        D(torch.randn(4, 3, 64, 64))


def test_r1_and_path_length_second_derivatives_reach_weights():
    G, D = tiny_generator().train(), Discriminator(32, channel_max=32)
    real = torch.randn(4, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    grad.pow(2).sum().backward()
    assert D.convs[1].conv1[0].weight.grad.abs().sum() > 0
    assert D.convs[1].conv2[1].weight.grad.abs().sum() > 0

    w = G.broadcast(G.mapping(torch.randn(2, 32))).detach().requires_grad_(True)
    img = G.synthesis(w, noise_mode="random")
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (gw,) = torch.autograd.grad((img * noise).sum(), w, create_graph=True)
    gw.pow(2).sum(2).mean(1).sqrt().mean().backward()
    assert G.convs[0].conv.weight.grad.abs().sum() > 0
    assert G.convs[-1].conv.modulation.weight.grad.abs().sum() > 0


def test_feature_hook_sees_every_resolution_and_can_replace_features(tiny_generator):
    torch.manual_seed(0)
    G = tiny_generator()
    w = G.mapping(torch.randn(2, 16))
    seen = []
    same = G.synthesis(w, feature_hook=lambda res, x: seen.append(res) or x)
    assert seen == [4, 8, 16, 32]
    torch.testing.assert_close(same, G.synthesis(w))
    f = torch.randn(2, G.channels[16], 16, 16)
    hooked = G.synthesis(w, feature_hook=lambda res, x: f if res == 16 else x)
    torch.testing.assert_close(hooked, G.synthesis(w, f=f, f_res=16))
    assert not torch.allclose(hooked, same)
