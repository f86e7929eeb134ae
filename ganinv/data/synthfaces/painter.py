"""The SynthFaces painter: one function per part, painted back to front, and :func:`render`."""

from __future__ import annotations

import numpy as np

from .canvas import _by_side, _Canvas, _ellipse, _tri
from .face import (
    _DARK,
    _FRAME,
    _LENS,
    _LIPS,
    _MOUTH_INSIDE,
    _PUPIL,
    _SCLERA,
    _TEETH,
    BROW_Y,
    EYE_Y,
    FACE_B,
    FACE_CY,
    FACE_TAPER,
    MOUTH_Y,
    NOSE_Y,
    OUTLINE,
    _Params,
)
from .factors import (
    BACKGROUND,
    BEARD,
    BROWS,
    EYES,
    FACTOR_NAMES,
    GLASSES,
    HAIR,
    MOUTH,
    SKIN,
    _check_size,
    _validate_factors,
)


def _draw_background(cv: _Canvas, p: _Params):
    # a soft vertical gradient: lighter at the top
    shade = (1.06 - 0.12 * (cv.y + 1) / 2).astype(np.float32)  # [1, H, 1]
    cv.img[:] = p.bg[:, :, None, None] * shade[:, None]


def _draw_shirt(cv: _Canvas, p: _Params):
    win = cv.window(0.55, 1, -1, 1)
    d = _ellipse(win.x, win.y, p.face_cx * 0.5, np.float32(1.32), np.float32(0.98), np.float32(0.58))
    # round collar: cut out a disc around the neck
    neck = np.sqrt((win.x - p.face_cx * 0.7) ** 2 + (win.y - 0.70) ** 2) - (0.30 * p.face_a + 0.02)
    np.maximum(d, -neck, out=d)
    cv.paint(win, cv.coverage(d), p.shirt, BACKGROUND)


def _draw_back_hair(cv: _Canvas, p: _Params):
    win = cv.window(-1, 1, -1, 1)
    d = _ellipse(win.x, win.y, p.hair_cx, p.back_cy, p.back_rx, p.back_ry)
    np.maximum(d, win.y - p.back_bottom, out=d)
    # (balding: a top cut that slopes down outside the face, so the side tufts taper)
    slope_out = np.maximum(np.abs(win.x - p.hair_cx) - (p.face_a - 0.04), 0)
    np.maximum(d, (p.back_top + 1.2 * slope_out) - win.y, out=d)
    # curly hair: a bumpy outline
    tx = _tri((win.x - p.hair_cx) * 6.0)
    ty = _tri(win.y * 6.0)
    bumps = (tx * tx + ty * ty) * (0.04 * p.curly)
    d += bumps
    cov = cv.coverage(d)
    cv.paint(win, cov, p.hair * 0.8, HAIR)


def _draw_neck(cv: _Canvas, p: _Params):
    win = cv.window(FACE_CY + 0.3, 1, -0.5, 0.5)
    cx = p.face_cx * 0.7
    d = np.maximum(np.abs(win.x - cx) - 0.30 * p.face_a, (FACE_CY + 0.35) - win.y)
    cv.paint(win, cv.coverage(d), p.skin * 0.8, SKIN)


def _draw_ears(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.14, EYE_Y + 0.30, -0.95, 0.95)
    left = win.x < p.face_cx
    scale = _by_side(win.x, p.face_cx, p.ear_l, p.ear_r)
    side_a = _by_side(win.x, p.face_cx, p.face_al, p.face_ar)
    sign = np.where(left, np.float32(-1), np.float32(1))
    ex = p.face_cx + sign * (side_a - 0.03)
    ey = np.float32(EYE_Y + 0.08)
    rx = 0.075 * scale
    d = _ellipse(win.x, win.y, ex, ey, rx, np.float32(0.12))
    cv.paint(win, cv.coverage(d - OUTLINE) * p.ears_on, p.skin * 0.62, SKIN)
    cv.paint(win, cv.coverage(d) * p.ears_on, p.skin * 0.93, SKIN)
    # inner ear shadow
    d = _ellipse(win.x, win.y, ex + sign * 0.012 * scale, ey, 0.035 * scale, np.float32(0.07))
    cv.paint(win, cv.coverage(d) * (0.35 * p.ears_on), p.skin * 0.6, None, fg=False)


