"""Released pSp / e4e / CLCAE checkpoints: the architectures of ganinv.models.official against the released
layouts, ganinv.official_checkpoints (recognition, strict loading, errors) and invert(encoder=<file>).

The released layouts are written out below from a reading of the released code (pSp's helpers.py and
psp_encoders.py, e4e's psp_encoders.py, CLCAE's psp_encoders.py and transformer.py), independently of the
classes under test. Fake checkpoints use them narrow (stage widths 16/16/32/32, codes of 32) with a 32 px
decoder (8 styles), so the forward passes run in well under a second; the 1024 px layouts (18 styles, 512-d)
are compared with the architecture built on the meta device.
"""

import argparse
import math
import pathlib
import warnings

import pytest
import torch

from ganinv.checkpoints import CheckpointError, load_generator, save_generator
from ganinv.data.images import save_image
from ganinv.inversion import invert, invert_files
from ganinv.models.official import OfficialConfig, OfficialEncoder, ReleaseCrossAttention
from ganinv.models.stylegan2 import Generator
from ganinv.official_checkpoints import is_official_checkpoint, load_encoder, load_official

pytestmark = pytest.mark.usefixtures("one_thread")

NARROW = dict(widths=(16, 16, 32, 32), style_dim=32, ffn_dim=64)
G_SIZE = 32  # 8 styles

# -- the released layouts, key -> shape ----------------------------------------------------------------------


