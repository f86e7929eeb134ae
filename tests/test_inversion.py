"""ganinv.inversion: optimisation baselines (W, W+), the one `invert` entry point for every method, input
checks, and the `ganinv invert` command."""

import math

import pytest
import torch

from ganinv.checkpoints import CheckpointError, save_generator
from ganinv.cli import main
from ganinv.data.images import ImageError, load_image, save_image
from ganinv.inversion import METHODS, InversionResult, invert, lr_at, optimize_w, optimize_w_plus
from ganinv.losses import LossWeights, ReconstructionLoss
from ganinv.metrics import mse
from ganinv.models.clcae import CLCAE, CLCAEConfig, reconstruct
from ganinv.models.encoders import E4EEncoder, PSPEncoder, WPlusEncoderConfig, save_encoder

MSE_ONLY = ReconstructionLoss(LossWeights(mse=1.0, lpips=0.0, id=0.0))


pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=2, size=32, seed=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def wplus_encoder(G, cls=PSPEncoder):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        enc = cls(WPlusEncoderConfig.for_generator(G, backbone="tiny", zero_init=False))
    enc.set_w_avg(G.get_w_avg())
    if cls is E4EEncoder:
        enc.set_stage(enc.max_stage)
    return enc.eval()


def clcae_encoder(G, **kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        return CLCAE.from_generator(G, CLCAEConfig.for_generator(G, backbone="tiny", zero_init=False, **kw))


# -- optimisation baselines ---------------------------------------------------------------------------------


def test_optimize_w_recovers_a_generated_image(G):
    w_true = G.style(torch.randn(2, G.style_dim, generator=torch.Generator().manual_seed(5)))
    target = G.synthesis(w_true).clamp(-1, 1)
    start = mse(G.synthesis(G.get_w_avg().expand(2, -1)), target)  # the w_avg starting point
    res = optimize_w(G, target, steps=100, loss=MSE_ONLY, seed=0)
    assert isinstance(res, InversionResult) and res.method == "optim-w"
    assert res.w.shape == (2, G.style_dim) and res.w_plus is None and res.f is None
    assert res.image.shape == target.shape and len(res.losses) == 100 and res.seconds > 0
    assert (mse(res.image, target) < start / 5).all()
    torch.testing.assert_close(res.image, G.synthesis(res.w))
    assert all(p.grad is None for p in G.parameters())  # only the code was optimised


def test_optimize_w_plus_beats_w_on_a_style_mixed_target(G):
    gen = torch.Generator().manual_seed(7)  # a separate random w per layer: in W+, mostly outside W
    ws = G.style(torch.randn(2 * G.n_latent, G.style_dim, generator=gen)).view(2, G.n_latent, -1)
    target = G.synthesis(ws).clamp(-1, 1)
    res_w = optimize_w(G, target, steps=60, loss=MSE_ONLY)
    res_plus = optimize_w_plus(G, target, steps=60, loss=MSE_ONLY)
    assert res_plus.w_plus.shape == (2, G.n_latent, G.style_dim) and res_plus.w is None
    assert res_plus.method == "optim-w+"
    assert res_plus.losses[-1] < 0.5 * res_w.losses[-1]
    assert mse(res_plus.image, target).mean() < mse(res_w.image, target).mean()


def test_learning_rate_schedule_ramps_up_and_down():
    assert lr_at(0.0, 0.1) == 0.0
    assert math.isclose(lr_at(0.5, 0.1), 0.1)
    assert 0 < lr_at(0.02, 0.1) < lr_at(0.04, 0.1) < 0.1
    assert 0 < lr_at(0.99, 0.1) < lr_at(0.9, 0.1) < 0.1


def test_default_loss_smaller_targets_and_init(G):
    target = images(1)
    res = optimize_w(G, target, steps=4)  # default loss: MSE + LPIPS-SFN with the bundled SFN
    assert len(res.losses) == 4 and all(math.isfinite(v) for v in res.losses)
    small = optimize_w_plus(G, images(1, size=16), steps=2, loss=MSE_ONLY)  # G's output is pooled to 16
    assert small.image.shape == (1, 3, 16, 16)
    w0 = G.style(torch.randn(1, G.style_dim))
    res = optimize_w(G, target, steps=1, init=w0[0], loss=MSE_ONLY)  # lr is 0 at step 0: code unchanged
    torch.testing.assert_close(res.w, w0)
    res = optimize_w_plus(G, target, steps=1, init="random", seed=3, loss=MSE_ONLY)
    assert res.w_plus.shape == (1, G.n_latent, G.style_dim)
    with pytest.raises(ValueError, match="init has shape"):
        optimize_w(G, target, steps=1, init=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="init must be"):
        optimize_w(G, target, steps=1, init="zeros")


# -- the invert entry point ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["psp", "e4e", "clcae-w", "clcae-w+", "clcae-f"])
def test_invert_with_encoders_matches_the_models(G, method):
    x = images(3)
    if method in ("psp", "e4e"):
        enc = wplus_encoder(G, PSPEncoder if method == "psp" else E4EEncoder)
        with torch.no_grad():
            w_plus = enc(x)
            expected = G.synthesis(w_plus)
    else:
        enc = clcae_encoder(G).train()
        with torch.no_grad():
            out = enc.eval()(x)
            expected = reconstruct(G, out, {"clcae-w": "w", "clcae-w+": "w_plus", "clcae-f": "f"}[method])
        enc.train()
    res = invert(x, method=method, generator=G, encoder=enc)
    assert res.method == method and res.image.shape == (3, 3, 32, 32) and res.seconds > 0
    torch.testing.assert_close(res.image, expected)
    if method == "psp":
        assert res.w is None and res.f is None
        torch.testing.assert_close(res.w_plus, w_plus)
    if method == "e4e":
        assert res.w.shape == (3, G.style_dim)
        torch.testing.assert_close(res.w_plus, w_plus)
    if method.startswith("clcae"):
        assert enc.training  # the mode is restored
        torch.testing.assert_close(res.w, out.w)
        assert (res.w_plus is None) == (method == "clcae-w")
        assert (res.f is not None) == (method == "clcae-f")
        if method == "clcae-f":
            assert res.f.shape == (3, G.channels[16], 16, 16) and res.f_res == 16
    torch.testing.assert_close(res.synthesize(G), expected)
    latents = res.latents(1)
    assert latents["method"] == method and latents["w_plus" if method != "clcae-w" else "w"].shape[0] == 1


def test_invert_optim_and_uint8_input(G):
    x8 = ((images(1) + 1) * 127.5).round().to(torch.uint8)
    res = invert(x8, method="optim-w", generator=G, steps=2, loss=MSE_ONLY)
    ref = invert(x8.float() / 127.5 - 1, method="optim-w", generator=G, steps=2, loss=MSE_ONLY)
    torch.testing.assert_close(res.w, ref.w)
    res = invert(images(1)[0], method="optim-w+", generator=G, steps=1, loss=MSE_ONLY)  # one [3, S, S] image
    assert res.w_plus.shape == (1, G.n_latent, G.style_dim)


def test_bad_methods_encoders_and_arguments(G, tiny_generator):
    with pytest.raises(ValueError, match="unknown inversion method 'pti'") as err:
        invert(images(1), method="pti", generator=G)
    assert all(m in str(err.value) for m in METHODS)
    with pytest.raises(ValueError, match="needs an encoder"):
        invert(images(1), method="psp", generator=G)
    with pytest.raises(TypeError, match="needs a PSPEncoder"):
        invert(images(1), method="psp", generator=G, encoder=wplus_encoder(G, E4EEncoder))
    with pytest.raises(ValueError, match="takes no encoder"):
        invert(images(1), method="optim-w", generator=G, encoder=wplus_encoder(G))
    with pytest.raises(TypeError, match="takes only noise_mode"):
        invert(images(1), method="psp", generator=G, encoder=wplus_encoder(G), steps=5)
    with pytest.raises(ValueError, match="no F branch"):
        invert(images(1), method="clcae-f", generator=G, encoder=clcae_encoder(G, use_f=False))
    other = tiny_generator()
    other.n_latent = 6  # pretend a generator with another number of w+ rows
    with pytest.raises(ValueError, match="does not fit"):
        invert(images(1), method="psp", generator=other, encoder=wplus_encoder(G))


def test_untrained_bundled_encoder_names_the_training_command(G, tmp_path, monkeypatch):
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"no pretrained model 'synthfaces64'.*train it with"):
        invert(images(1), method="clcae-f", generator=G, encoder="synthfaces64")


