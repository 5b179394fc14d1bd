"""Drawing: seeded uniform draws, a canvas (HU and label images) and scenes of implicit shapes
resolved in one vectorised pass with a priority buffer; blur and radial-basis helpers.

Coordinates as in :mod:`ctflow.physics.phantoms`: row 0 at the top, x to the right, y up. Nothing here
knows about anatomy; the scene functions of :mod:`.axial` and :mod:`.coronal` use these pieces.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

# --------------------------------------------------------------------------------------------------
# Random draws and small shape helpers
# --------------------------------------------------------------------------------------------------


class _Draw:
    """Uniform draws from a ``numpy`` Generator, fetched in blocks of 512 (a Python-level call per
    scalar draw is a large part of the cost of a small slice). The sequence of values depends only
    on the generator's seed and on the order of the draws."""

    __slots__ = ("_arr", "_i", "_list", "rng")
    _BLOCK = 512

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._refill()

    def _refill(self) -> None:
        self._arr = self.rng.random(self._BLOCK)
        self._list = self._arr.tolist()
        self._i = 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        i = self._i
        if i >= self._BLOCK:
            self._refill()
            i = 0
        self._i = i + 1
        return lo + (hi - lo) * self._list[i]

    def flag(self, p: float) -> bool:
        return self() < p

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` (both included)."""
        return min(hi, lo + int(self() * (hi - lo + 1)))

    def array(self, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """``n`` (at most 512) uniform draws in ``[lo, hi)`` as a float64 array."""
        if self._i + n > self._BLOCK:
            self._refill()
        i = self._i
        self._i = i + n
        return lo + (hi - lo) * self._arr[i : i + n]


def _bump(z: float, centre: float, half_width: float) -> float:
    """Cross-section factor of an ellipsoid-like organ cut at level ``z``: 1 at the centre, 0 outside."""
    t = (z - centre) / half_width
    return math.sqrt(1.0 - t * t) if abs(t) < 1.0 else 0.0


def _softmin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    m = np.minimum(a, b)
    return m - k * np.log1p(np.exp(-np.abs(a - b) / k))


# --------------------------------------------------------------------------------------------------
# Drawing: a canvas (HU + label images) and scenes of implicit shapes resolved with a priority buffer
# --------------------------------------------------------------------------------------------------

_LUT_CACHE: dict[tuple[int, ...], np.ndarray] = {}


def _allowed_lut(over: tuple[int, ...]) -> np.ndarray:
    """Boolean lookup table (256,) that is True for the labels in ``over``."""
    lut = _LUT_CACHE.get(over)
    if lut is None:
        lut = np.zeros(256, bool)
        lut[list(over)] = True
        _LUT_CACHE[over] = lut
    return lut


class _Canvas:
    """HU and label images on a square-pixel grid with pixel centres ``xs`` (increasing) and ``ys``
    (decreasing: row 0 is the top)."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray):
        self.xs, self.ys = xs, ys
        self.nx, self.ny = xs.size, ys.size
        self.x0, self.y0 = float(xs[0]), float(ys[0])
        self.px = float(xs[1] - xs[0])
        # set by the scene's body-wall step, which covers every pixel
        self.hu: np.ndarray = np.empty((0, 0), np.float32)
        self.lab: np.ndarray = np.empty((0, 0), np.uint8)

    def window(self, xlo: float, xhi: float, ylo: float, yhi: float) -> tuple[int, int, int, int]:
        """Index ranges ``r0:r1, c0:c1`` of the pixels whose centres lie in the box (may be empty)."""
        px = self.px
        c0 = max(0, math.ceil((xlo - self.x0) / px - 1e-9))
        c1 = min(self.nx, math.floor((xhi - self.x0) / px + 1e-9) + 1)
        r0 = max(0, math.ceil((self.y0 - yhi) / px - 1e-9))
        r1 = min(self.ny, math.floor((self.y0 - ylo) / px + 1e-9) + 1)
        return r0, r1, c0, c1

    def paint(self, r0: int, c0: int, mask: np.ndarray, value, label: int) -> None:
        """Set ``value`` / ``label`` where ``mask`` (a window at ``r0, c0``) is True."""
        h, w = mask.shape
        np.putmask(self.hu[r0 : r0 + h, c0 : c0 + w], mask, value)
        np.putmask(self.lab[r0 : r0 + h, c0 : c0 + w], mask, label)


# columns of a scene's shape table
_F_CX, _F_CY, _F_A, _F_B, _F_PHI, _F_BEND, _F_TAPER, _F_R, _F_YMIN, _F_VAL, _F_LAB, _F_GRP, _F_PRIO = range(13)
_NF = 13
_NO_YMIN = -1e9
# window-size classes (pixels) rendered together, so that small shapes are not padded to big windows
_BUCKETS = (6, 16, 1 << 30)


class _Scene:
    """Ellipse-like shapes resolved together in one vectorised pass.

    A shape is the ellipse with semi-axes ``a`` (along its rotated x, "u") and ``b`` ("v"), centre
    ``(cx, cy)``, rotated by ``phi``, optionally with ``taper`` (the width along u scales by
    ``1 + taper * v``: eggs, pears) and ``bend`` (``v -> v + bend * u**2``: bananas, beans).
    ``layers`` ``(r, value, label[, y_min])`` are nested copies scaled by ``r``, outside in (with
    ``y_min``: only above that height, e.g. gas over a fluid level).

    Semantics are those of painting in the order the shapes are added, where each shape may only
    paint over the labels in its ``over`` set *as they were before the scene*, and never over a
    shape added earlier ("first come, first served": organs wrap around what came before them);
    the inner layers of a shape paint over its outer ones. :meth:`render` resolves all of that at
    once: every shape gets a priority, and each pixel takes the highest-priority shape that covers
    it and may paint there.
    """

    def __init__(self, cv: _Canvas, capacity: int = 256):
        self.cv = cv
        self.table = np.zeros((capacity, _NF))  # one row per layer of a shape
        self.n = 0  # rows in use
        self.count = 0  # shapes added (the priority counter)
        self.groups: dict[tuple[int, ...], int] = {}

    def _group(self, over) -> int:
        key = (over,) if isinstance(over, int) else tuple(over)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = len(self.groups)
        return g

    def _reserve(self, rows: int) -> None:
        if self.n + rows > self.table.shape[0]:
            extra = np.zeros((max(rows, self.table.shape[0]), _NF))
            self.table = np.concatenate([self.table, extra])

    def add(self, cx, cy, a, b, phi, layers, over, bend=0.0, taper=0.0, bg=None) -> None:
        """Add one shape (Python floats). ``bg``: a shape thinner than ~a pixel is widened and its
        outer value diluted towards ``bg`` (a partial-volume stand-in that keeps it visible)."""
        if bg is not None:
            lim = 0.6 * self.cv.px
            r_out = layers[0][0]
            fa = max(1.0, lim / (a * r_out))
            fb = max(1.0, lim / (b * r_out))
            if fa > 1.0 or fb > 1.0:
                a, b = a * fa, b * fb
                first = layers[0]
                layers = [(first[0], bg + (first[1] - bg) / (fa * fb), *first[2:]), *layers[1:]]
        g = self._group(over)
        p = float(self.count)
        self.count += 1
        self._reserve(len(layers))
        t = self.table
        for j, layer in enumerate(layers):
            ymin = layer[3] if len(layer) > 3 and layer[3] is not None else _NO_YMIN
            t[self.n] = (cx, cy, a, b, phi, bend, taper, layer[0], ymin, layer[1], layer[2], g, p - 1e-3 * j)
            self.n += 1

    def add_many(self, cx, cy, a, b, phi, layers, over, bg=None, bend=0.0, taper=0.0) -> None:
        """Add K shapes at once: arguments and layer entries are length-K arrays or scalars."""
        cx = np.asarray(cx, np.float64).reshape(-1)
        k = cx.size
        if k == 0:
            return
        if bg is not None:
            lim = 0.6 * self.cv.px
            r_out = layers[0][0]
            fa = np.maximum(1.0, lim / (np.asarray(a) * r_out))
            fb = np.maximum(1.0, lim / (np.asarray(b) * r_out))
            a, b = a * fa, b * fb
            first = layers[0]
            layers = [(first[0], bg + (np.asarray(first[1], np.float64) - bg) / (fa * fb), *first[2:]), *layers[1:]]
        g = self._group(over)
        prio = np.arange(self.count, self.count + k, dtype=np.float64)
        self.count += k
        self._reserve(k * len(layers))
        for j, layer in enumerate(layers):
            blk = self.table[self.n : self.n + k]
            self.n += k
            blk[:, _F_CX] = cx
            blk[:, _F_CY] = cy
            blk[:, _F_A] = a
            blk[:, _F_B] = b
            blk[:, _F_PHI] = phi
            blk[:, _F_BEND] = bend
            blk[:, _F_TAPER] = taper
            blk[:, _F_R] = layer[0]
            blk[:, _F_YMIN] = layer[3] if len(layer) > 3 and layer[3] is not None else _NO_YMIN
            blk[:, _F_VAL] = layer[1]
            blk[:, _F_LAB] = layer[2]
            blk[:, _F_GRP] = g
            blk[:, _F_PRIO] = prio - 1e-3 * j if j else prio

    def render(self) -> None:
        """Resolve the shapes onto the canvas and empty the scene."""
        cv = self.cv
        n = self.n
        if n == 0:
            return
        t = self.table[:n].copy()
        self.table[:n] = 0.0
        self.n = 0
        order = np.argsort(t[:, _F_PRIO], kind="stable")
        rank = np.empty(n, np.intp)
        rank[order] = np.arange(n)
        cx, cy, a, b, phi, bend, taper, r = t[:, :8].T
        c, s = np.cos(phi), np.sin(phi)
        ea = a * r * (1.0 + np.abs(taper))
        eb = b * (r + np.abs(bend))
        ex = np.hypot(ea * c, eb * s)
        ey = np.hypot(ea * s, eb * c)
        px = cv.px
        c0 = np.maximum(0, np.ceil((cx - ex - cv.x0) / px - 1e-9)).astype(np.intp)
        c1 = np.minimum(cv.nx, np.floor((cx + ex - cv.x0) / px + 1e-9).astype(np.intp) + 1)
        r0 = np.maximum(0, np.ceil((cv.y0 - cy - ey) / px - 1e-9)).astype(np.intp)
        r1 = np.minimum(cv.ny, np.floor((cv.y0 - cy + ey) / px + 1e-9).astype(np.intp) + 1)
        w, h = c1 - c0, r1 - r0
        bucket = np.searchsorted(_BUCKETS, np.maximum(w, h))
        bucket[(w <= 0) | (h <= 0)] = len(_BUCKETS)  # off the grid
        # rows sorted by bucket, so that each bucket is a contiguous slice
        bo = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[bo], np.arange(len(_BUCKETS) + 1))
        cx, cy, bend, taper = cx[bo], cy[bo], bend[bo], taper[bo]
        f32 = np.float32
        ca, sa, cb, sb = (
            (c / a)[bo].astype(f32),
            (s / a)[bo].astype(f32),
            (c / b)[bo].astype(f32),
            (s / b)[bo].astype(f32),
        )
        r2 = (r * r)[bo].astype(f32)
        bend, taper = bend.astype(f32), taper.astype(f32)
        c0, c1, r0, r1, w, h = c0[bo], c1[bo], r0[bo], r1[bo], w[bo], h[bo]
        ymin, grp, rank = t[bo, _F_YMIN], t[bo, _F_GRP].astype(np.intp), rank[bo]
        glut = np.stack([_allowed_lut(key) for key in self.groups])
        lab_flat = cv.lab.reshape(-1)
        cand_lin, cand_rank = [], []
        for i in range(len(_BUCKETS)):
            sl = slice(int(bounds[i]), int(bounds[i + 1]))
            if sl.start == sl.stop:
                continue
            W, H = int(w[sl].max()), int(h[sl].max())
            cols = c0[sl, None] + np.arange(W)
            rows = r0[sl, None] + np.arange(H)
            X = (cv.x0 + cols * px - cx[sl, None]).astype(f32)[:, None, :]
            Y = (cv.y0 - rows * px - cy[sl, None]).astype(f32)[:, :, None]
            u = ca[sl, None, None] * X + sa[sl, None, None] * Y
            v = cb[sl, None, None] * Y - sb[sl, None, None] * X
            bi = bend[sl]
            if bi.any():
                v += bi[:, None, None] * u * u
            ti = taper[sl]
            if ti.any():
                u /= np.maximum(1.0 + ti[:, None, None] * v, 1e-6)  # > 0 inside the shape (|taper| < 1)
            q = u * u
            q += v * v
            m = q <= r2[sl, None, None]
            m &= (cols < c1[sl, None])[:, None, :] & (rows < r1[sl, None])[:, :, None]
            ym = ymin[sl]
            if (ym > _NO_YMIN).any():
                m &= Y > (ym - cy[sl]).astype(f32)[:, None, None]
            lin = (np.minimum(rows, cv.ny - 1) * cv.nx)[:, :, None] + np.minimum(cols, cv.nx - 1)[:, None, :]
            m &= glut[grp[sl, None, None], lab_flat[lin]]
            sel = np.flatnonzero(m)
            if sel.size:
                cand_lin.append(lin.reshape(-1)[sel])
                cand_rank.append(rank[sl][sel // (H * W)])
        if not cand_lin:
            return
        lin = np.concatenate(cand_lin)
        zbuf = np.full(lab_flat.size, n, np.intp)
        np.minimum.at(zbuf, lin, np.concatenate(cand_rank))
        hit = np.flatnonzero(zbuf < n)
        row = order[zbuf[hit]]
        lab_flat[hit] = t[row, _F_LAB].astype(np.uint8)
        cv.hu.reshape(-1)[hit] = t[row, _F_VAL].astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Blur and radial-basis helpers (cached per size)
# --------------------------------------------------------------------------------------------------


def _readonly(*arrays):
    for arr in arrays:
        arr.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=256)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """Row-normalised Gaussian blur matrix (n, n) with ``sigma`` pixels (for small images a matrix
    product is cheaper than a filter call)."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    k = np.exp(-0.5 * (d / sigma) ** 2)
    k[np.abs(d) > 4.0 * sigma + 1] = 0.0
    k /= k.sum(axis=1, keepdims=True)
    (k,) = _readonly(k.astype(np.float32))
    return k


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px <= 0.0:
        return img
    ny, nx = img.shape
    if max(ny, nx) <= 160:
        sq = round(sigma_px * 20.0) / 20.0  # quantised so that the kernel cache stays small
        return _blur_matrix(ny, sq) @ img @ _blur_matrix(nx, sq).T
    return ndimage.gaussian_filter(img, sigma_px, mode="nearest", truncate=3.0)


def _rbf_matrix(coords: np.ndarray, lo: float, hi: float, spacing: float) -> np.ndarray:
    """Gaussian radial-basis weights (n, g) of centres every ``spacing`` on [lo, hi], width = spacing."""
    centres = np.arange(lo, hi + 0.5 * spacing, spacing)
    w = np.exp(-0.5 * ((coords[:, None] - centres[None, :]) / spacing) ** 2)
    return w.astype(np.float32)
