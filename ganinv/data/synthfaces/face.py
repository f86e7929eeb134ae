"""Colours and geometry of a SynthFaces face: the fixed vertical layout, palettes, hair-style tables, and
:class:`_Params`, the per-sample numbers the painter reads."""

from __future__ import annotations

import numpy as np

from .factors import BINARY_ATTRIBUTES

_SKIN = np.array(
    [[1.00, 0.87, 0.77], [0.96, 0.77, 0.63], [0.84, 0.62, 0.45], [0.64, 0.44, 0.30], [0.42, 0.28, 0.19]],
    dtype=np.float32,
)
_HAIR = np.array(
    [
        [0.08, 0.07, 0.07],  # black
        [0.26, 0.16, 0.10],  # dark brown
        [0.47, 0.30, 0.16],  # brown
        [0.66, 0.29, 0.13],  # auburn
        [0.89, 0.71, 0.40],  # blonde
        [0.96, 0.91, 0.74],  # platinum
    ],
    dtype=np.float32,
)
_EYE = np.array(
    [[0.30, 0.17, 0.08], [0.58, 0.40, 0.12], [0.25, 0.58, 0.24], [0.18, 0.42, 0.86], [0.58, 0.72, 0.86]],
    dtype=np.float32,
)
_BACKGROUND = np.array(
    [
        [0.93, 0.62, 0.62],  # red
        [0.95, 0.80, 0.55],  # orange
        [0.93, 0.92, 0.58],  # yellow
        [0.64, 0.88, 0.62],  # green
        [0.58, 0.86, 0.88],  # cyan
        [0.60, 0.70, 0.95],  # blue
        [0.79, 0.64, 0.93],  # violet
    ],
    dtype=np.float32,
)
_GREY_HAIR = np.array([0.80, 0.80, 0.82], dtype=np.float32)
_LIPS = np.array([0.78, 0.25, 0.27], dtype=np.float32)
_DARK = np.array([[0.10, 0.07, 0.07]], dtype=np.float32)
_MOUTH_INSIDE = np.array([[0.36, 0.07, 0.09]], dtype=np.float32)
_TEETH = np.array([[0.97, 0.96, 0.92]], dtype=np.float32)
_SCLERA = np.array([[0.98, 0.98, 0.96]], dtype=np.float32)
_PUPIL = np.array([[0.04, 0.03, 0.03]], dtype=np.float32)
_FRAME = np.array([[0.09, 0.09, 0.11]], dtype=np.float32)
_LENS = np.array([[0.80, 0.90, 1.00]], dtype=np.float32)

# Vertical layout (fixed): face centre, eye line, brow line, nose, mouth.
FACE_CY = 0.04
FACE_B = 0.70  # face half-height
FACE_TAPER = 0.45  # how much narrower the chin is than the cheeks
EYE_Y = FACE_CY - 0.10
BROW_Y = EYE_Y - 0.165
NOSE_Y = FACE_CY + 0.17
MOUTH_Y = FACE_CY + 0.38
OUTLINE = 0.018  # half-width of dark outlines

# Per hair style: back-hair ellipse (dx radius, dy centre, dy radius, bottom, top) and front cap
# (extra volume, hairline side drop exponent/amount, whether a cap exists without bangs).
_BACK_RX = np.array([0.06, 0.12, 0.27, 0.075], dtype=np.float32)  # added to the face half-width
_BACK_CY = np.array([-0.06, -0.02, -0.12, -0.02], dtype=np.float32)  # relative to FACE_CY
_BACK_RY = np.array([0.74, 0.86, 0.84, 0.62], dtype=np.float32)
_BACK_BOTTOM = np.array([0.02, 0.82, 0.42, 0.12], dtype=np.float32)  # relative to FACE_CY
_BACK_TOP = np.array([-9.0, -9.0, -9.0, -0.30], dtype=np.float32)  # relative to FACE_CY
_CAP_VOLUME = np.array([0.07, 0.06, 0.10, 0.0], dtype=np.float32)
_CAP_DROP = np.array([0.46, 0.62, 0.50, 0.46], dtype=np.float32)
_CAP_WITHOUT_BANGS = np.array([1.0, 1.0, 1.0, 0.0], dtype=np.float32)