def _face_distance(x, y, p: _Params) -> np.ndarray:
    """Signed distance to the egg-shaped face outline (narrower at the chin, wider on the near side)."""
    a = _by_side(x, p.face_cx, p.face_al, p.face_ar)
    X = (x - p.face_cx) / a
    Y = (y - FACE_CY) / FACE_B
    Yp = np.maximum(Y, 0)
    m = 1 + FACE_TAPER * Yp * Yp  # [1, h, 1]
    dm = (2 * FACE_TAPER / FACE_B) * Yp
    X2 = X * X
    F = X2 * m + (Y * Y - 1)
    gx = (X / a) * m
    gx *= gx
    gy = X2 * (dm * 0.5) + Y / FACE_B
    gy *= gy
    gx += gy
    np.sqrt(gx, out=gx)
    F *= 0.5
    F /= gx + 1e-6
    return F


def _draw_face(cv: _Canvas, p: _Params):
    win = cv.window(FACE_CY - FACE_B - 0.02, FACE_CY + FACE_B + 0.02, -0.75, 0.75)
    d = _face_distance(win.x, win.y, p)
    cv.paint(win, cv.coverage(d - OUTLINE), p.skin * 0.62, SKIN)
    cv.paint(win, cv.coverage(d), p.skin, SKIN)


def _draw_nose(cv: _Canvas, p: _Params):
    win = cv.window(NOSE_Y - 0.12, NOSE_Y + 0.06, -0.5, 0.5)
    # a soft shadow under the tip and a highlight on it; the nose moves with yaw more than the eyes
    d = _ellipse(win.x, win.y, p.nose_x, np.float32(NOSE_Y), np.float32(0.055), np.float32(0.032))
    cv.paint(win, cv.coverage(d) * 0.45, p.skin * 0.62, None, fg=False)
    d = _ellipse(win.x, win.y, p.nose_x, np.float32(NOSE_Y - 0.012), np.float32(0.04), np.float32(0.02))
    cv.paint(win, cv.coverage(d) * 0.5, p.skin * 1.08 + 0.04, None, fg=False)


def _draw_wrinkles(cv: _Canvas, p: _Params):
    strength = 0.8 * p.age
    t = np.float32(0.011)
    colour = p.skin * 0.5
    # under the eyes: a short arc below each eye
    win = cv.window(EYE_Y + 0.02, EYE_Y + 0.16, -0.65, 0.65)
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    ew = _by_side(win.x, p.feat_cx, p.eye_lw, p.eye_rw)
    s = (win.x - ex) / ew
    yc = EYE_Y + 0.62 * ew + 0.05 - 0.03 * (1 - s * s)
    d = np.abs(win.y - yc) - t
    np.maximum(d, (np.abs(s) - 0.75) * ew, out=d)
    cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)
    # beside the nose down to the mouth corners
    y0, y1 = NOSE_Y - 0.02, MOUTH_Y + 0.07
    win = cv.window(y0, y1, -0.6, 0.6)
    v = np.clip((win.y - y0) / (y1 - y0), 0, 1)
    dx = np.abs(win.x - p.mouth_x)
    xc = p.mouth_w * (0.55 + 0.55 * v) + 0.05
    d = np.abs(dx - xc) - t
    np.maximum(d, np.abs(win.y - (y0 + y1) / 2) - (y1 - y0) / 2, out=d)
    cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)
    # forehead: two long shallow arcs
    win = cv.window(FACE_CY - 0.53, FACE_CY - 0.35, -0.6, 0.6)
    half = 0.55 * p.face_a
    s = (win.x - p.feat_cx) / half
    s2 = np.minimum(s * s, 1)
    for yf in (FACE_CY - 0.42, FACE_CY - 0.50):
        d = np.abs(win.y - (yf + 0.03 * s2)) - t
        np.maximum(d, (np.abs(s) - 1) * half, out=d)
        cv.paint(win, cv.coverage(d) * strength, colour, None, fg=False)


def _draw_beard(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y, FACE_CY + FACE_B + 0.12, -0.75, 0.75)
    on = p.flags["beard"]
    # the face outline grown a little (beard volume), below a line from the sideburns to the lip
    d = _face_distance(win.x, (win.y - FACE_CY) * (1 / 1.08) + FACE_CY, p)
    s = np.clip((win.x - p.feat_cx) / p.face_a, -1, 1)
    top = (MOUTH_Y - 0.10) - (MOUTH_Y - 0.10 - (EYE_Y + 0.12)) * (s * s) ** 2
    np.maximum(d, top - win.y, out=d)
    # a dark rim then the beard body, so that a beard close to the skin colour still reads
    cv.paint(win, cv.coverage(d + 0.005) * on, p.hair * 0.5, BEARD)
    cv.paint(win, cv.coverage(d + 0.035) * on, p.hair * 0.92, BEARD)


