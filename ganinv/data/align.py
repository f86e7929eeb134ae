"""FFHQ face alignment: the crop every FFHQ generator and encoder expects (Karras et al., "A Style-Based
Generator Architecture for GANs", CVPR 2019, the FFHQ dataset's alignment step; written here).

From 68 dlib landmarks the eyes and the outer mouth give an oriented square:

    e0, e1 = mean of the left / right eye points          m = middle of the two mouth corners
    c = (e0 + e1) / 2 + 0.1 (m - (e0 + e1) / 2)            the centre, a little below the eyes
    x = unit(e1 - e0 - rot90(m - (e0 + e1) / 2)) * max(2 |e1 - e0|, 1.8 |m - (e0 + e1) / 2|)
    y = rot90(x)                                            quad = c - x - y, c - x + y, c + x + y, c + x - y

so the eyes are level and the face fills the same part of every crop. The image is first shrunk when the
quad is much larger than the output (anti-aliasing), cropped to the quad plus a border, padded by reflection
where the quad leaves the photo (the padding blurred and faded to the image's median colour, so it reads as
background, not as a mirrored face), and finally resampled from the quad to a square.

Landmarks come from dlib (``pip install -e .[faces]``: ``dlib-bin`` and ``face-recognition-models``, whose
package carries the 68-point model; nothing is downloaded). :func:`align_face` also takes landmarks from
elsewhere, and :func:`ffhq_quad` / :func:`warp_quad` need neither package.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FACES_EXTRA = "pip install -e '.[faces]'  (or: pip install dlib-bin face-recognition-models)"
MIN_SCORE = 0.5  # dlib detector score below which a detection is not taken as a face
MIN_FACE = 32  # px: eye-to-eye or eye-to-mouth distance times 4 below this is too small to align


class AlignError(ValueError):
    """A photo cannot be aligned (no face, faces too small, landmark models missing); the message says why."""


@dataclass(frozen=True)
class Face:
    """One detected face: its detector box ``(left, top, right, bottom)``, score, and 68 landmarks [68, 2]
    as (x, y) pixel coordinates."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)


# ---------------------------------------------------------------------------------------------------------
# Landmarks (dlib)


