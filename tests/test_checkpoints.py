"""Checkpoint saving/loading: ganinv format, rosinality / pSp layouts, NVIDIA pickles (built here without
NVIDIA code), safety of the pickle reader and error messages. Every file is written by the tests."""

from __future__ import annotations

import argparse
import builtins
import os
import pickle
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ganinv import checkpoints as ckpt
from ganinv.checkpoints import (
    CheckpointError,
    infer_discriminator_config,
    infer_generator_config,
    load_checkpoint,
    load_discriminator,
    load_generator,
    load_nvidia_pickle,
    save_checkpoint,
    save_discriminator,
    save_generator,
)
from ganinv.models.stylegan2 import Discriminator, Generator

TINY_G = dict(size=32, style_dim=32, n_mlp=2, channel_max=32)


def perturb(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Make zero/one-initialised parameters (noise strengths, biases) non-trivial so mistakes show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name or "noise" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def make_g(seed: int = 0, **kw) -> Generator:
    torch.manual_seed(seed)
    return perturb(Generator(**{**TINY_G, **kw}), seed + 1).eval()


def make_d(seed: int = 0, **kw) -> Discriminator:
    torch.manual_seed(seed)
    return perturb(Discriminator(**{"size": 32, "channel_max": 32, **kw}), seed + 1).eval()


@torch.no_grad()
def images(G: Generator, n: int = 2) -> torch.Tensor:
    z = torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(123))
    return G(z, noise_mode="const")


@torch.no_grad()
def logits(D: Discriminator, size: int) -> torch.Tensor:
    return D(torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(7)))


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------------------------------------------
# ganinv format


def test_ganinv_round_trip(tmp_path):
    G = make_g()
    G.w_avg.copy_(G.mean_latent(64))
    path = tmp_path / "g.pt"
    save_generator(path, G, step=7, metrics={"fid": 12.5})
    H = load_generator(path)
    assert not H.training and H.config == G.config
    assert_same_state(H.state_dict(), G.state_dict())
    assert torch.equal(H.w_avg, G.w_avg)
    assert torch.equal(images(H), images(G))
    raw = load_checkpoint(path, kind="generator")
    assert (
        raw["format"] == "ganinv"
        and raw["version"] == 1
        and raw["step"] == 7
        and raw["metrics"]["fid"] == 12.5
    )
    # readable by a plain weights_only load
    assert torch.load(path, weights_only=True)["kind"] == "generator"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt"]


def test_ganinv_half(tmp_path):
    G = make_g()
    save_generator(tmp_path / "full.pt", G)
    save_generator(tmp_path / "half.pt", G, half=True)
    raw = load_checkpoint(tmp_path / "half.pt")
    assert raw["state_dict"]["conv1.conv.weight"].dtype == torch.float16
    assert "latent_avg" not in raw  # w_avg unknown (NaN) is not stored
    assert (tmp_path / "half.pt").stat().st_size < 0.7 * (tmp_path / "full.pt").stat().st_size
    H = load_generator(tmp_path / "half.pt")
    assert H.conv1.conv.weight.dtype == torch.float32 and torch.isnan(H.w_avg).all()
    a, b = images(G), images(H)
    assert not torch.equal(a, b)
    assert (a - b).abs().max() < 2e-2 * a.abs().max()


def test_discriminator_round_trip(tmp_path):
    D = make_d(stddev_group=2)
    save_discriminator(tmp_path / "d.pt", D)
    E = load_discriminator(tmp_path / "d.pt")
    assert E.config == D.config and not E.training
    assert torch.equal(logits(E, 32), logits(D, 32))


def test_atomic_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "g.pt"
    G = make_g()
    save_generator(path, G)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_generator(path, make_g(seed=5))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt"]
    monkeypatch.undo()
    assert torch.equal(images(load_generator(path)), images(G))