def _mouth_shape(x, y, p: _Params, up: np.ndarray, down: np.ndarray, width, grow: float):
    """Distance to the lens between the curves ``y0 - c s^2 -/+ up/down (1 - s^2)``, s = x / width."""
    smile = p.flags["smiling"]
    c = 0.075 * smile - 0.005
    s = (x - p.mouth_x) / width
    s2 = np.minimum(s * s, 1)
    h = 1 - s2
    mid = MOUTH_Y - c * s2 + 0.5 * (down - up) * h
    half = 0.5 * (up + down) * h
    slope = (2 * c) * s / width  # derivative of the centre line (approximate)
    inv = 1 / np.sqrt(1 + slope * slope)
    d = np.abs(y - mid)
    d -= half
    d *= inv
    np.maximum(d, (np.abs(s) - 1) * width, out=d)
    d -= grow
    return d


def _draw_mouth(cv: _Canvas, p: _Params):
    win = cv.window(MOUTH_Y - 0.16, MOUTH_Y + 0.18, -0.55, 0.55)
    smile, open_ = p.flags["smiling"], p.flags["mouth_open"]
    lips = np.clip(p.skin * 0.45 + _LIPS * 0.55, 0, 1) * 0.85
    # closed: a thin lens of lips; open: grin (smiling) or 'O' (not smiling)
    width = p.mouth_w * (1 - 0.25 * open_ * (1 - smile))
    up = np.float32(0.018) + open_ * (0.0 + 0.05 * (1 - smile))
    down = np.float32(0.018) + open_ * (0.10 - 0.035 * (1 - smile))
    d = _mouth_shape(win.x, win.y, p, up, down, width, 0.018)
    cv.paint(win, cv.coverage(d), lips, MOUTH)
    if np.any(open_):
        d = _mouth_shape(win.x, win.y, p, up, down, width, 0.0)
        cav = cv.coverage(d.copy()) * open_
        cv.paint(win, cav, _MOUTH_INSIDE, MOUTH)
        # teeth: a band under the upper lip
        s = (win.x - p.mouth_x) / width
        s2 = np.minimum(s * s, 1)
        c = 0.075 * smile - 0.005
        upper = MOUTH_Y - c * s2 - up * (1 - s2)
        d2 = (win.y - upper) - 0.045
        np.maximum(d2, d, out=d2)
        cv.paint(win, cv.coverage(d2) * open_, _TEETH, MOUTH)


def _draw_eyes(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.13, EYE_Y + 0.13, -0.65, 0.65)
    closed = p.flags["eyes_closed"]
    open_ = 1 - closed
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    ew = _by_side(win.x, p.feat_cx, p.eye_lw, p.eye_rw)
    eh = 0.62 * ew
    ey = np.float32(EYE_Y)
    if np.any(open_):
        d = _ellipse(win.x, win.y, ex, ey, ew, eh)
        cv.paint(win, cv.coverage(d - OUTLINE) * open_, _DARK, EYES)
        sclera = cv.coverage(d)
        cv.paint(win, sclera * open_, _SCLERA, EYES)
        ix = ex + p.gaze * ew
        r = np.sqrt((win.x - ix) ** 2 + (win.y - ey) ** 2)
        iris = cv.coverage(r - 0.85 * eh)
        np.minimum(iris, sclera, out=iris)
        cv.paint(win, iris * open_, p.eye_rgb, EYES)
        pupil = cv.coverage(r - 0.27 * eh)
        cv.paint(win, pupil * open_, _PUPIL, EYES)
    if np.any(closed):
        # a downward arc (a closed lid) as wide as the open eye
        s = (win.x - ex) / ew
        s2 = np.minimum(s * s, 1)
        yc = ey + 0.35 * eh * (1 - s2)
        d = np.abs(win.y - yc) - 0.022
        np.maximum(d, (np.abs(s) - 1) * ew, out=d)
        cv.paint(win, cv.coverage(d) * closed, _DARK, EYES)


def _draw_front_hair(cv: _Canvas, p: _Params):
    win = cv.window(-1, EYE_Y + 0.75, -1, 1)
    bangs = p.flags["bangs"]
    a = p.face_a
    s = (win.x - p.hair_cx) / a
    s2 = s * s
    # hairline: high forehead, or a scalloped fringe just above the brows
    fringe = BROW_Y - 0.10 - 0.045 * _tri((win.x - p.hair_cx) * (1 / 0.11))
    high = np.float32(FACE_CY - 0.56)
    line = high + bangs * (fringe - high)
    s4 = s2 * s2
    line = line + p.cap_drop * (s4 * s4 * s2)  # sideburns: the hairline drops near the face edge
    d = _ellipse(win.x, win.y, p.hair_cx, np.float32(FACE_CY - 0.02), a + p.cap_volume, FACE_B + p.cap_volume)
    np.maximum(d, win.y - line, out=d)
    # a balding head with bangs only has a band of fringe (the crown stays bare)
    np.maximum(d, p.bald_fringe * ((FACE_CY - 0.52) - win.y) - (1 - p.bald_fringe) * 9, out=d)
    cov = cv.coverage(d)
    cov *= p.cap_on
    cv.paint(win, cov, p.hair, HAIR)


