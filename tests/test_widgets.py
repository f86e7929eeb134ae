"""ganinv.widgets: the pure render path and LatentExplorer driven headless (no browser, no kernel)."""

import datetime
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganinv import editing as E
from ganinv import widgets as W


@pytest.fixture(scope="module")
def dirs(G):
    out = E.Directions()
    for i, name in enumerate(("smiling", "glasses")):
        v = F.normalize(torch.randn(16, generator=torch.Generator().manual_seed(i)), dim=0)
        out[name] = E.Direction(v, "interfacegan", std=1.0, accuracy=0.9)
    out.update(E.ganspace_directions(G, n=2000, k=3))
    return out


def explorer(G, dirs, **kw) -> W.LatentExplorer:
    return W.LatentExplorer(G, dirs, **kw)


def decode(png) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(png))))


def png_file(arr: np.ndarray) -> bytes:
    return W.png_bytes(arr)


def upload(ex: W.LatentExplorer, content: bytes, name: str = "face.png") -> None:
    """Set the FileUpload value the way the browser does (ipywidgets 8 format)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    item = {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content)}
    ex.upload.value = ({**item, "last_modified": now},)


class KnownInversion:
    """An invert_fn returning fixed codes and recording what it was given."""

    def __init__(self, G):
        g = torch.Generator().manual_seed(7)
        self.w = G.mapping(torch.randn(1, 16, generator=g))
        self.w_plus = G.mapping(torch.randn(G.n_latent, 16, generator=g))[None]  # [1, L, D]
        own = G.synthesis(self.w_plus, return_features=True)[1][16]
        self.f = own + 0.5 * torch.randn(own.shape, generator=g)
        self.calls = []

    def __call__(self, images):
        self.calls.append(images)
        return {"w": self.w, "w_plus": self.w_plus, "f": self.f}


# ---------------------------------------------------------------------------------------------------------
# Pure functions


def test_render_and_png_roundtrip(G, dirs):
    w = G.mapping(torch.randn(1, 16))
    img = W.render(G, w)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert np.array_equal(decode(W.png_bytes(img)), img)
    edited = W.render(G, w, edits=[(dirs["smiling"], 2.0, None)])
    assert not np.array_equal(edited, img)
    assert np.array_equal(W.render(G, w, edits=[(dirs["smiling"], 0.0, None)]), img)
    with pytest.raises(ValueError, match="uint8"):
        W.png_bytes(np.zeros((4, 4), np.float32))


def test_f_edit_of_own_feature_equals_w_plus_edit(G, dirs):
    w_plus = G.broadcast(G.mapping(torch.randn(1, 16)))
    own = G.synthesis(w_plus, return_features=True)[1][8]
    code, f = W.edit_latent(G, w_plus, [], own)
    assert code is w_plus and f is own  # no edits: inputs untouched
    edits = [(dirs["glasses"], 1.5, None), (dirs["pc0"], 2.0, (2, 5))]
    a = E.render(G, *W.edit_latent(G, w_plus, edits, own))
    b = E.render(G, W.edit_latent(G, w_plus, edits)[0])
    assert torch.allclose(a, b, atol=1e-4)


def test_decode_upload_resizes_and_refuses(G):
    arr = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    x, note = W.decode_upload(png_file(arr), "a.png", 32)
    assert x.shape == (1, 3, 32, 32) and "resized from 48x48 to 32x32" in note
    with pytest.raises(W.ImageError, match="not square"):
        W.decode_upload(png_file(arr[:, :40]), "b.png", 32)


# ---------------------------------------------------------------------------------------------------------
# LatentExplorer


def test_direction_slider_changes_and_restores_image(G, dirs):
    ex = explorer(G, dirs)
    assert isinstance(ex.widget, W.widgets.VBox) and set(ex.sliders) == {
        "smiling",
        "glasses",
        "pc0",
        "pc1",
        "pc2",
    }
    assert all(not s.continuous_update for s in ex.sliders.values())
    before = bytes(ex.image.value)
    ex.sliders["smiling"].value = 2.0
    after = bytes(ex.image.value)
    assert after != before and decode(after).shape == (32, 32, 3)
    ex.sliders["smiling"].value = 0.0
    assert bytes(ex.image.value) == before


def test_seed_and_truncation_change_image(G, dirs):
    ex = explorer(G, dirs)
    first = bytes(ex.image.value)
    ex.seed.value = 5
    assert bytes(ex.image.value) != first
    ex.truncation.value = 0.3
    assert bytes(ex.image.value) != first
    ex.seed.value, ex.truncation.value = 0, 0.7
    assert bytes(ex.image.value) == first


def test_modes_with_upload(G, dirs):
    inv = KnownInversion(G)
    ex = explorer(G, dirs, invert_fn=inv)
    target = W.render(G, inv.w_plus)
    upload(ex, png_file(target))
    assert ex.upload.value == ()  # cleared so the same file can be uploaded again
    assert len(inv.calls) == 1 and inv.calls[0].shape == (1, 3, 32, 32)
    assert np.abs(W.to_hwc(inv.calls[0]).astype(int) - target).max() <= 1  # the decoded upload
    assert "inverted face.png" in ex.status.value and ex.state()["source"] == "upload:face.png"
    expected = {"W": W.render(G, inv.w), "W+": W.render(G, inv.w_plus), "F": W.render(G, inv.w_plus, inv.f)}
    assert not np.array_equal(expected["W+"], expected["F"])
    for mode, img in expected.items():
        ex.mode.value = mode
        assert bytes(ex.image.value) == W.png_bytes(img), mode
    ex.sliders["glasses"].value = 2.0  # F mode: edits go through the F rule
    edited = W.render(G, inv.w_plus, inv.f, [(dirs["glasses"], 2.0, None)])
    assert bytes(ex.image.value) == W.png_bytes(edited)
    ex.seed.value = 3  # back to a sample; F falls back to W+ with a note
    assert ex.state()["source"] == "seed" and "no F feature" in ex.status.value


def test_wrong_size_upload_is_resized(G, dirs):
    inv = KnownInversion(G)
    ex = explorer(G, dirs, invert_fn=inv)
    upload(ex, png_file(np.full((64, 64, 3), 200, np.uint8)), "big.png")
    assert inv.calls[0].shape == (1, 3, 32, 32)
    assert "resized from 64x64 to 32x32" in ex.status.value


def test_bad_uploads_set_a_message_and_keep_the_view(G, dirs):
    inv = KnownInversion(G)
    ex = explorer(G, dirs, invert_fn=inv)
    before = bytes(ex.image.value)
    upload(ex, b"\x89PNG\r\n\x1a\n not really a png", "broken.png")
    assert "broken.png" in ex.status.value and "not an image" in ex.status.value
    upload(ex, png_file(np.zeros((32, 20, 3), np.uint8)), "tall.png")
    assert "tall.png" in ex.status.value and "not square" in ex.status.value

    def failing(images):
        raise RuntimeError("encoder exploded")

    ex.invert_fn = failing
    upload(ex, png_file(np.zeros((32, 32, 3), np.uint8)), "ok.png")
    assert "inversion failed" in ex.status.value and "encoder exploded" in ex.status.value
    assert not inv.calls and bytes(ex.image.value) == before and ex.state()["source"] == "seed"


def test_ganspace_layer_sliders_stay_valid(G, dirs):
    ex = explorer(G, dirs)
    L = G.n_latent
    assert (ex.layer_start.value, ex.layer_end.value) == (0, L)
    n = ex.render_count
    ex.layer_end.value = 3  # no GANSpace edit active: nothing to re-render
    assert ex.render_count == n
    ex.sliders["pc1"].value = 2.0
    full = bytes(ex.image.value)
    ex.layer_start.value = 5  # >= end: end moves to 6, one render
    assert (ex.layer_start.value, ex.layer_end.value) == (5, 6) and ex.render_count == n + 2
    assert bytes(ex.image.value) != full
    ex.layer_end.value = 1
    assert (ex.layer_start.value, ex.layer_end.value) == (0, 1)
    ex.layer_start.value = L - 1
    assert (ex.layer_start.value, ex.layer_end.value) == (L - 1, L)
    assert ex.state()["layers"] == [L - 1, L]


def test_reset_renders_once(G, dirs):
    ex = explorer(G, dirs)
    first = bytes(ex.image.value)
    ex.sliders["smiling"].value = 1.0
    ex.sliders["pc0"].value = -2.0
    ex.layer_start.value = 4
    n = ex.render_count
    ex.reset()
    assert ex.render_count == n + 1
    assert bytes(ex.image.value) == first and ex.state()["edits"] == {}
    assert (ex.layer_start.value, ex.layer_end.value) == (0, G.n_latent)


def test_state_is_short_and_deterministic(G, dirs):
    a, b = explorer(G, dirs, seed=3), explorer(G, dirs, seed=3)
    for ex in (a, b):
        ex.sliders["glasses"].value = -1.5
        ex.mode.value = "W+"
    assert a.state() == b.state()
    assert json.dumps(a.state()) == (
        '{"source": "seed", "seed": 3, "truncation": 0.7, "mode": "W+", "edits": {"glasses": -1.5}}'
    )
    assert bytes(a.image.value) == bytes(b.image.value)


def test_style_mixing_view(G, dirs):
    ex = explorer(G, dirs)
    assert ex.mix_image.layout.display == "none"
    ex.mix.value = True
    assert ex.mix_image.layout.display == "" and decode(ex.mix_image.value).shape == (32, 32, 3)
    ex.cutoff.value = G.n_latent  # every layer from the main code
    assert bytes(ex.mix_image.value) == bytes(ex.image.value)
    ex.cutoff.value = 0  # every layer from the second seed
    assert bytes(ex.mix_image.value) == W.png_bytes(W.render(G, ex.sample_w(ex.mix_seed.value)))
    assert ex.state()["mix"] == {"seed": 1, "cutoff": 0}


def test_directions_from_file_and_pcs_added(G, dirs, tmp_path):
    ifg = E.Directions({k: dirs[k] for k in ("smiling", "glasses")})
    E.save_directions(tmp_path / "d.pt", ifg, generator_config=G.config)
    ex = W.LatentExplorer(G, str(tmp_path / "d.pt"), n_components=2)
    assert list(ex.sliders) == ["smiling", "glasses", "pc0", "pc1"]
    with pytest.raises(ValueError, match="shape"):
        W.LatentExplorer(G, {"bad": E.Direction(torch.ones(8), "interfacegan", 1.0)})


def test_invert_path_with_optimisation(G, dirs):
    ex = explorer(G, dirs, method="optim-w", invert_kwargs=dict(steps=3, loss=lambda a, b: F.mse_loss(a, b)))
    assert ex.load_bytes(png_file(W.render(G, G.mapping(torch.randn(1, 16)))), "gen.png")
    assert "inverted gen.png with optim-w" in ex.status.value
    assert ex._source["w"].shape == (1, 16)


def test_time_update(G, dirs):
    ex = explorer(G, dirs)
    sec = W.time_update(ex, n=4)
    assert 0 < sec < 1.0 and ex.sliders["smiling"].value == 0.0