def _palette(stops: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour path through ``stops`` at ``t`` in [0, 1]: ``[N, 3]`` float32."""
    k = len(stops) - 1
    pos = np.clip(t.astype(np.float32), 0, 1) * k
    i = np.minimum(np.floor(pos), k - 1).astype(np.int64)
    w = (pos - i)[:, None].astype(np.float32)
    return stops[i] * (1 - w) + stops[i + 1] * w


class _Params:
    """Per-sample geometry and colours derived from the factors (arrays shaped ``[n, 1, 1]``)."""

    def __init__(self, f: dict[str, np.ndarray]):
        def col(name, dtype=np.float32):
            return np.asarray(f[name]).astype(dtype)

        def b(v):  # broadcastable [n, 1, 1] float32
            return np.asarray(v, dtype=np.float32).reshape(-1, 1, 1)

        yaw = col("yaw")
        self.n = len(yaw)
        self.flags = {name: b(col(name)) for name in BINARY_ATTRIBUTES}
        style = np.asarray(f["hair_style"]).astype(np.int64)
        self.style = style
        self.age = b(col("age"))

        # face outline: shifts a little with yaw, and a turned face shows more of the near cheek
        a = 0.42 + 0.22 * col("face_width")
        self.face_cx = b(0.05 * yaw)
        self.face_a = b(a)
        self.face_al = b(a * (1 + 0.07 * yaw))
        self.face_ar = b(a * (1 - 0.07 * yaw))
        # features shift with yaw more than the outline; the far eye is smaller and eyes get closer
        feat = 0.17 * yaw
        self.feat_cx = b(feat)
        off = (0.36 * a + 0.05) * (1 - 0.1 * np.abs(yaw))
        self.eye_lx = b(feat - off * (1 + 0.1 * yaw))
        self.eye_rx = b(feat + off * (1 - 0.1 * yaw))
        ew = 0.082 + 0.05 * col("eye_size")
        self.scale_l = b(1 + 0.13 * yaw)  # foreshortening of the left / right features
        self.scale_r = b(1 - 0.13 * yaw)
        self.eye_lw = ew[:, None, None] * self.scale_l
        self.eye_rw = ew[:, None, None] * self.scale_r
        self.gaze = b(0.25 * yaw)  # iris offset as a fraction of the eye half-width
        self.nose_x = b(feat + 0.07 * yaw)
        self.mouth_x = b(feat + 0.02 * yaw)
        self.mouth_w = b((0.15 + 0.08 * (a - 0.42)) * (1 - 0.1 * np.abs(yaw)))
        self.brow_slope = b((col("brow") - 0.5) * 1.5)
        self.hair_cx = b(0.07 * yaw)  # hair moves a little more than the outline

        # hair style tables
        self.back_rx = b(a + _BACK_RX[style])
        self.back_cy = b(FACE_CY + _BACK_CY[style])
        self.back_ry = b(_BACK_RY[style])
        self.back_bottom = b(FACE_CY + _BACK_BOTTOM[style])
        self.back_top = b(FACE_CY + _BACK_TOP[style])
        self.curly = b(style == 2)
        self.cap_volume = b(_CAP_VOLUME[style])
        self.cap_drop = b(_CAP_DROP[style])
        bangs = col("bangs")
        self.cap_on = b(np.maximum(_CAP_WITHOUT_BANGS[style], bangs))
        self.bald_fringe = b((style == 3) & (bangs > 0))
        self.ears_on = b((style == 0) | (style == 3))
        self.ear_l = b(np.clip(1 + 0.7 * yaw, 0.15, 1.7))
        self.ear_r = b(np.clip(1 - 0.7 * yaw, 0.15, 1.7))

        # colours [n, 3]
        self.skin = _palette(_SKIN, col("skin_tone"))
        self.hair_pure = _palette(_HAIR, col("hair_color"))
        grey = 0.62 * col("age")[:, None]
        self.hair = self.hair_pure * (1 - grey) + _GREY_HAIR * grey
        self.brow_rgb = self.hair_pure * 0.55
        self.eye_rgb = _palette(_EYE, col("eye_color"))
        self.bg = _palette(_BACKGROUND, col("background"))
        self.shirt = self.bg * 0.45 + 0.05
        self.light = b((col("lighting") - 0.5) * 0.7)