def _draw_brows(cv: _Canvas, p: _Params):
    win = cv.window(BROW_Y - 0.17, BROW_Y + 0.17, -0.7, 0.7)
    out_sign = np.where(win.x < p.feat_cx, np.float32(-1), np.float32(1))
    ex = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    length = 0.12 * _by_side(win.x, p.feat_cx, p.scale_l, p.scale_r)  # half-length, foreshortened
    s = (win.x - (ex + out_sign * 0.012)) * out_sign / length  # -1 inner end, +1 outer end
    s_c = np.clip(s, -1, 1)
    # centre line: tilted by the brow factor, slightly arched; thicker at the inner end
    m = p.brow_slope
    yc = BROW_Y + m * length * s_c - 0.025 * (1 - s_c * s_c)
    slope = m + (0.05 / length) * s_c
    thick = 0.032 * (1 - 0.3 * s_c)
    d = np.abs(win.y - yc)
    d /= np.sqrt(1 + slope * slope)
    d -= thick
    np.maximum(d, (np.abs(s) - 1) * length, out=d)
    cv.paint(win, cv.coverage(d), p.brow_rgb, BROWS)


def _draw_glasses(cv: _Canvas, p: _Params):
    win = cv.window(EYE_Y - 0.2, EYE_Y + 0.18, -0.9, 0.9)
    on = p.flags["glasses"]
    left = win.x < p.feat_cx
    gx = _by_side(win.x, p.feat_cx, p.eye_lx, p.eye_rx)
    rx = 0.165 * _by_side(win.x, p.feat_cx, p.scale_l, p.scale_r)
    ry = np.float32(0.14)
    gy = np.float32(EYE_Y + 0.005)
    d = _ellipse(win.x, win.y, gx, gy, rx, ry)
    cv.paint(win, cv.coverage(d.copy()) * (0.22 * on), _LENS, None, fg=False)
    ring = np.abs(d) - 0.02
    # bridge and arms: horizontal bars at the top of the lenses
    bar_y = gy - 0.05
    bar = np.abs(win.y - bar_y) - 0.016
    inner = np.abs(win.x - p.feat_cx)
    bridge = np.maximum(bar, inner - (np.abs(gx - p.feat_cx) - rx + 0.02))
    sign = np.where(left, np.float32(-1), np.float32(1))
    arm_end = p.face_cx + sign * (_by_side(win.x, p.face_cx, p.face_al, p.face_ar) + 0.04)
    arm = np.maximum(bar, (win.x - arm_end) * sign)
    np.maximum(arm, (np.abs(gx - p.feat_cx) + rx - 0.02) - inner, out=arm)
    np.minimum(ring, bridge, out=ring)
    np.minimum(ring, arm, out=ring)
    cv.paint(win, cv.coverage(ring) * on, _FRAME, GLASSES)


def _apply_lighting(cv: _Canvas, p: _Params):
    # a horizontal brightness gradient across the head (foreground only)
    g = np.clip((cv.x - p.face_cx) / (p.face_a + 0.15), -1, 1) * p.light  # [n, 1, W]
    g = cv.fg * g
    g += 1
    cv.img *= g[:, None]


_PAINTERS = (
    _draw_background,
    _draw_shirt,
    _draw_back_hair,
    _draw_neck,
    _draw_ears,
    _draw_face,
    _draw_nose,
    _draw_wrinkles,
    _draw_beard,
    _draw_mouth,
    _draw_eyes,
    _draw_front_hair,
    _draw_brows,
    _draw_glasses,
    _apply_lighting,
)


# --------------------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------------------


def render(factors: dict, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render faces: ``(images float32 [N, 3, size, size] in [-1, 1], parts uint8 [N, size, size])``.

    ``factors`` is a dict as returned by :func:`sample_factors` / :func:`edit_factors`. The work is
    done in chunks of about 64k pixels so that temporaries stay in cache.
    """
    size = _check_size(size)
    n = _validate_factors(factors)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    parts = np.empty((n, size, size), dtype=np.uint8)
    chunk = max(1, 65536 // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sub = {k: np.asarray(factors[k])[start:stop] for k in FACTOR_NAMES}
        p = _Params(sub)
        cv = _Canvas(stop - start, size)
        for painter in _PAINTERS:
            painter(cv, p)
        np.clip(cv.img, 0, 1, out=cv.img)
        cv.img *= 2
        cv.img -= 1
        images[start:stop] = cv.img
        parts[start:stop] = cv.parts
    return images, parts