def test_wrong_image_size_and_channels_are_clear_errors(G):
    with pytest.raises(ImageError, match=r"20x20 but the psp encoder's input size is 32x32"):
        invert(images(1, size=20), method="psp", generator=G, encoder=wplus_encoder(G))
    with pytest.raises(ImageError, match=r"20x20 but the generator's output size .* is 32x32"):
        invert(images(1, size=20), method="optim-w", generator=G, steps=1)
    with pytest.raises(ImageError, match="3 channels"):
        invert(torch.zeros(1, 4, 32, 32), method="psp", generator=G, encoder=wplus_encoder(G))
    with pytest.raises(ImageError, match=r"\[-1, 1\]"):
        invert(images(1) * 50, method="psp", generator=G, encoder=wplus_encoder(G))


# -- the command line ------------------------------------------------------------------------------------


@pytest.fixture()
def files(G, tmp_path):
    gen = tmp_path / "g.pt"
    save_generator(gen, G)
    png = tmp_path / "face.png"
    save_image(images(1)[0], png)
    return gen, png


def test_cli_writes_reconstructions_and_latents(G, files, tmp_path, capsys):
    gen, png = files
    big = tmp_path / "big.png"
    save_image(images(1, size=64)[0], big)  # square, resized to 32 with a note
    out = tmp_path / "out"
    main(["invert", str(png), str(big), "--method", "optim-w", "--generator", str(gen), "--out", str(out),
          "--steps", "3", "--device", "cpu"])  # fmt: skip
    assert "resized to 32x32" in capsys.readouterr().err
    for stem in ("face", "big"):
        assert load_image(out / f"{stem}.png").shape == (3, 32, 32)
        saved = torch.load(out / f"{stem}.pt", weights_only=True)
        assert saved["method"] == "optim-w" and saved["generator"] == str(gen)
        assert saved["w"].shape == (1, G.style_dim) and saved["w_plus"] is None
    enc = tmp_path / "psp.pt"
    save_encoder(enc, wplus_encoder(G))
    main(["invert", str(png), "--method", "psp", "--generator", str(gen), "--encoder", str(enc),
          "--out", str(out / "psp"), "--device", "cpu"])  # fmt: skip
    saved = torch.load(out / "psp" / "face.pt", weights_only=True)
    expected = invert(load_image(png)[None], method="psp", generator=G, encoder=wplus_encoder(G))
    torch.testing.assert_close(saved["w_plus"], expected.w_plus)


def test_cli_bad_inputs_exit_with_a_clean_message(files, tmp_path, monkeypatch):
    gen, png = files
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    wide = tmp_path / "wide.png"
    save_image(torch.zeros(3, 32, 48), wide)
    out = tmp_path / "out"
    base = ["invert", "--method", "optim-w", "--generator", str(gen), "--out", str(out), "--steps", "2"]
    for path, message in [(bad, "broken.png"), (wide, "not square")]:
        with pytest.raises(SystemExit) as err:
            main(base + [str(png), str(path)])
        assert isinstance(err.value.code, str) and err.value.code.startswith("ganinv invert: error:")
        assert message in err.value.code
    assert not out.exists()  # every image is checked before anything is written
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as err:
        main(["invert", str(png), "--method", "clcae-f", "--generator", str(gen), "--encoder", "synthfaces64",
              "--out", str(out)])  # fmt: skip
    assert "train it with" in err.value.code