def _model_file(name: str) -> Path:
    """A model file of the ``face-recognition-models`` package, found without importing it (its
    ``__init__`` needs setuptools' ``pkg_resources``, which new setuptools releases no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AlignError(f"the face landmark models are not installed: {FACES_EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise AlignError(f"{path} is missing: reinstall face-recognition-models ({FACES_EXTRA})")
    return path


class LandmarkDetector:
    """dlib's HOG frontal face detector and 68-point shape predictor, loaded once."""

    def __init__(self, min_score: float = MIN_SCORE, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError:
            raise AlignError(f"dlib is not installed: {FACES_EXTRA}") from None
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(_model_file("shape_predictor_68_face_landmarks.dat")))
        self.min_score, self.upsample = min_score, upsample

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Faces of ``image`` [H, W, 3] uint8 RGB with a detector score of at least ``min_score``, best
        first."""
        rects, scores, _ = self.detector.run(image, self.upsample, 0.0)
        faces = []
        for rect, score in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
            if score < self.min_score:
                continue
            shape = self.predictor(image, rect)
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
            faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score), points))
        return faces


# ---------------------------------------------------------------------------------------------------------
# The FFHQ crop (numpy + PIL only)


def eyes_and_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left eye centre, right eye centre and mouth centre (middle of the outer corners 48 and 54) of 68
    landmarks [68, 2] (x, y)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise AlignError(f"landmarks must be 68 finite (x, y) points, got shape {lm.shape}")
    return lm[36:42].mean(0), lm[42:48].mean(0), (lm[48] + lm[54]) / 2


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The oriented square [4, 2] (corners top-left, bottom-left, bottom-right, top-right, as (x, y)) that
    FFHQ alignment crops for these landmarks (the module docstring's equations)."""
    eye_l, eye_r, mouth = eyes_and_mouth(landmarks)
    eye_c = (eye_l + eye_r) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth - eye_c
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # rot90 of eye_to_mouth, subtracted
    x = x / np.hypot(*x) * max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))
    y = np.array([-x[1], x[0]])
    c = eye_c + 0.1 * eye_to_mouth
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _pad_reflect(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad [H, W, 3] by ``(left, top, right, bottom)``, then blur the padding and fade it towards the
    median colour, more the further it lies from the photo."""
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = pad  # each >= 1
    img = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    yy, xx = np.ogrid[:h, :w]
    fx = np.minimum(xx / np.float32(left), (w - 1 - xx) / np.float32(right))
    fy = np.minimum(yy / np.float32(top), (h - 1 - yy) / np.float32(bottom))
    outside = np.maximum(1 - fx, 1 - fy)[..., None]  # > 0 in the padding, up to 1 at the outer edge
    sigma = qsize * 0.02
    img += (gaussian_filter(img, [sigma, sigma, 0]) - img) * np.clip(outside * 3 + 1, 0, 1)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(outside, 0, 1)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def warp_quad(image: Image.Image, quad: np.ndarray, size: int, transform_size: int = 4096) -> Image.Image:
    """Resample the region ``quad`` [4, 2] of ``image`` to a ``size`` x ``size`` RGB square: shrink, crop,
    pad and transform as the FFHQ script does (at ``transform_size``, then down to ``size``)."""
    img = image.convert("RGB")
    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # side length of the square
    transform_size = max(size, min(transform_size, 4 * size))
    shrink = int(math.floor(qsize / size * 0.5))
    if shrink > 1:  # much larger than the output: shrink first (anti-aliasing)
        img = img.resize((round(img.width / shrink), round(img.height / shrink)), Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink
    border = max(round(qsize * 0.1), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.width),
            min(hi[1] + border, img.height))  # fmt: skip
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        img = img.crop(crop)
        quad -= crop[:2]
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.width + border, 0),
           max(hi[1] - img.height + border, 0))  # fmt: skip
    if max(pad) > border - 4:  # the quad leaves the photo: fill with blurred reflection
        pad = tuple(max(p, round(qsize * 0.3), 1) for p in pad)  # every side, as the FFHQ script
        img = Image.fromarray(_pad_reflect(np.asarray(img), pad, qsize))
        quad += pad[:2]
    img = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                        Image.Resampling.BILINEAR)  # fmt: skip
    if size < transform_size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


def align_face(
    image: Image.Image | np.ndarray,
    size: int = 1024,
    landmarks: np.ndarray | None = None,
    detector: LandmarkDetector | None = None,
) -> Image.Image:
    """The FFHQ-aligned ``size`` x ``size`` crop of the one face in ``image`` (PIL image or [H, W, 3] uint8).

    ``landmarks`` [68, 2] skips detection; otherwise dlib finds the faces (:class:`LandmarkDetector`) and a
    photo with none, or with several, raises :class:`AlignError` (use :func:`detect_faces` and pass each
    face's landmarks to align them all)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
        raise AlignError(f"size must be a whole number of pixels in 8..4096, got {size!r}")
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if landmarks is None:
        faces = detect_faces(img, detector)
        if len(faces) != 1:
            raise AlignError(f"found {len(faces)} faces; pass the landmarks of the one to align")
        landmarks = faces[0].landmarks
    eye_l, eye_r, mouth = eyes_and_mouth(landmarks)
    if 4 * max(np.hypot(*(eye_r - eye_l)), np.hypot(*(mouth - (eye_l + eye_r) / 2))) < MIN_FACE:
        raise AlignError(f"the face is too small to align (eyes {np.hypot(*(eye_r - eye_l)):.0f} px apart)")
    return warp_quad(img, ffhq_quad(landmarks), size)


def detect_faces(image: Image.Image | np.ndarray, detector: LandmarkDetector | None = None) -> list[Face]:
    """The faces dlib finds in ``image``, best score first; AlignError when the photo is too small to hold
    one (under 32 px) or the landmark models are not installed."""
    img = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if min(img.size) < MIN_FACE:
        raise AlignError(f"the image is {img.width}x{img.height} px: too small to find a face in")
    return (detector or LandmarkDetector())(np.asarray(img.convert("RGB")))


def align_largest(
    image: Image.Image | np.ndarray, size: int, detector: LandmarkDetector | None = None
) -> tuple[Image.Image, str]:
    """The aligned crop of the largest face of ``image`` and a note (empty, or how many faces there were);
    AlignError when there is none. What ``--align`` and the explorer's align box use."""
    faces = detect_faces(image, detector)
    if not faces:
        raise AlignError(f"no face found (0 detections with score >= {MIN_SCORE}); crop the face yourself")
    face = max(faces, key=lambda f: f.area)
    note = f"{len(faces)} faces found, aligned the largest" if len(faces) > 1 else ""
    return align_face(image, size, landmarks=face.landmarks), note
