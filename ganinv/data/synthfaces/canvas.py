"""The SynthFaces canvas: part windows, box-filtered coverage of signed distances, and "over" compositing."""

from __future__ import annotations

import math

import numpy as np

_FULL_WINDOWS = False  # tests set this to check that the part windows below are conservative


class _Window:
    def __init__(self, rows: slice, cols: slice, y: np.ndarray, x: np.ndarray):
        self.rows, self.cols, self.y, self.x = rows, cols, y, x


class _Canvas:
    """Image, part labels and foreground coverage of a chunk of faces being painted."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size
        self.px = 2.0 / size
        c = ((np.arange(size, dtype=np.float32) + 0.5) * np.float32(self.px) - 1).astype(np.float32)
        self.y = c.reshape(1, size, 1)
        self.x = c.reshape(1, 1, size)
        self.img = np.empty((n, 3, size, size), dtype=np.float32)
        self.parts = np.zeros((n, size, size), dtype=np.uint8)
        self.fg = np.zeros((n, size, size), dtype=np.float32)

    def window(self, y0: float, y1: float, x0: float, x1: float) -> _Window:
        """The pixels covering ``[y0, y1] x [x0, x1]`` (normalised) plus a 2-pixel margin."""
        s, px = self.size, self.px
        if _FULL_WINDOWS:  # debugging/tests: paint every part over the whole image
            y0, y1, x0, x1 = -1.0, 1.0, -1.0, 1.0
        r0 = min(max(int(math.floor((y0 + 1) / px)) - 2, 0), s)
        r1 = min(max(int(math.ceil((y1 + 1) / px)) + 2, 0), s)
        c0 = min(max(int(math.floor((x0 + 1) / px)) - 2, 0), s)
        c1 = min(max(int(math.ceil((x1 + 1) / px)) + 2, 0), s)
        return _Window(slice(r0, r1), slice(c0, c1), self.y[:, r0:r1], self.x[:, :, c0:c1])

    def coverage(self, d: np.ndarray) -> np.ndarray:
        """Box-filtered coverage of a shape with signed distance ``d`` (in place on ``d``)."""
        d *= np.float32(-1.0 / self.px)
        d += np.float32(0.5)
        return np.clip(d, 0, 1, out=d)

    def paint(self, win: _Window, alpha: np.ndarray, colour: np.ndarray, part: int | None, fg=True):
        """Composite ``colour`` ([n, 3]) over the window with coverage ``alpha`` ([n, h, w])."""
        view = self.img[:, :, win.rows, win.cols]
        alpha = np.broadcast_to(alpha, view[:, 0].shape)
        tmp = np.empty(alpha.shape, dtype=np.float32)
        colour = np.broadcast_to(colour, (self.n, 3))
        for c in range(3):
            ch = view[:, c]
            np.subtract(colour[:, c, None, None], ch, out=tmp)
            tmp *= alpha
            ch += tmp
        if part is not None:
            np.copyto(self.parts[:, win.rows, win.cols], np.uint8(part), where=alpha >= 0.5)
        if fg:
            cov = self.fg[:, win.rows, win.cols]
            np.subtract(1, cov, out=tmp)
            tmp *= alpha
            cov += tmp


def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the boundary)."""
    X = (x - cx) / rx
    Y = (y - cy) / ry
    F = (X * X - 1) + Y * Y
    G = (X / rx) ** 2 + (Y / ry) ** 2
    G = np.sqrt(G + 1e-12)
    F *= 0.5
    F /= G
    return F


def _tri(t: np.ndarray) -> np.ndarray:
    """Triangle wave with period 1, values in [0, 1] (0 at integers)."""
    return 2 * np.abs(t - np.floor(t + 0.5))


def _by_side(x, centre, left, right):
    """Per column, the left value where ``x < centre`` else the right one (both eyes in one pass)."""
    return np.where(x < centre, left, right)
