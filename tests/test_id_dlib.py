"""ganinv.metrics.id_dlib: cosine similarity of dlib's 128-d face descriptors (face-recognition-models).

Real faces from scikit-image's bundled data: the astronaut photograph (FFHQ-aligned with ganinv.data.align)
and the faces of ``lfw_subset`` (25x25 grey crops of Labeled Faces in the Wild, up-sampled to 256 px).
Measured here: the astronaut against a flipped, shifted copy of herself about 0.99; against LFW people
about 0.78-0.87 (dlib's descriptors are not centred, so unrelated faces still have a high cosine).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv import metrics
from ganinv.fid import MissingWeightsError

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("one_thread")


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [1, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(np.array(Image.fromarray(rgb).convert("L"))[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    from ganinv.data.align import align_largest

    crop, _ = align_largest(data.astronaut(), 256)
    return grey(np.array(crop))  # grey, like the LFW faces it is compared with


@pytest.fixture(scope="module")
def lfw_faces():
    import skimage

    faces = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")[:8]  # the first 100 are faces
    up = [
        np.array(Image.fromarray((f * 255).astype(np.uint8)).resize((256, 256), Image.BICUBIC)) for f in faces
    ]
    return torch.cat([as_tensor(np.repeat(u[..., None], 3, axis=2)) for u in up])


def test_same_photo_scores_higher_than_different_people(astronaut, lfw_faces):
    shifted = np.roll(astronaut[:, ::-1], (10, -12), axis=(0, 1))  # mirrored and moved
    same = metrics.id_dlib(as_tensor(astronaut), as_tensor(shifted))
    others = metrics.id_dlib(as_tensor(astronaut).expand(len(lfw_faces), -1, -1, -1), lfw_faces)
    found = others[torch.isfinite(others)]
    assert same.shape == (1,) and float(same) > 0.95
    assert len(found) >= 5 and float(same) > float(found.max()) + 0.05
    torch.testing.assert_close(metrics.id_dlib(as_tensor(astronaut), as_tensor(astronaut)), torch.ones(1))


def test_no_face_gives_nan_and_names_are_listed(astronaut):
    blank = torch.zeros(1, 3, 128, 128)
    assert torch.isnan(metrics.id_dlib(blank, as_tensor(astronaut)[:, :, ::2, ::2])).all()
    assert "dlib" in metrics.METRIC_NAMES["id_dlib"]
    with pytest.raises(ValueError, match="same shape"):
        metrics.id_dlib(blank, as_tensor(astronaut))


def test_missing_packages_give_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    with pytest.raises(MissingWeightsError, match=r"face landmark models are not installed: pip install"):
        metrics.DlibFaceEmbedder()
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(MissingWeightsError, match=r"needs dlib, which is not installed: pip install"):
        metrics.DlibFaceEmbedder()