def test_save_checkpoint_validation(tmp_path):
    sd = {"w": torch.ones(2)}
    with pytest.raises(TypeError, match=r"extra\['bad'\]"):
        save_checkpoint(tmp_path / "x.pt", "sfn", {}, sd, bad=object())
    with pytest.raises(TypeError, match="Namespace"):
        save_checkpoint(tmp_path / "x.pt", "sfn", {}, sd, opts={"a": argparse.Namespace(x=1)})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", "sfn", {}, sd, format="other")
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "x.pt", "not a kind!", {}, sd)
    assert not list(tmp_path.iterdir())
    save_checkpoint(
        tmp_path / "sub" / "x.pt",
        "clcae_encoder",
        {"depth": 3},
        sd,
        step=1,
        t=torch.zeros(3),
        names=["a", "b"],
        nested={"k": (1, 2.0, None)},
    )
    raw = load_checkpoint(tmp_path / "sub" / "x.pt", kind="clcae_encoder")
    assert (
        raw["config"] == {"depth": 3} and raw["names"] == ["a", "b"] and raw["nested"]["k"] == (1, 2.0, None)
    )
    assert torch.equal(raw["state_dict"]["w"], sd["w"])


# ---------------------------------------------------------------------------------------------------------
# rosinality / pSp layouts


@pytest.mark.parametrize("size", [64, 256, pytest.param(1024, marks=pytest.mark.slow)])
def test_rosinality_default_config(tmp_path, size):
    torch.manual_seed(size)
    G, D = Generator(size), Discriminator(size)
    latent = torch.randn(512)
    path = tmp_path / f"{size}.pt"
    torch.save(
        {
            "g": G.state_dict(),
            "d": D.state_dict(),
            "g_ema": G.state_dict(),
            "latent_avg": latent,
            "args": argparse.Namespace(size=size, channel_multiplier=2),
            "ada_aug_p": 0.1,
            "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99)}]},
        },
        path,
    )
    assert infer_generator_config(G.state_dict()) == G.config
    assert infer_discriminator_config(D.state_dict()) == D.config
    H = load_generator(path)
    assert H.config == G.config and torch.equal(H.w_avg, latent)
    assert_same_state(H.state_dict(), G.state_dict())
    del H
    E = load_discriminator(path)
    assert E.config == D.config
    assert_same_state(E.state_dict(), D.state_dict())


@pytest.mark.parametrize(
    "kw",
    [
        dict(size=64, style_dim=64, n_mlp=3, channel_multiplier=1, channel_max=512),  # rosinality cm=1
        dict(size=256, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=128),
        dict(size=128, style_dim=32, n_mlp=4, channel_multiplier=0.5, channel_max=256),
        dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, channel_max=48),
    ],
)
def test_rosinality_other_channel_tables(tmp_path, kw):
    G = make_g(**kw)
    D = make_d(
        size=kw["size"], channel_multiplier=kw["channel_multiplier"], channel_max=kw.get("channel_max", 512)
    )
    torch.save({"g_ema": G.state_dict(), "d": D.state_dict()}, tmp_path / "r.pt")
    H = load_generator(tmp_path / "r.pt")
    assert H.config == G.config
    assert_same_state(H.state_dict(), G.state_dict())
    assert torch.isnan(H.w_avg).all()
    E = load_discriminator(tmp_path / "r.pt")
    assert E.config == D.config
    assert_same_state(E.state_dict(), D.state_dict())


def test_psp_style_decoder(tmp_path):
    G = make_g()
    w = torch.randn(32)
    sd = {
        "encoder.body.0.weight": torch.randn(4, 3),
        **{f"decoder.{k}": v for k, v in G.state_dict().items()},
    }
    torch.save(
        {
            "state_dict": sd,
            "opts": {"stylegan_size": 32, "encoder_type": "GradualStyleEncoder"},
            "latent_avg": w.repeat(G.n_latent, 1),
        },
        tmp_path / "psp.pt",
    )
    H = load_generator(tmp_path / "psp.pt")
    assert_same_state(H.state_dict(), G.state_dict())
    assert torch.equal(H.w_avg, w)
    assert torch.equal(images(H), images(G))
    with pytest.raises(CheckpointError, match="psp.pt.*no discriminator weights"):
        load_discriminator(tmp_path / "psp.pt")


