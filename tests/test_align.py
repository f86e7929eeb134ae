"""FFHQ alignment: the crop geometry on synthetic landmarks (no dlib needed), and the whole pipeline on a
real photograph that ships with scikit-image (``skimage.data.astronaut()``) when the ``[faces]`` extra is
installed: landmarks found, eyes level, eye distance and mouth where the FFHQ crop puts them, determinism,
several faces, no face, clear errors."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ganinv.cli import main
from ganinv.data import align
from ganinv.data.align import AlignError, align_face, eyes_and_mouth, ffhq_quad, warp_quad

HAVE_DLIB = all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models", "skimage"))
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason="the [faces] extra (dlib-bin, face-recognition-models, "
                                "scikit-image) is not installed")  # fmt: skip


def synthetic_landmarks(eye_l, eye_r, mouth) -> np.ndarray:
    """68 points whose eye means are ``eye_l`` / ``eye_r`` and whose mouth corners 48 / 54 are centred on
    ``mouth`` (a quarter of the eye distance to either side); the other points do not matter."""
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48] = eye_l, eye_r
    half = (np.asarray(eye_r, float) - np.asarray(eye_l, float)) / 4
    lm[48], lm[54] = np.asarray(mouth) - half, np.asarray(mouth) + half
    return lm


def rotate(points, angle_deg: float, centre) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (np.asarray(points, float) - centre) @ rot.T + centre


def test_quad_of_an_upright_face():
    lm = synthetic_landmarks((100, 100), (140, 100), (120, 140))
    quad = ffhq_quad(lm)  # eye distance 40, eye-to-mouth 40: the side is max(2*40, 1.8*40) * 2 = 160
    np.testing.assert_allclose(quad, [[40, 24], [40, 184], [200, 184], [200, 24]], atol=1e-9)


@pytest.mark.parametrize("angle", [-35.0, 12.0, 90.0])
def test_quad_turns_with_the_face(angle):
    centre = np.array([120.0, 110.0])
    upright = ffhq_quad(synthetic_landmarks((100, 100), (140, 100), (120, 140)))
    turned = ffhq_quad(rotate(synthetic_landmarks((100, 100), (140, 100), (120, 140)), angle, centre))
    np.testing.assert_allclose(turned, rotate(upright, angle, centre), atol=1e-9)


def test_bad_landmarks():
    with pytest.raises(AlignError, match="68 finite"):
        eyes_and_mouth(np.zeros((5, 2)))
    with pytest.raises(AlignError, match="68 finite"):
        eyes_and_mouth(np.full((68, 2), np.nan))
    with pytest.raises(AlignError, match="too small"):
        align_face(
            Image.new("RGB", (64, 64)), 64, landmarks=synthetic_landmarks((30, 30), (32, 30), (31, 32))
        )
    with pytest.raises(AlignError, match="8..4096"):
        align_face(
            Image.new("RGB", (64, 64)), 5000, landmarks=synthetic_landmarks((10, 20), (50, 20), (30, 50))
        )


def dots(size, points, r=3) -> Image.Image:
    """A grey image with a red, green and blue dot at ``points`` (left eye, right eye, mouth)."""
    img = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for (x, y), colour in zip(points, [(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return img


def centroid(img: Image.Image, channel: int) -> np.ndarray:
    a = np.asarray(img).astype(float)
    others = [c for c in range(3) if c != channel]
    weight = np.clip(a[..., channel] - a[..., others].max(-1) - 60, 0, None)  # the pure-colour dot only
    ys, xs = np.nonzero(weight)
    return np.array([np.average(xs, weights=weight[ys, xs]), np.average(ys, weights=weight[ys, xs])])


@pytest.mark.parametrize("angle", [0.0, 25.0, -40.0])
def test_a_tilted_face_comes_out_level_at_the_ffhq_positions(angle):
    # a photo with the "face" near its corner, so the crop also needs the reflected, faded padding
    eyes_mouth = rotate([(70, 60), (130, 60), (100, 120)], angle, np.array([100.0, 90.0]))
    photo = dots((400, 300), eyes_mouth, r=4)
    out = warp_quad(photo, ffhq_quad(synthetic_landmarks(*eyes_mouth)), 256)
    left, right, mouth = (centroid(out, c) for c in range(3))
    # eye distance 60, eye-to-mouth 60 -> side 4 * 60 = 240 px of photo -> 256 px: eyes 64 px apart,
    # level, 0.1 * 64 above the centre; mouth 0.9 * 64 below it
    assert abs(left[1] - right[1]) < 1.0
    assert right[0] - left[0] == pytest.approx(64, abs=1.5)
    assert (left[0] + right[0]) / 2 == pytest.approx(127.5, abs=1.5)
    assert left[1] == pytest.approx(127.5 - 6.4, abs=1.5) and mouth[1] == pytest.approx(127.5 + 57.6, abs=1.5)


def test_missing_models_name_the_extra(monkeypatch):
    monkeypatch.setattr(align.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AlignError, match=r"pip install -e '\.\[faces\]'"):
        align._model_file("shape_predictor_68_face_landmarks.dat")


# -- a real photograph (the [faces] extra) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def detector():
    return align.LandmarkDetector()


@needs_dlib
def test_the_astronaut_is_aligned_as_ffhq_would(astronaut, detector):
    faces = align.detect_faces(astronaut, detector)
    assert len(faces) == 1  # the mission patch scores 0.12 and is not taken for a face
    out = align_face(astronaut, 256, detector=detector)
    again = align_face(astronaut, 256, landmarks=faces[0].landmarks)
    assert out.size == (256, 256) and np.array_equal(np.asarray(out), np.asarray(again))  # deterministic
    eye_l, eye_r, mouth = eyes_and_mouth(align.detect_faces(out, detector)[0].landmarks)  # found again
    assert abs(eye_l[1] - eye_r[1]) < 2.5  # level
    assert np.hypot(*(eye_r - eye_l)) == pytest.approx(64, abs=3)  # a quarter of the side
    assert (eye_l[0] + eye_r[0]) / 2 == pytest.approx(128, abs=3)
    assert 160 < mouth[1] < 200 and abs(mouth[0] - 128) < 4


@needs_dlib
def test_cli_aligns_every_face_or_the_largest_and_names_problems(astronaut, tmp_path, capsys):
    astronaut.save(tmp_path / "one.png")
    two = Image.new("RGB", (1024, 512))
    two.paste(astronaut, (0, 0))
    two.paste(astronaut.resize((400, 400)), (560, 60))
    two.save(tmp_path / "two.png")
    Image.new("RGB", (200, 200), (90, 120, 200)).save(tmp_path / "sky.png")
    astronaut.resize((20, 20)).save(tmp_path / "tiny.png")
    main(["align", str(tmp_path / "one.png"), str(tmp_path / "two.png"), "--out", str(tmp_path / "a"),
          "--size", "64"])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["one.png", "two_00.png", "two_01.png"]
    assert "two.png: 2 faces" in capsys.readouterr().err
    main(["align", str(tmp_path / "two.png"), "--out", str(tmp_path / "b"), "--size", "64", "--largest"])
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["two.png"]
    with pytest.raises(SystemExit, match="sky.png: no face found"):
        main(["align", str(tmp_path / "sky.png"), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="tiny.png: the image is 20x20 px: too small"):
        main(["align", str(tmp_path / "tiny.png"), "--out", str(tmp_path / "c")])


@needs_dlib
@pytest.mark.slow
def test_invert_and_inpaint_take_align(astronaut, tmp_path):
    astronaut.save(tmp_path / "photo.png")  # 512 px, not the generator's 64: aligned to it first
    main(["invert", str(tmp_path / "photo.png"), "--align", "--method", "psp", "--out", str(tmp_path / "i")])
    assert Image.open(tmp_path / "i" / "aligned" / "photo.png").size == (64, 64)
    assert (tmp_path / "i" / "photo.pt").is_file()
    hole = np.full((64, 64), 255, np.uint8)
    hole[36:52, 20:44] = 0
    Image.fromarray(hole).save(tmp_path / "mask.png")
    main(["inpaint", str(tmp_path / "photo.png"), "--align", "--mask", str(tmp_path / "mask.png"), "-n", "2",
          "--out", str(tmp_path / "p")])  # fmt: skip
    assert {"photo.png", "grid.png", "result_01.png"} <= {p.name for p in (tmp_path / "p").iterdir()}


@needs_dlib
def test_the_explorer_aligns_uploads_when_asked(G, astronaut):
    import io

    import torch.nn.functional as F

    from ganinv.widgets import LatentExplorer

    buf = io.BytesIO()
    astronaut.save(buf, format="PNG")
    ex = LatentExplorer(G, {}, n_components=0, method="optim-w",
                        invert_kwargs=dict(steps=2, loss=lambda a, b: F.mse_loss(a, b)))  # fmt: skip
    assert ex.load_bytes(buf.getvalue(), "astronaut.png")  # the whole photo, resized
    assert "resized from 512x512" in ex.status.value
    plain = ex._upload[0]
    ex.align.value = True
    assert ex.load_bytes(buf.getvalue(), "astronaut.png")  # the face, aligned
    assert "(aligned)" in ex.status.value and ex._upload[0].shape == plain.shape == (1, 3, G.size, G.size)
    assert (ex._upload[0] - plain).abs().mean() > 0.1
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 120, 200)).save(blank, format="PNG")
    assert not ex.load_bytes(blank.getvalue(), "sky.png") and "sky.png: no face found" in ex.status.value