def _bn(prefix, c):
    shapes = {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
    return {**shapes, f"{prefix}.num_batches_tracked": ()}


def _trunk(widths, input_nc=3):
    """pSp's input_layer + body of bottleneck_IR_SE units (get_blocks(50): 3, 4, 14, 3) + latlayer1/2."""
    out = {"input_layer.0.weight": (widths[0], input_nc, 3, 3), **_bn("input_layer.1", widths[0])}
    out["input_layer.2.weight"] = (widths[0],)
    i, cin = 0, widths[0]
    for depth, units in zip(widths, (3, 4, 14, 3)):
        for u in range(units):
            c_in, p = (cin if u == 0 else depth), f"body.{i}"
            if c_in != depth:
                out[f"{p}.shortcut_layer.0.weight"] = (depth, c_in, 1, 1)
                out.update(_bn(f"{p}.shortcut_layer.1", depth))
            out.update(_bn(f"{p}.res_layer.0", c_in))
            out[f"{p}.res_layer.1.weight"] = (depth, c_in, 3, 3)
            out[f"{p}.res_layer.2.weight"] = (depth,)
            out[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
            out.update(_bn(f"{p}.res_layer.4", depth))
            out[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            out[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            i += 1
        cin = depth
    for name, c_in in (("latlayer1", widths[2]), ("latlayer2", widths[1])):
        out[f"{name}.weight"], out[f"{name}.bias"] = (widths[3], c_in, 1, 1), (widths[3],)
    return out


def _style_block(prefix, in_c, out_c, spatial):
    """GradualStyleBlock: log2(spatial) stride-2 convs (with bias) and an EqualLinear."""
    out = {}
    for j in range(int(math.log2(spatial))):
        out[f"{prefix}.convs.{2 * j}.weight"] = (out_c, in_c if j == 0 else out_c, 3, 3)
        out[f"{prefix}.convs.{2 * j}.bias"] = (out_c,)
    return {**out, f"{prefix}.linear.weight": (out_c, out_c), f"{prefix}.linear.bias": (out_c,)}


def _cross_attention(prefix, d, ff):
    out = {
        f"{prefix}.multihead_attn.in_proj_weight": (3 * d, d),
        f"{prefix}.multihead_attn.in_proj_bias": (3 * d,),
        f"{prefix}.multihead_attn.out_proj.weight": (d, d),
        f"{prefix}.multihead_attn.out_proj.bias": (d,),
        f"{prefix}.linear1.weight": (ff, d),
        f"{prefix}.linear1.bias": (ff,),
        f"{prefix}.linear2.weight": (d, ff),
        f"{prefix}.linear2.bias": (d,),
    }
    for n in ("norm1", "norm2", "norm3"):
        out[f"{prefix}.{n}.weight"] = out[f"{prefix}.{n}.bias"] = (d,)
    return out


def released_layout(kind, n_styles=18, widths=(64, 128, 256, 512), style_dim=512, ffn_dim=1024, **clcae):
    """Key -> shape of the released ``encoder.*`` state dict (prefix stripped)."""
    out, c = _trunk(widths), widths[3]
    if kind in ("psp", "e4e"):  # GradualStyleEncoder / Encoder4Editing: identical modules
        for i in range(n_styles):
            out.update(_style_block(f"styles.{i}", c, style_dim, 16 if i < 3 else 32 if i < 7 else 64))
        return out
    out.update(_style_block("styles.0", c, style_dim, 16))
    for j in range(n_styles - 1):  # coarse_ind 2, middle_ind 6
        out.update(_style_block(f"styles_others.{j}", c, style_dim, 16 if j < 2 else 32 if j < 6 else 64))
    if clcae.get("w_attention", True):
        for k in range(n_styles):
            out.update(_cross_attention(f"cross_attention.{k}", style_dim, ffn_dim))
    f_branch = clcae.get("f_branch", "attention")
    if f_branch == "attention":
        for j in (0, 2):  # GradualFeatureBlock(512, 512, 64, 16)
            out[f"content_layer.convs.{j}.weight"], out[f"content_layer.convs.{j}.bias"] = (c, c, 3, 3), (c,)
        out.update(_cross_attention("feature_cross_attention", style_dim, ffn_dim))
        if clcae.get(
            "no_res"
        ):  # Decoder(512, 512, deconv_nums=6): ConvTranspose2d weights are [in, out, k, k]
            for i in range(6):
                out[f"decoder.model.{3 * i}.weight"] = (style_dim if i == 0 else c, c, 3, 3)
                out.update(_bn(f"decoder.model.{3 * i + 1}", c))
    elif f_branch == "cnn":  # --no_feature_attention
        out["content_layer.0.weight"] = out["content_layer.3.weight"] = (c, c, 3, 3)
        out.update({**_bn("content_layer.1", c), **_bn("content_layer.4", c), "content_layer.2.weight": (c,)})
    return out


# -- fake official files ------------------------------------------------------------------------------------


def _fill(key, shape, gen):
    if key.endswith("num_batches_tracked"):
        return torch.tensor(7)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=gen) + 0.5
    if key.endswith(("norm1.weight", "norm2.weight", "norm3.weight")) or ".res_layer.0.weight" in key:
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    return 0.1 * torch.randn(shape, generator=gen)


def small_generator(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(G_SIZE, style_dim=32, n_mlp=2, channel_max=32).eval()


def fake_state(kind, seed=0, **variant):
    gen = torch.Generator().manual_seed(seed)
    layout = released_layout(kind, n_styles=8, **NARROW, **variant)
    sd = {f"encoder.{k}": _fill(k, s, gen) for k, s in layout.items()}
    sd.update({f"decoder.{k}": v for k, v in small_generator(seed).state_dict().items()})
    return sd


def write_fake(path, kind, *, opts="namespace", latent_avg=True, drop=(), sd=None, legacy=False, **variant):
    """A checkpoint as the releases save it: {"state_dict": encoder.* + decoder.*, "opts", "latent_avg"?}."""
    sd = fake_state(kind, **variant) if sd is None else sd
    for k in drop:
        del sd[k]
    values = {
        "psp": dict(encoder_type="GradualStyleEncoder", output_size=G_SIZE, start_from_latent_avg=True),
        "e4e": dict(encoder_type="Encoder4Editing", stylegan_size=G_SIZE, start_from_latent_avg=True),
        "clcae": dict(encoder_type="GradualStyleEncoder", output_size=G_SIZE, learn_in_w=True, idx_k=None),
    }[kind]
    values.update(dataset_type="ffhq_encode", device="cuda:0", lpips_lambda=0.2)
    if kind == "clcae":
        values["device"] = torch.device("cuda", 0)  # the CLCAE coach stores a torch.device in opts
    ckpt = {"state_dict": sd, "opts": argparse.Namespace(**values) if opts == "namespace" else values}
    if latent_avg and kind != "clcae":  # pSp / e4e store latent_avg.repeat(n_styles, 1); CLCAE stores none
        ckpt["latent_avg"] = (0.3 * torch.randn(32, generator=torch.Generator().manual_seed(9))).repeat(8, 1)
    if kind == "clcae":
        ckpt["iter"] = 1.0
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)  # older releases: the legacy format
    return pathlib.Path(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    return {
        "psp": write_fake(d / "psp_ffhq_encode.pt", "psp", opts="dict"),
        "e4e": write_fake(d / "e4e_ffhq_encode.pt", "e4e", legacy=True),
        "clcae": write_fake(d / "clcae_ffhq.pt", "clcae", opts="dict"),
    }


def x256(n=2, seed=1):
    return torch.rand(n, 3, 256, 256, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- architectures: the 1024 px layouts on the meta device --------------------------------------------------


CLCAE_VARIANTS = [
    {},
    dict(f_branch=None),  # --not_for_feature: the CLCAE W+ model
    dict(w_attention=False),  # --no_w_attention
    dict(f_branch="cnn"),  # --no_feature_attention
    dict(no_res=True),  # --no_res
]


@pytest.mark.parametrize("kind, variant", [("psp", {}), ("e4e", {})] + [("clcae", v) for v in CLCAE_VARIANTS])
def test_1024_architectures_have_the_released_keys_and_shapes(kind, variant):
    with torch.device("meta"):
        model = OfficialEncoder(OfficialConfig(kind, **variant))
    own = {k: tuple(v.shape) for k, v in model.net.state_dict().items()}
    want = released_layout(kind, **variant)
    assert sorted(own) == sorted(want)
    assert {k: s for k, s in own.items() if s != want[k]} == {}
    assert model.n_latent == 18 and model.style_dim == 512 and model.config.output_size == 1024


# -- loading -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["psp", "e4e", "clcae"])
def test_load_recognises_the_kind_and_loads_strictly(files, kind):
    enc = load_encoder(files[kind])
    assert isinstance(enc, OfficialEncoder) and enc.kind == kind and not enc.training
    assert enc.config.n_styles == 8 and enc.config.widths == NARROW["widths"] and enc.style_dim == 32
    stored = torch.load(files[kind], weights_only=False)
    for k, v in enc.net.state_dict().items():
        assert torch.equal(v, stored["state_dict"][f"encoder.{k}"]), k
    assert enc.opts["output_size" if kind != "e4e" else "stylegan_size"] == G_SIZE
    if kind == "clcae":
        assert enc.averages_missing() == ["latent_avg", "image_avg"] and enc.has_f
    else:
        torch.testing.assert_close(enc.latent_avg, stored["latent_avg"])
    assert is_official_checkpoint(files[kind])
    G = load_generator(files[kind])  # the same file's decoder.*
    assert G.n_latent == enc.n_latent and G.style_dim == 32


@pytest.mark.parametrize("kind", ["psp", "e4e", "clcae"])
def test_codes_at_256_px(files, kind):
    enc, G = load_official(files[kind]) if kind != "clcae" else _clcae_with_avg(files)
    with torch.no_grad():
        codes = enc.encode(x256())
    assert codes.w_plus.shape == (2, 8, 32) and torch.isfinite(codes.w_plus).all()
    if kind == "psp":
        assert codes.w is None and codes.f is None
        torch.testing.assert_close(codes.w_plus, enc.net(x256()) + enc.latent_avg)  # start_from_latent_avg
    if kind == "e4e":  # w from styles.0, the same on every layer, plus deltas from layer 1 on
        w0, deltas = enc.net.encode(x256())
        torch.testing.assert_close(codes.w, w0 + enc.latent_avg[0])
        torch.testing.assert_close(codes.w_plus[:, 0], codes.w)
        assert deltas[:, 1:].abs().sum() > 0
    if kind == "clcae":
        assert codes.w.shape == (2, 32) and codes.f.shape == (2, 32, 16, 16)
        offsets, w_off, _ = enc.net(x256() - enc.image_avg)  # mean-centred input, w = latent_avg + w_off
        torch.testing.assert_close(codes.w, w_off + enc.latent_avg[0])
        torch.testing.assert_close(codes.w_plus, codes.w[:, None] + offsets)
    image = enc.render(G, codes, "f" if kind == "clcae" else "w_plus")
    assert image.shape == (2, 3, G_SIZE, G_SIZE) and torch.isfinite(image).all()


def _clcae_with_avg(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_official(files["clcae"])


def test_clcae_averages(files):
    with pytest.warns(UserWarning, match="no latent_avg"):
        enc, G = load_official(files["clcae"])
    torch.testing.assert_close(enc.latent_avg[0], G.mean_latent())  # G's own estimate
    want = G.synthesis(G.mean_latent()[None]).clamp(-1, 1)  # G(latent_avg), resized to 256
    want = torch.nn.functional.interpolate(want, size=(256, 256), mode="bilinear", antialias=True)
    torch.testing.assert_close(enc.image_avg, want)
    given = torch.full((32,), 0.25)
    enc2 = load_encoder(files["clcae"], latent_avg=given, image_avg=torch.zeros(3, 256, 256))
    assert enc2.averages_missing() == [] and torch.equal(enc2.latent_avg, given.expand(8, 32))


def test_cross_attention_over_one_token_is_a_linear_map():
    """Quirk 1: with one key, t = norm2(q + out_proj(v_proj(kv))), whatever the query."""
    torch.manual_seed(2)
    blk = ReleaseCrossAttention(32, 4, 64).eval()
    q, kv = torch.randn(1, 3, 32), torch.randn(1, 3, 32)
    a = blk.multihead_attn
    v = kv @ a.in_proj_weight[64:].T + a.in_proj_bias[64:]
    t = blk.norm2(q + a.out_proj(v))
    want = blk.norm3(t + blk.linear2(torch.relu(blk.linear1(t))))
    torch.testing.assert_close(blk(q, kv), want)


def test_f_replaces_the_feature_after_the_16px_torgb_as_released():
    """The release's insert_feature(out, 5): the 16x16 ToRGB sees G's own feature, the 32x32 block reads f."""
    G = small_generator()
    torch.manual_seed(3)
    w, f = torch.randn(2, G.n_latent, 32), torch.randn(2, 32, 16, 16)
    noise = G.make_noise(2, "const")
    x = G.conv1(G.input(2), w[:, 0], noise[0])
    img = G.to_rgb1(x, w[:, 1])
    for k, to_rgb in enumerate(G.to_rgbs):
        i = 2 * k + 1
        if x.shape[-1] == 16:
            x = f
        x = G.convs[2 * k + 1](G.convs[2 * k](x, w[:, i], noise[i]), w[:, i + 1], noise[i + 1])
        img = to_rgb(x, w[:, i + 2], img)
    torch.testing.assert_close(G.synthesis(w, f=f, f_res=16, f_before_rgb=False), img)
    assert not torch.allclose(G.synthesis(w, f=f, f_res=16), img)  # ganinv's own placement differs


# -- invert(encoder=<file>) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["psp", "e4e", "clcae-w", "clcae-w+", "clcae-f"])
def test_invert_with_official_files(files, method):
    path = files[method.split("-")[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CLCAE: latent_avg from G
        res = invert(x256(), method=method, generator=str(path), encoder=str(path), device="cpu")
        default = invert(x256(), method=method, generator=str(path), device="cpu")  # encoder = the same file
    assert res.method == method and res.image.shape == (2, 3, G_SIZE, G_SIZE) and res.seconds > 0
    torch.testing.assert_close(res.image, default.image)
    assert (res.w is None) == (method == "psp")
    assert (res.w_plus is None) == (method == "clcae-w")
    assert (res.f is not None) == (method == "clcae-f") and res.f_before_rgb == (method != "clcae-f")
    G = load_generator(path)
    torch.testing.assert_close(res.synthesize(G), res.image)  # re-rendered the released way
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = invert(x256()[:, :, ::8, ::8], method=method, generator=G, encoder=str(path))  # 32 px input
    assert small.image.shape == (2, 3, G_SIZE, G_SIZE)


def test_invert_files_with_an_official_generator_file(files, tmp_path):
    photo = save_image(x256(1)[0, :, ::4, ::4], tmp_path / "face.png")  # 64 px, resized to 256
    written = invert_files(
        [photo], tmp_path / "out", method="e4e", generator=str(files["e4e"]), log=lambda s: None
    )
    saved = torch.load(written[1], weights_only=True)
    assert saved["w_plus"].shape == (1, 8, 32) and saved["f_before_rgb"] is True


def test_method_and_layout_mismatches(files, tmp_path):
    with pytest.raises(ValueError, match="released e4e encoder; use method 'e4e'"):
        invert(x256(), method="psp", generator=str(files["e4e"]), encoder=str(files["e4e"]))
    wplus_only = write_fake(tmp_path / "clcae_wplus.pt", "clcae", f_branch=None)
    with pytest.raises(ValueError, match="no F branch"):
        invert(x256(), method="clcae-f", generator=str(wplus_only), encoder=str(wplus_only))
    with pytest.raises(ValueError, match="trained for a 32px generator"):
        invert(
            x256(),
            method="psp",
            generator=Generator(64, style_dim=32, n_mlp=1, channel_max=32),
            encoder=str(files["psp"]),
        )
    with pytest.raises(CheckpointError, match="holds a released psp encoder, not e4e"):
        load_encoder(files["psp"], kind="e4e")


# -- errors --------------------------------------------------------------------------------------------------


def test_unknown_layouts_are_refused_naming_what_was_found(tmp_path):
    G = small_generator()
    save_generator(tmp_path / "ganinv.pt", G)
    assert not is_official_checkpoint(tmp_path / "ganinv.pt")
    with pytest.raises(CheckpointError, match="a ganinv-format 'generator' checkpoint, not a released"):
        load_encoder(tmp_path / "ganinv.pt")
    torch.save({"state_dict": {"net.conv.weight": torch.zeros(1)}, "opts": {}}, tmp_path / "other.pt")
    with pytest.raises(
        CheckpointError, match=r"no encoder.input_layer.0.weight \(state_dict holds net \(1\)"
    ):
        load_encoder(tmp_path / "other.pt")
    stage1 = {k: v for k, v in fake_state("psp").items() if not k.startswith(("decoder.", "encoder.styles."))}
    stage1.update({"image_projection.linear1.weight": torch.zeros(2, 2), "logit_scale": torch.tensor(2.6)})
    torch.save({"state_dict": stage1, "opts": {}}, tmp_path / "stage1.pt")
    with pytest.raises(CheckpointError, match="CLCAE stage-1 \\(contrastive\\) checkpoint"):
        load_encoder(tmp_path / "stage1.pt")
    no_heads = {k: v for k, v in fake_state("psp").items() if not k.startswith("encoder.styles.")}
    write_fake(tmp_path / "no_heads.pt", "psp", sd=no_heads)
    with pytest.raises(CheckpointError, match="unknown encoder layout"):
        load_encoder(tmp_path / "no_heads.pt")


def test_missing_keys_and_inconsistent_files_are_refused(tmp_path):
    write_fake(tmp_path / "missing.pt", "psp", drop=["encoder.styles.5.convs.2.bias"])
    with pytest.raises(CheckpointError, match=r"missing keys: styles\.5\.convs\.2\.bias"):
        load_encoder(tmp_path / "missing.pt")
    write_fake(tmp_path / "trunk.pt", "e4e", drop=["encoder.body.7.res_layer.1.weight"])
    with pytest.raises(CheckpointError, match="23 residual units"):
        load_encoder(tmp_path / "trunk.pt")
    sd = fake_state("psp")
    sd["encoder.styles.8.linear.weight"] = torch.zeros(32, 32)  # a ninth head for an 8-style decoder
    write_fake(tmp_path / "heads.pt", "psp", sd=sd)
    with pytest.raises(CheckpointError, match="9 style heads, but opts.output_size = 32 needs 8"):
        load_encoder(tmp_path / "heads.pt")
    torch.save({"state_dict": fake_state("e4e"), "opts": {}}, tmp_path / "no_opts.pt")
    with pytest.raises(CheckpointError, match="pass kind='psp' or kind='e4e'"):
        load_encoder(tmp_path / "no_opts.pt")
    assert load_encoder(tmp_path / "no_opts.pt", kind="e4e").kind == "e4e"
    ckpt = {"state_dict": fake_state("psp"), "opts": {"exp_dir": pathlib.PurePosixPath("/runs/psp")}}
    torch.save(ckpt, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_encoder(tmp_path / "unsafe.pt")


def test_cli_invert_takes_the_released_clcae_averages(files, tmp_path, recwarn):
    from ganinv.checkpoints import save_generator
    from ganinv.cli import main

    G = small_generator(0)
    G.get_w_avg()
    save_generator(tmp_path / "stylegan.pt", G)  # the StyleGAN2 file whose w_avg the release used
    photo = save_image(x256(1)[0, :, ::4, ::4], tmp_path / "face.png")
    main(["invert", str(photo), "--method", "clcae-w+", "--generator", str(files["clcae"]), "--latent-avg",
          str(tmp_path / "stylegan.pt"), "--out", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert not [w for w in recwarn if "no latent_avg" in str(w.message)]  # given, not estimated
    assert torch.load(tmp_path / "out" / "face.pt", weights_only=True)["w_plus"].shape == (1, 8, 32)