def test_bare_state_dict_and_missing_noise(tmp_path):
    G = make_g()
    sd = {k: v for k, v in G.state_dict().items() if not k.startswith("noises.")}
    sd["to_rgb1.upsample.kernel"] = torch.ones(4, 4)  # stray kernel buffer: tolerated
    torch.save(sd, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="noise buffers missing"):
        H = load_generator(tmp_path / "old.pt")
    ref = G.state_dict()
    for k, v in H.state_dict().items():
        assert torch.equal(v, ref[k]) != k.startswith("noises."), k
    assert torch.allclose(H(torch.zeros(1, 32), noise_mode="none"), G(torch.zeros(1, 32), noise_mode="none"))


def test_unknown_extra_key_is_an_error(tmp_path):
    sd = dict(make_g().state_dict(), **{"extra_head.weight": torch.ones(2)})
    torch.save({"g_ema": sd}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x\.pt.*unexpected keys: extra_head\.weight"):
        load_generator(tmp_path / "x.pt")


def test_unsupported_channel_table(tmp_path):
    sd = make_g().state_dict()
    sd["convs.0.conv.weight"] = torch.zeros(1, 48, 32, 3, 3)  # 32, 48, 32, 32: not min(cmax, base // res)
    torch.save({"g_ema": sd}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x\.pt: unsupported channel table"):
        load_generator(tmp_path / "x.pt")


def test_non_default_blur_kernel_round_trips(tmp_path):
    G = make_g(blur_kernel=[1, 2, 1])
    torch.save({"g_ema": G.state_dict()}, tmp_path / "b.pt")
    H = load_generator(tmp_path / "b.pt")
    assert H.config["blur_kernel"] == pytest.approx([0.25, 0.5, 0.25])
    assert torch.allclose(images(H), images(G), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# NVIDIA pickles, built without NVIDIA code


def _fake_reconstruct(meta):  # only referenced by name while pickling
    raise AssertionError("never called")


_fake_reconstruct.__module__, _fake_reconstruct.__qualname__ = (
    "torch_utils.persistence",
    "_reconstruct_persistent_obj",
)
_fake_reconstruct.__name__ = "_reconstruct_persistent_obj"


class FakeEasyDict(dict):
    pass


FakeEasyDict.__module__, FakeEasyDict.__qualname__, FakeEasyDict.__name__ = (
    "dnnlib.util",
    "EasyDict",
    "EasyDict",
)


class FakePersistent:
    """Pickles like an NVIDIA persistent_class instance: (_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, class_name, state, module_src="# NVIDIA module source would be here\n"):
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def __reduce__(self):
        meta = dict(
            type="class", version=6, module_src=self.module_src, class_name=self.class_name, state=self.state
        )
        return (_fake_reconstruct, (meta,))


FAKE_MODULES = (
    "torch_utils",
    "torch_utils.persistence",
    "dnnlib",
    "dnnlib.util",
    "dnnlib.tflib",
    "dnnlib.tflib.network",
)


def dump_with_fake_modules(obj, path: Path) -> None:
    """pickle.dump with fake torch_utils / dnnlib importable, then remove them again."""
    mods = {name: types.ModuleType(name) for name in FAKE_MODULES}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _fake_reconstruct
    mods["dnnlib.util"].EasyDict = FakeEasyDict
    mods["dnnlib.tflib.network"].Network = FakeTFNetwork
    assert not any(name in sys.modules for name in mods)
    sys.modules.update(mods)
    try:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    finally:
        for name in mods:
            del sys.modules[name]


def to_nvidia_g(G: Generator) -> dict:
    """Inverse of the loader's mapping (docs/stylegan2.md §2.4): our generator -> NVIDIA names."""
    sd, nv = G.state_dict(), {}
    filt = G.convs[0].conv.blur.kernel / 4
    for i in range(G.n_mlp):
        nv[f"mapping.fc{i}.weight"], nv[f"mapping.fc{i}.bias"] = (
            sd[f"style.{i + 1}.weight"],
            sd[f"style.{i + 1}.bias"],
        )
    nv["mapping.w_avg"] = G.w_avg.clone()
    nv["synthesis.b4.const"] = sd["input.input"][0]

    def layer(src, dst, noise, res):
        nv[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        nv[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        nv[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"][0]
        nv[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        nv[f"{dst}.noise_const"] = sd[f"noises.noise_{noise}"][0, 0]
        nv[f"{dst}.resample_filter"] = filt

    def torgb(src, dst):
        nv[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        nv[f"{dst}.bias"] = sd[f"{src}.bias"].flatten()
        nv[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]

    layer("conv1", "synthesis.b4.conv1", 0, 4)
    torgb("to_rgb1", "synthesis.b4.torgb")
    nv["synthesis.b4.resample_filter"] = filt
    for k in range(G.log_size - 2):
        r = 2 ** (k + 3)
        layer(f"convs.{2 * k}", f"synthesis.b{r}.conv0", 2 * k + 1, r)
        layer(f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", 2 * k + 2, r)
        torgb(f"to_rgbs.{k}", f"synthesis.b{r}.torgb")
        nv[f"synthesis.b{r}.resample_filter"] = filt
    return nv


def to_nvidia_d(D: Discriminator) -> dict:
    sd, nv, size = D.state_dict(), {}, D.size
    filt = sd["convs.1.conv2.0.kernel"]
    nv[f"b{size}.fromrgb.weight"], nv[f"b{size}.fromrgb.bias"] = sd["convs.0.0.weight"], sd["convs.0.1.bias"]
    nv[f"b{size}.fromrgb.resample_filter"] = filt
    j, r = 1, size
    while r > 4:
        nv[f"b{r}.conv0.weight"], nv[f"b{r}.conv0.bias"] = (
            sd[f"convs.{j}.conv1.0.weight"],
            sd[f"convs.{j}.conv1.1.bias"],
        )
        nv[f"b{r}.conv1.weight"], nv[f"b{r}.conv1.bias"] = (
            sd[f"convs.{j}.conv2.1.weight"],
            sd[f"convs.{j}.conv2.2.bias"],
        )
        nv[f"b{r}.skip.weight"] = sd[f"convs.{j}.skip.1.weight"]
        for name in ("conv0", "conv1", "skip"):
            nv[f"b{r}.{name}.resample_filter"] = filt
        nv[f"b{r}.resample_filter"] = filt
        j, r = j + 1, r // 2
    nv["b4.conv.weight"], nv["b4.conv.bias"] = sd["final_conv.0.weight"], sd["final_conv.1.bias"]
    nv["b4.conv.resample_filter"] = filt
    nv["b4.fc.weight"], nv["b4.fc.bias"] = sd["final_linear.0.weight"], sd["final_linear.0.bias"]
    nv["b4.out.weight"], nv["b4.out.bias"] = sd["final_linear.1.weight"], sd["final_linear.1.bias"]
    return nv


BUFFERS = ("w_avg", "noise_const", "resample_filter")


def nest(flat: dict, class_name: str, init_kwargs: dict, module_src: str = "# source\n") -> FakePersistent:
    """Flat NVIDIA state dict -> tree of FakePersistent modules with _parameters/_buffers/_modules."""

    def build(items: dict, name: str, kwargs: dict) -> FakePersistent:
        state = {
            "training": False,
            "_parameters": {},
            "_buffers": {},
            "_non_persistent_buffers_set": set(),
            "_modules": {},
            "_init_args": (),
            "_init_kwargs": FakeEasyDict(kwargs),
            "weight_gain": np.float64(0.125),
        }
        children: dict[str, dict] = {}
        for key, t in items.items():
            head, _, rest = key.partition(".")
            if rest:
                children.setdefault(head, {})[rest] = t
            elif head in BUFFERS:
                state["_buffers"][head] = t.clone()
            else:
                state["_parameters"][head] = torch.nn.Parameter(t.clone(), requires_grad=False)
        for child, sub in children.items():
            state["_modules"][child] = build(sub, "training.networks.Layer", {})
        return FakePersistent(name, state, module_src)

    return build(flat, class_name, init_kwargs)


def g_kwargs(G: Generator, **synthesis) -> dict:
    syn = FakeEasyDict(
        channel_base=int(16384 * G.channel_multiplier),
        channel_max=G.channel_max,
        num_fp16_res=4,
        conv_clamp=256,
        architecture="skip",
        **synthesis,
    )
    return dict(
        z_dim=G.style_dim,
        c_dim=0,
        w_dim=G.style_dim,
        img_resolution=G.size,
        img_channels=3,
        mapping_kwargs=FakeEasyDict(num_layers=G.n_mlp),
        synthesis_kwargs=syn,
    )


def d_kwargs(D: Discriminator, **kw) -> dict:
    return dict(
        c_dim=0,
        img_resolution=D.size,
        img_channels=3,
        architecture="resnet",
        channel_base=int(16384 * D.channel_multiplier),
        channel_max=D.channel_max,
        num_fp16_res=4,
        conv_clamp=256,
        block_kwargs=FakeEasyDict(),
        mapping_kwargs=FakeEasyDict(),
        epilogue_kwargs=FakeEasyDict(mbstd_group_size=D.stddev_group),
        **kw,
    )


def nvidia_snapshot(G, D, G_raw=None, g_kw=None, d_kw=None, g_extra=None, module_src="# source\n"):
    g_kw = g_kwargs(G) if g_kw is None else g_kw
    d_kw = d_kwargs(D) if d_kw is None else d_kw
    g_flat = {**to_nvidia_g(G), **(g_extra or {})}
    return {
        "G": nest(to_nvidia_g(G_raw or G), "training.networks.Generator", g_kw, module_src),
        "D": nest(to_nvidia_d(D), "training.networks.Discriminator", d_kw, module_src),
        "G_ema": nest(g_flat, "training.networks.Generator", g_kw, module_src),
        "augment_pipe": None,
        "training_set_kwargs": FakeEasyDict(path="~/data/faces.zip", use_labels=False, resolution=G.size),
    }


@pytest.mark.parametrize("size,cm", [(32, 2), (64, 1)])
def test_nvidia_pickle_round_trip(tmp_path, size, cm):
    G = make_g(size=size, channel_multiplier=cm)
    G.w_avg.copy_(torch.randn(32))
    G_raw = make_g(seed=3, size=size, channel_multiplier=cm)
    D = make_d(size=size, channel_multiplier=cm, stddev_group=2)
    path = tmp_path / "network-snapshot-000100.pkl"
    dump_with_fake_modules(nvidia_snapshot(G, D, G_raw), path)
    assert not any(m in sys.modules for m in ("torch_utils", "dnnlib", "training"))

    nets = load_nvidia_pickle(path)
    assert set(nets) == {"G_ema", "G", "D"}
    assert nets["G_ema"]["config"] == G.config and nets["D"]["config"] == D.config
    assert_same_state(nets["G_ema"]["state_dict"], G.state_dict())
    assert_same_state(nets["G"]["state_dict"], G_raw.state_dict())
    assert_same_state(nets["D"]["state_dict"], D.state_dict())
    assert torch.equal(nets["G_ema"]["w_avg"], G.w_avg) and nets["D"]["w_avg"] is None

    H = load_generator(path)
    assert torch.equal(H.w_avg, G.w_avg)
    assert torch.equal(images(H), images(G))
    E = load_discriminator(path)
    assert E.stddev_group == 2
    assert torch.equal(logits(E, size), logits(D, size))
    assert not any(m in sys.modules for m in ("torch_utils", "dnnlib", "training"))


def test_nvidia_stylegan3_repo_flattened_kwargs(tmp_path):
    G = make_g(channel_multiplier=1)  # all 32 channels: only channel_base tells cm = 1 from cm = 2
    kw = g_kwargs(G)
    kw.update(kw.pop("synthesis_kwargs"))  # stylegan3's networks_stylegan2: synthesis kwargs at top level
    D = make_d()
    dump_with_fake_modules(nvidia_snapshot(G, D, g_kw=kw), tmp_path / "sg3.pkl")
    H = load_generator(tmp_path / "sg3.pkl")
    assert H.config == G.config and torch.equal(images(H), images(G))


def test_nvidia_without_init_kwargs(tmp_path):
    G, D = make_g(), make_d()
    G.w_avg.copy_(torch.randn(32))
    snap = nvidia_snapshot(G, D)
    for name in ("G_ema", "D"):
        snap[name].state["_init_kwargs"] = None  # architecture then comes from the tensor shapes
    dump_with_fake_modules(snap, tmp_path / "bare.pkl")
    H, E = load_generator(tmp_path / "bare.pkl"), load_discriminator(tmp_path / "bare.pkl")
    assert H.config == G.config and E.config == D.config
    assert torch.equal(images(H), images(G)) and torch.equal(H.w_avg, G.w_avg)
    assert torch.equal(logits(E, 32), logits(D, 32))


def test_nvidia_missing_tensor(tmp_path):
    G, D = make_g(), make_d()
    snap = nvidia_snapshot(G, D)
    b8 = snap["G_ema"].state["_modules"]["synthesis"].state["_modules"]["b8"]
    del b8.state["_modules"]["conv0"].state["_parameters"]["weight"]
    dump_with_fake_modules(snap, tmp_path / "m.pkl")
    with pytest.raises(
        CheckpointError, match=r"m\.pkl: missing 'synthesis\.b8\.conv0\.weight' in the pickled G_ema"
    ):
        load_generator(tmp_path / "m.pkl")


def test_nvidia_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "executed.txt"
    src = (
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
        "import os\nos.environ['GANINV_PWNED'] = '1'\n"
    )
    G, D = make_g(), make_d()
    dump_with_fake_modules(nvidia_snapshot(G, D, module_src=src), tmp_path / "net.pkl")
    H = load_generator(tmp_path / "net.pkl")
    load_discriminator(tmp_path / "net.pkl")
    assert torch.equal(images(H), images(G))
    assert not marker.exists() and "GANINV_PWNED" not in os.environ


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


@pytest.mark.parametrize("which", ["os.system", "builtins.exec"])
def test_nvidia_refuses_foreign_globals(tmp_path, which):
    marker = tmp_path / "marker"
    evil = (
        Evil(os.system, f"touch {marker}")
        if which == "os.system"
        else Evil(builtins.exec, f"open({str(marker)!r}, 'w').close()")
    )
    G, D = make_g(), make_d()
    snap = nvidia_snapshot(G, D)
    snap["G_ema"].state["payload"] = evil
    dump_with_fake_modules(snap, tmp_path / "evil.pkl")
    name = r"(posix|nt|os)\.system" if which == "os.system" else r"builtins\.exec"
    with pytest.raises(CheckpointError, match=rf"evil\.pkl: refusing to load global {name} from pickle"):
        load_generator(tmp_path / "evil.pkl")
    with pytest.raises(CheckpointError, match="refusing"):
        load_nvidia_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    "variant,match",
    [
        ("conditional", "conditional"),
        ("orig", "architecture 'orig'"),
        ("stylegan3", "StyleGAN3"),
        ("rgba", "img_channels=4"),
        ("z_ne_w", "z_dim"),
    ],
)
def test_nvidia_unsupported_generators(tmp_path, variant, match):
    G, D = make_g(), make_d()
    kw, extra = g_kwargs(G), {}
    if variant == "conditional":
        kw["c_dim"] = 10
        extra["mapping.embed.weight"] = torch.randn(32, 10)
    elif variant == "orig":
        kw["synthesis_kwargs"]["architecture"] = "orig"
    elif variant == "stylegan3":
        extra["synthesis.input.affine.weight"] = torch.randn(4, 32)
        extra["synthesis.L0_36_512.weight"] = torch.randn(4, 4, 3, 3)
    elif variant == "rgba":
        kw["img_channels"] = 4
    else:
        kw["z_dim"] = 64
    dump_with_fake_modules(nvidia_snapshot(G, D, g_kw=kw, g_extra=extra), tmp_path / "v.pkl")
    with pytest.raises(CheckpointError, match=rf"v\.pkl: G_ema.*{match}"):
        load_generator(tmp_path / "v.pkl")
    assert torch.equal(logits(load_discriminator(tmp_path / "v.pkl"), 32), logits(D, 32))  # D is still fine


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(architecture="orig"), "architecture 'orig'"),
        (dict(c_dim=5), "conditional"),
        (dict(epilogue_kwargs=FakeEasyDict(mbstd_group_size=4, mbstd_num_channels=2)), "minibatch-std"),
    ],
)
def test_nvidia_unsupported_discriminators(tmp_path, change, match):
    G, D = make_g(), make_d()
    kw = {**d_kwargs(D), **change}
    dump_with_fake_modules(nvidia_snapshot(G, D, d_kw=kw), tmp_path / "d.pkl")
    with pytest.raises(CheckpointError, match=rf"d\.pkl: D.*{match}"):
        load_discriminator(tmp_path / "d.pkl")


def test_nvidia_stylegan3_class_name(tmp_path):
    G, D = make_g(), make_d()
    snap = nvidia_snapshot(G, D)
    snap["G_ema"].class_name = "training.networks_stylegan3.Generator"
    dump_with_fake_modules(snap, tmp_path / "sg3.pkl")
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        load_generator(tmp_path / "sg3.pkl")


class FakeTFNetwork:
    def __init__(self, name):
        self.name, self.static_kwargs, self.variables = name, {"resolution": 32}, [("w", np.zeros(3))]


FakeTFNetwork.__module__, FakeTFNetwork.__qualname__, FakeTFNetwork.__name__ = (
    "dnnlib.tflib.network",
    "Network",
    "Network",
)


def test_tensorflow_pickle_is_refused(tmp_path):
    dump_with_fake_modules((FakeTFNetwork("G"), FakeTFNetwork("D"), FakeTFNetwork("Gs")), tmp_path / "tf.pkl")
    with pytest.raises(
        CheckpointError, match=r"tf\.pkl: TensorFlow StyleGAN2 pickles are not supported.*legacy\.py"
    ):
        load_generator(tmp_path / "tf.pkl")


def test_pickle_without_networks(tmp_path):
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump({"hello": [1, 2, 3]}, f)
    with pytest.raises(CheckpointError, match=r"p\.pkl: no G_ema / G network"):
        load_generator(tmp_path / "p.pkl")


# ---------------------------------------------------------------------------------------------------------
# Errors


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such checkpoint file"):
        load_generator(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["pt", "pkl", "garbage", "empty"])
def test_corrupt_files(tmp_path, kind):
    path = tmp_path / f"bad.{kind}"
    if kind == "pt":
        save_generator(path, make_g())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pkl":
        dump_with_fake_modules(nvidia_snapshot(make_g(), make_d()), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 40)
    else:
        path.write_bytes(b"")
    for load in (load_generator, load_discriminator):
        with pytest.raises(
            CheckpointError, match=rf"bad\.{kind}: not a readable checkpoint \(truncated or corrupt\?\)"
        ):
            load(path)


def test_wrong_kind(tmp_path):
    save_discriminator(tmp_path / "d.pt", make_d())
    with pytest.raises(
        CheckpointError, match=r"d\.pt: holds a 'discriminator' checkpoint, expected 'generator'"
    ):
        load_generator(tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="expected 'sfn'"):
        load_checkpoint(tmp_path / "d.pt", kind="sfn")


def test_config_mismatch(tmp_path):
    G = make_g()
    save_checkpoint(tmp_path / "m.pt", "generator", {**G.config, "size": 64}, G.state_dict())
    with pytest.raises(
        CheckpointError, match=r"m\.pt: state dict does not fit Generator.*missing keys: .*convs\.6"
    ):
        load_generator(tmp_path / "m.pt")
    save_checkpoint(tmp_path / "c.pt", "generator", {**G.config, "channel_max": 64}, G.state_dict())
    with pytest.raises(
        CheckpointError, match=r"c\.pt: .*shape mismatches .*input\.input \[1, 32, 4, 4\] vs \[1, 64, 4, 4\]"
    ):
        load_generator(tmp_path / "c.pt")
    save_checkpoint(tmp_path / "k.pt", "generator", {**G.config, "bogus": 1}, G.state_dict())
    with pytest.raises(CheckpointError, match=r"k\.pt: invalid Generator config"):
        load_generator(tmp_path / "k.pt")


def test_newer_format_version(tmp_path):
    torch.save(
        {"format": "ganinv", "version": 99, "kind": "generator", "config": {}, "state_dict": {}},
        tmp_path / "new.pt",
    )
    with pytest.raises(CheckpointError, match="newer ganinv"):
        load_generator(tmp_path / "new.pt")


def test_rosinality_without_g_ema(tmp_path):
    G, D = make_g(), make_d()
    torch.save(
        {"g": G.state_dict(), "d": D.state_dict(), "args": argparse.Namespace(size=32)}, tmp_path / "r.pt"
    )
    with pytest.raises(CheckpointError, match=r"r\.pt: no generator weights found .*'g_ema'"):
        load_generator(tmp_path / "r.pt")
    assert torch.equal(logits(load_discriminator(tmp_path / "r.pt"), 32), logits(D, 32))


class Custom:
    pass


def test_unsafe_torch_file_is_refused(tmp_path):
    torch.save({"g_ema": make_g().state_dict(), "opts": Custom()}, tmp_path / "u.pt")
    with pytest.raises(CheckpointError, match=r"u\.pt: refers to the global .*Custom.*weights_only"):
        load_generator(tmp_path / "u.pt")


def test_pretrained_names(tmp_path, monkeypatch):
    assert ckpt.PRETRAINED_DIR == Path(ckpt.__file__).resolve().parent.parent / "data" / "pretrained"
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"no pretrained model 'synthfaces64' .*available: none"):
        load_generator("synthfaces64")
    G, D = make_g(), make_d()
    save_generator(tmp_path / "tiny" / "generator.pt", G)
    save_discriminator(tmp_path / "tiny" / "discriminator.pt", D)
    with pytest.raises(CheckpointError, match=r"synthfaces64.*available: tiny"):
        load_generator("synthfaces64")
    assert ckpt.available_pretrained() == ["tiny"]
    assert torch.equal(images(load_generator("tiny")), images(G))
    assert torch.equal(logits(load_discriminator("tiny"), 32), logits(D, 32))
    assert torch.equal(images(load_generator(tmp_path / "tiny")), images(G))  # a directory works too


def test_no_warnings_on_clean_load(tmp_path):
    save_generator(tmp_path / "g.pt", make_g())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_generator(tmp_path / "g.pt")


def test_cli_convert_to_fp16_bundle_keeps_provenance(tmp_path):
    from ganinv.cli import main as cli_main

    G, D = make_g(), make_d()
    G.get_w_avg()
    save_generator(tmp_path / "run" / "generator.pt", G, step=7, images_seen=112)
    save_discriminator(tmp_path / "run" / "discriminator.pt", D, step=7, images_seen=112)
    cli_main(["convert", str(tmp_path / "run"), str(tmp_path / "bundle"), "--half"])
    for kind in ("generator", "discriminator"):
        c = ckpt.load_checkpoint(tmp_path / "bundle" / f"{kind}.pt", kind)
        assert (c["step"], c["images_seen"]) == (7, 112)
        assert all(v.dtype == torch.float16 for v in c["state_dict"].values() if v.is_floating_point())
    H = load_generator(tmp_path / "bundle")
    torch.testing.assert_close(H.w_avg, G.w_avg)
    torch.testing.assert_close(images(H), images(G), atol=0.02, rtol=0)


def test_cli_half_copies_any_ganinv_checkpoint_in_fp16(tmp_path, capsys):
    from ganinv.cli import main as cli_main
    from ganinv.models.encoders import (
        EncoderConfig,
        PSPEncoder,
        WPlusEncoderConfig,
        load_encoder,
        save_encoder,
    )

    torch.manual_seed(0)
    enc = PSPEncoder(WPlusEncoderConfig(backbone=EncoderConfig.preset("tiny"), n_latent=8, style_dim=16))
    save_encoder(tmp_path / "psp.pt", enc, step=12, images_seen=96)
    cli_main(["half", str(tmp_path / "psp.pt"), str(tmp_path / "psp16.pt")])
    assert "psp_encoder, step 12, fp16 weights" in capsys.readouterr().out
    c = ckpt.load_checkpoint(tmp_path / "psp16.pt", "psp_encoder")
    assert (c["step"], c["images_seen"]) == (12, 96)
    assert all(v.dtype == torch.float16 for v in c["state_dict"].values() if v.is_floating_point())
    back = load_encoder(tmp_path / "psp16.pt", "psp_encoder")
    for a, b in zip(back.state_dict().values(), enc.state_dict().values(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=2e-3, rtol=1e-3)
    with pytest.raises(SystemExit, match="missing.pt: no such file"):  # the CLI's clear exit
        cli_main(["half", str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="junk.pt"):
        cli_main(["half", str(tmp_path / "junk.pt"), str(tmp_path / "y.pt")])
    assert not (tmp_path / "y.pt").exists()
