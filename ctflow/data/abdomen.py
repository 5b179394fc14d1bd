r"""Procedural abdomen phantoms: seeded axial CT slices and coronal organ crops, in HU or windowed.

Why: the prior that ctflow ships is trained here, offline, without real patient data. These
generators give an unlimited, licence-free supply of images that *look like* abdominal CT (a body
with a subcutaneous fat ring, a spine at the back, liver on the image's left, kidneys beside the
spine, bowel gas, ...) so that a generative prior learns CT-like statistics: large flat organs, thin
bright bone, black air, smooth low-contrast texture. They are not anatomy-accurate and not a
substitute for real data; results obtained with them should say "synthetic phantoms".

Conventions
-----------
* Image coordinates as in :mod:`ctflow.phantoms`: row 0 at the top, x to the right, y up. For the
  axial slices the image spans ``[-1, 1]`` in x and y (pixel size ``2 / size``; one unit is about
  200 mm, so the field of view is about 400 mm).
* Radiological orientation: the patient's right is on the image's **left**, anterior is at the
  **top**, posterior (spine, table) at the **bottom**. In the coronal views the head is at the top.
* Every image starts from ``numpy.random.default_rng(seed)``; nothing depends on earlier calls (the
  per-size caches hold only coordinate grids, blur kernels and texture bases), so a seed always
  gives the same bits (on one machine and library build).
* HU images are float32 Hounsfield units; the default output is the abdominal window L40/W400
  (``[-160, 240]`` HU) mapped linearly onto ``[0, 1]`` and clipped.

Pipeline (both views): draw the anatomy straight onto the output grid, with a tissue label map
kept alongside. The body wall comes from radial (axial) or per-row (coronal) layer tables; organs
and bones are implicit shapes (ellipses with taper and bend, nested layers) collected in a scene
and resolved in one vectorised pass with a priority buffer, with painter-like rules: a shape only
covers fat (or the tissues it is allowed over) and never what was placed before it, so organs wrap
around each other (the liver around the kidneys and vessels, bowel between the organs). Then two
smooth random texture fields are added with a per-tissue amplitude, a Gaussian blur (sigma 0.5 to
1 pixel) stands in for the partial-volume effect, white noise is optional, and the window applied.
Rendering on the target grid (no supersampling, no resizing) keeps a 64 x 64 slice near a
millisecond; thin layers (skin, cortical bone, ribs) are kept at least about a pixel thick, with
their contrast diluted in proportion.

Public entry points: :func:`abdomen_slice`, :func:`coronal_crop`, :class:`AbdomenPhantom`,
:class:`AbdomenPhantomDataset`, :func:`write_phantom_npz`, :func:`benchmark_rate`.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..files import atomic_path
from . import ct_realism
from ..errors import ShapeError
from ..phantoms import ellipses_image, random_ellipses

__all__ = [
    "LABELS",
    "ORGANMNIST_CLASSES",
    "TISSUES",
    "AbdomenPhantom",
    "AbdomenPhantomDataset",
    "abdomen_slice",
    "benchmark_rate",
    "coronal_crop",
    "hu_to_window",
    "organmnist_label",
    "write_phantom_npz",
]

# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------

#: Tissue names of the label maps (``return_labels=True``); the label value is the index. "right"
#: and "left" are the patient's sides (the patient's right is on the image's left).
TISSUES: tuple[str, ...] = (
    "air",
    "skin",
    "subcutaneous_fat",
    "muscle",
    "visceral_fat",
    "retroperitoneal_fat",
    "spine",
    "rib",
    "pelvis",
    "liver",
    "spleen",
    "kidney_right",
    "kidney_left",
    "aorta",
    "ivc",
    "vessel",
    "bowel",
    "bowel_content",
    "gas",
    "stomach",
    "pancreas",
    "gallbladder",
    "lung_right",
    "lung_left",
    "heart",
    "bladder",
    "femur_right",
    "femur_left",
    "spinal_canal",
    "table",
    "lesion",
    "mediastinum",
)
#: Tissue name -> label value.
LABELS: dict[str, int] = {name: i for i, name in enumerate(TISSUES)}

#: The 11 OrganMNIST (OrganA/C/SMNIST) classes, in label order.
ORGANMNIST_CLASSES: tuple[str, ...] = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)

(
    AIR, SKIN, SUBFAT, MUSCLE, VFAT, RFAT, SPINE, RIB, PELVIS, LIVER, SPLEEN, KIDNEY_R, KIDNEY_L, AORTA,
    IVC, VESSEL, BOWEL, CONTENT, GAS, STOMACH, PANCREAS, GALLBLADDER, LUNG_R, LUNG_L, HEART, BLADDER,
    FEMUR_R, FEMUR_L, CANAL, TABLE, LESION, MEDIASTINUM,
) = range(len(TISSUES))  # fmt: skip

# tissue label -> OrganMNIST class (only the organs the generators draw)
_TO_ORGANMNIST = {
    BLADDER: 0, FEMUR_L: 1, FEMUR_R: 2, HEART: 3, KIDNEY_L: 4, KIDNEY_R: 5,
    LIVER: 6, LUNG_L: 7, LUNG_R: 8, PANCREAS: 9, SPLEEN: 10,
}  # fmt: skip
_FROM_ORGANMNIST = {v: k for k, v in _TO_ORGANMNIST.items()}

WINDOW_LEVEL = 40.0
WINDOW_WIDTH = 400.0
MIN_SIZE, MAX_SIZE = 16, 512


def hu_to_window(hu: np.ndarray, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> np.ndarray:
    """Map HU linearly so that ``[level - width/2, level + width/2]`` becomes ``[0, 1]``; clip; float32."""
    lo = level - width / 2.0
    out = (np.asarray(hu, np.float32) - np.float32(lo)) * np.float32(1.0 / width)
    return np.clip(out, 0.0, 1.0, out=out)


def organmnist_label(labels: np.ndarray) -> int:
    """The OrganMNIST class (0..10) of the largest drawn organ in a label map, or -1 if none is drawn."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=len(TISSUES))
    best, best_n = -1, 0
    for tissue, cls in _TO_ORGANMNIST.items():
        if counts[tissue] > best_n:
            best, best_n = cls, int(counts[tissue])
    return best


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ShapeError(f"size must be an integer between {MIN_SIZE} and {MAX_SIZE}, got {size!r}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ShapeError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    return int(size)


def _check_version(version) -> int:
    if version not in (1, 2):
        raise ValueError(f"version must be 1 (piecewise-smooth phantoms) or 2 (CT-realistic, phantoms v2), got {version!r}")
    return int(version)


def _check_noise(noise) -> float:
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0.0):
        raise ValueError(f"noise is a standard deviation in HU and must be >= 0, got {noise}")
    return noise


# --------------------------------------------------------------------------------------------------
# Random draws
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
# Per-size caches (coordinates, angle bins, blur kernels)
# --------------------------------------------------------------------------------------------------

_N_THETA = 720
_THETA = -math.pi + (np.arange(_N_THETA) + 0.5) * (2.0 * math.pi / _N_THETA)
_COS_T, _SIN_T = np.cos(_THETA), np.sin(_THETA)


def _readonly(*arrays):
    for arr in arrays:
        arr.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=32)
def _axial_grid(size: int):
    """Pixel centres of the axial image (spanning [-1, 1]), radius from the origin and angle bin."""
    px = 2.0 / size
    xs = (np.arange(size) - (size - 1) / 2.0) * px
    ys = ((size - 1) / 2.0 - np.arange(size)) * px
    rho = np.hypot(xs[None, :], ys[:, None]).astype(np.float32)
    theta = np.arctan2(ys[:, None], xs[None, :])
    tidx = np.floor((theta + math.pi) * (_N_THETA / (2.0 * math.pi))).astype(np.intp) % _N_THETA
    return _readonly(xs, ys, rho, tidx)


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


@functools.lru_cache(maxsize=64)
def _axial_rbf(size: int):
    xs, ys, _, _ = _axial_grid(size)
    out = []
    for spacing in _TEXTURE_SPACINGS:
        out.append(_rbf_matrix(ys, -1.2, 1.2, spacing))
        out.append(_rbf_matrix(xs, -1.2, 1.2, spacing))
    return tuple(_readonly(*out))


# two smooth texture fields: "low" (organ-scale shading) and "mid" (lobulation, mottling)
_TEXTURE_SPACINGS = (0.3, 0.09)
# with width = spacing, the squared Gaussian-RBF weights sum to about sqrt(pi) per axis, so the
# field's variance is about pi: dividing by sqrt(pi) gives unit variance
_RBF_NORM = np.float32(1.0 / math.sqrt(math.pi))


def _texture(draw: _Draw, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """A unit-variance smooth random field ``wy @ G @ wx.T`` (G: i.i.d. normal coefficients)."""
    g = draw.rng.standard_normal((wy.shape[1], wx.shape[1]), dtype=np.float32)
    return (wy @ g @ wx.T) * _RBF_NORM


# --------------------------------------------------------------------------------------------------
# Tissue values (HU) and texture amplitudes per seed
# --------------------------------------------------------------------------------------------------


def _tissue_values(draw: _Draw) -> dict:
    """HU values of one 'patient'; ``contrast`` switches to an arterial/early-portal phase look."""
    contrast = draw.flag(0.35)
    fat = draw(-115.0, -85.0)
    hu = {
        "contrast": contrast,
        "fat": fat,
        "vfat": fat + draw(-5.0, 15.0),
        "skin": draw(20.0, 60.0),
        "muscle": draw(40.0, 60.0),
        "liver": draw(52.0, 66.0),
        "spleen": draw(40.0, 50.0),
        "kidney": draw(25.0, 38.0),
        "medulla": draw(22.0, 34.0),
        "blood": draw(35.0, 50.0),
        "bowel_wall": draw(30.0, 50.0),
        "fluid": draw(0.0, 25.0),
        "pancreas": draw(35.0, 50.0),
        "bile": draw(0.0, 20.0),
        "csf": draw(5.0, 30.0),
        "cortex": draw(650.0, 1000.0),
        "marrow": draw(150.0, 300.0),
        "bone": draw(550.0, 900.0),
        "disc": draw(70.0, 110.0),
        "lung": draw(-880.0, -790.0),
        "urine": draw(0.0, 15.0),
        "table": draw(-250.0, 150.0),
        "content": draw(-90.0, 20.0),
    }
    hu["ivc"] = hu["blood"]
    hu["portal"] = hu["blood"] - draw(0.0, 10.0)
    hu["heart"] = hu["blood"]
    if contrast:
        hu["aorta"] = draw(150.0, 280.0)
        hu["ivc"] = draw(60.0, 130.0)
        hu["portal"] = draw(100.0, 170.0)
        hu["heart"] = draw(100.0, 220.0)
        hu["kidney"] = draw(120.0, 200.0)
        hu["medulla"] = draw(50.0, 95.0)
        hu["spleen"] += draw(10.0, 30.0)
        hu["liver"] += draw(0.0, 12.0)
        hu["pancreas"] += draw(20.0, 40.0)
        hu["bowel_wall"] += draw(10.0, 30.0)
    else:
        hu["aorta"] = hu["blood"]
    return hu


# texture groups: (labels, low-frequency amplitude range, mid-frequency amplitude range), HU
_TEXTURE_GROUPS = (
    ((SUBFAT,), (3.0, 12.0), (2.0, 8.0)),
    ((VFAT, RFAT, MEDIASTINUM), (5.0, 15.0), (4.0, 12.0)),
    ((MUSCLE,), (3.0, 8.0), (2.0, 6.0)),
    ((LIVER,), (3.0, 10.0), (2.0, 6.0)),
    ((SPLEEN,), (3.0, 8.0), (2.0, 5.0)),
    ((KIDNEY_R, KIDNEY_L), (3.0, 8.0), (3.0, 8.0)),
    ((PANCREAS,), (3.0, 8.0), (8.0, 18.0)),
    ((BOWEL, STOMACH), (4.0, 10.0), (4.0, 10.0)),
    ((CONTENT,), (20.0, 50.0), (40.0, 90.0)),
    ((SPINE, RIB, PELVIS, FEMUR_R, FEMUR_L), (20.0, 50.0), (20.0, 60.0)),
    ((LUNG_R, LUNG_L), (10.0, 30.0), (15.0, 40.0)),
    ((AORTA, IVC, VESSEL, HEART, GALLBLADDER, BLADDER, CANAL, LESION), (1.0, 4.0), (1.0, 3.0)),
    ((SKIN,), (2.0, 6.0), (2.0, 6.0)),
)
_TEX_OF_LABEL = np.full(len(TISSUES), len(_TEXTURE_GROUPS), np.intp)  # unlisted labels: no texture
for _g, (_labels, _, _) in enumerate(_TEXTURE_GROUPS):
    _TEX_OF_LABEL[list(_labels)] = _g
_TEX_LO = np.array([[g[1][0], g[2][0]] for g in _TEXTURE_GROUPS] + [[0.0, 0.0]])
_TEX_HI = np.array([[g[1][1], g[2][1]] for g in _TEXTURE_GROUPS] + [[0.0, 0.0]])


# phantoms v2: which labels get vessels, septa, marbling, and the fine-texture amplitude (HU) range
_V2_GROUPS = ct_realism.TissueGroups(
    vessel_organs=(LIVER, SPLEEN, KIDNEY_R, KIDNEY_L),
    fat=(SUBFAT, VFAT, RFAT, MEDIASTINUM),
    muscle=(MUSCLE,),
    parenchyma_amp={
        **dict.fromkeys((LIVER, SPLEEN, PANCREAS), (4.0, 12.0)),
        **dict.fromkeys((KIDNEY_R, KIDNEY_L), (4.0, 10.0)),
        MUSCLE: (3.0, 9.0),
        **dict.fromkeys((SUBFAT, VFAT, RFAT, MEDIASTINUM), (4.0, 12.0)),
        **dict.fromkeys((SPINE, RIB, PELVIS, FEMUR_R, FEMUR_L), (25.0, 70.0)),
        **dict.fromkeys((BOWEL, STOMACH, HEART, AORTA, IVC, VESSEL, LESION), (2.0, 6.0)),
        **dict.fromkeys((LUNG_R, LUNG_L), (15.0, 45.0)),
        CONTENT: (20.0, 60.0),
    },
    n_labels=len(TISSUES),
)


def _texture_amplitudes(draw: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Per-label amplitudes (HU) of the low- and mid-frequency texture fields."""
    u = draw.array(2 * _TEX_LO.shape[0]).reshape(-1, 2)
    amp = (_TEX_LO + (_TEX_HI - _TEX_LO) * u).astype(np.float32)[_TEX_OF_LABEL]
    return amp[:, 0], amp[:, 1]


# --------------------------------------------------------------------------------------------------
# Axial slices
# --------------------------------------------------------------------------------------------------

# angular profiles of the body wall (720 bins over [-pi, pi))
_HARM = np.stack([f(k * _THETA) for k in (2, 3, 4) for f in (np.cos, np.sin)])
_HARM_AMP = np.array([0.017, 0.017, 0.012, 0.012, 0.009, 0.009])
_RECTUS = np.exp(-(((_THETA - math.pi / 2) / 0.35) ** 2)) - 0.7 * np.exp(-(((_THETA - math.pi / 2) / 0.06) ** 2))
_BACK = np.abs(((_THETA + math.pi / 2 + math.pi) % (2 * math.pi)) - math.pi)  # angle from the posterior midline
_LUMBAR = np.exp(-(((_BACK - 0.6) / 0.45) ** 2))
_GLUTEAL = np.exp(-(((_BACK - 0.9) / 0.4) ** 2))
_COS2_T, _SIN2_T = _COS_T**2, _SIN_T**2
_BACK_MASK = _SIN_T > -1e-3
_INV_SIN_NEG = 1.0 / np.minimum(_SIN_T, -1e-3)
_ANGLE_SCALE = _N_THETA / (2.0 * math.pi)
_WALL = (SUBFAT, MUSCLE, VFAT)


def _angle_bin(theta):
    return np.floor((np.asarray(theta) + math.pi) * _ANGLE_SCALE).astype(np.intp) % _N_THETA


def _axial_scene(cv: _Canvas, tidx: np.ndarray, rho: np.ndarray, draw: _Draw, level: float | None = None) -> dict:
    """Draw one axial abdomen slice onto ``cv``; returns a few scene facts (level, contrast)."""
    px = cv.px
    z = draw()  # 0: liver dome / lung bases ... 0.4: kidneys, pancreas ... 1: upper pelvis
    if level is not None:
        z = min(1.0, max(0.0, float(level)))
    hu = _tissue_values(draw)
    sz = draw(0.9, 1.1)  # overall anatomy scale

    # ---- body wall: radial tables (skin, subcutaneous fat, muscle) around the origin ---------------------------
    A = draw(0.72, 0.92)
    B = min(0.82, A * (draw(0.6, 0.8) + 0.06 * max(0.0, 0.35 - z) / 0.35))
    cy = draw(-0.05, 0.05)
    # distance from the origin to the body outline (ellipse centred at (0, cy), to first order in cy)
    R0 = (_COS2_T * (1.0 / (A * A)) + _SIN2_T * (1.0 / (B * B))) ** -0.5
    R0 += cy * _SIN_T
    R0 *= 1.0 + (draw.array(6, -1.0, 1.0) * _HARM_AMP) @ _HARM
    y_back = cy - B * draw(0.86, 0.97)  # flattened back (lying on the table)
    r_back = y_back * _INV_SIN_NEG
    r_back[_BACK_MASK] = 10.0
    R0 = _softmin(R0, r_back, 0.03)
    ts = draw(0.008, 0.012)
    ts_draw = max(ts, px)
    tf0 = 0.02 + 0.14 * draw() ** 1.5
    tf = tf0 * (1.0 + draw(0.0, 0.5) * _SIN_T + draw(-0.2, 0.3) * _HARM[0] + draw(-0.1, 0.1) * _COS_T)
    tm = (draw(0.025, 0.045) * sz) * (1.0 + draw(0.3, 0.8) * _RECTUS + draw(0.2, 0.8) * _LUMBAR)
    glut = draw(0.1, 0.35)
    if z > 0.65:  # gluteal muscles at the pelvic levels
        tm = tm + ((z - 0.65) * glut) * _GLUTEAL
    tables = np.empty((4, _N_THETA), np.float32)
    tables[0] = R0
    tables[1] = R1 = R0 - ts_draw
    tables[2] = R2 = R1 - np.maximum(tf, 0.01)
    tables[3] = R3 = R2 - tm
    k = (rho <= np.take(tables, tidx, axis=1)).sum(axis=0, dtype=np.uint8)
    skin_hu = hu["fat"] + (hu["skin"] - hu["fat"]) * ts / ts_draw
    cv.hu = np.array([-1000.0, skin_hu, hu["fat"], hu["muscle"], hu["vfat"]], np.float32)[k]
    cv.lab = np.array([AIR, SKIN, SUBFAT, MUSCLE, VFAT], np.uint8)[k]

    def at(table: np.ndarray, theta: float) -> float:
        return float(table[int((theta + math.pi) * _ANGLE_SCALE) % _N_THETA])

    # the cavity inside the muscle wall: organs are placed relative to it
    Ac = 0.5 * (at(R3, 0.0) + at(R3, math.pi))
    Bc = 0.5 * (at(R3, math.pi / 2) + at(R3, -math.pi / 2))
    cyc = 0.5 * (at(R3, math.pi / 2) - at(R3, -math.pi / 2))
    y_post = -at(R2, -math.pi / 2)  # posterior fat / muscle boundary on the midline

    # ---- table under the patient (drawn directly: only over air) -----------------------------------------------
    table_flag = draw.flag(0.5)
    t_top = -at(R0, -math.pi / 2) - draw(0.01, 0.05)
    t_curv, t_th, t_w = draw(0.0, 0.15), draw(0.012, 0.025), draw(0.8, 1.0)
    if table_flag and t_top > -1.0:
        th_draw = max(t_th, 1.5 * px)
        r0, r1, c0, c1 = cv.window(-t_w, t_w, t_top - th_draw, t_top + t_curv * t_w * t_w + th_draw)
        if r0 < r1 and c0 < c1:
            xw = cv.xs[c0:c1]
            m = np.abs(cv.ys[r0:r1, None] - (t_top - th_draw / 2 + t_curv * xw * xw)[None, :]) <= th_draw / 2
            m &= cv.lab[r0:r1, c0:c1] == AIR
            cv.paint(r0, c0, m, -1000.0 + (hu["table"] + 1000.0) * t_th / th_draw, TABLE)

    sc = _Scene(cv)
    # ---- vertebra: body (or a disc), posterior arch with the canal, spinous and transverse processes -------------
    av = draw(0.095, 0.12) * sz
    bv = av * draw(0.7, 0.85)
    xv = draw(-0.015, 0.015)
    y_v = y_post + draw(0.30, 0.37) * sz
    rc = draw(0.038, 0.05) * sz
    y_canal = y_v - bv - 0.85 * rc
    sacral = z > 0.92
    wide = 1.35 if sacral else 1.0
    tc = draw(0.006, 0.01)
    tc_draw = max(tc, px)
    inner = max(0.05, 1.0 - tc_draw / min(av, bv))
    cortex = hu["marrow"] + (hu["cortex"] - hu["marrow"]) * tc / tc_draw
    disc = draw.flag(0.1) and not sacral
    vphi = draw(-0.05, 0.05)
    if disc:
        sc.add(xv, y_v, av, bv, vphi, [(1.0, hu["disc"], SPINE)], _WALL)
    else:
        sc.add(xv, y_v, av * wide, bv, vphi, [(1.0, cortex, SPINE), (inner, hu["marrow"], SPINE)], _WALL)
    ta = draw(0.018, 0.028) * sz
    sc.add(
        xv, y_canal, rc + ta, rc + ta * 0.8, 0.0, [(1.0, hu["bone"], SPINE), (rc / (rc + ta), hu["csf"], CANAL)], _WALL
    )
    sp_len = max(0.04, (y_canal - rc - ta) - (y_post + 0.03))
    sp_w, sp_phi = draw(0.013, 0.02) * sz, draw(-0.08, 0.08)
    tp_len, tp_phi = draw(0.05, 0.08) * sz, draw(-0.35, 0.05)
    ex_ = [xv + math.sin(sp_phi) * (rc + ta + sp_len / 2)]
    ey_ = [y_canal - rc - ta - sp_len / 2 + 0.01]
    ea_, eb_, ephi_ = [sp_w], [sp_len / 2], [sp_phi]
    if z > 0.3:
        for side in (-1.0, 1.0):
            ex_.append(xv + side * (rc + ta + tp_len * 0.8))
            ey_.append(y_canal + rc * 0.6)
            ea_.append(tp_len)
            eb_.append(0.014 * sz)
            ephi_.append(side * tp_phi)
    sc.add_many(ex_, ey_, np.array(ea_), np.array(eb_), ephi_, [(1.0, hu["bone"], SPINE)], _WALL, bg=hu["muscle"])

    # ---- ribs (and costal cartilage) in the muscle layer ----------------------------------------------------------
    n_rib = draw.integer(3, 6)
    rib_t = draw.array(16, 0.15, 0.85)
    rib_a = draw.array(16, 0.028, 0.055) * sz
    rib_b = draw(0.011, 0.016) * sz
    rib_tilt = draw.array(16, -0.3, 0.3)
    if z < 0.62:
        reach = (0.62 - z) / 0.62  # how far forwards the ribs reach at this level
        th_lo, th_hi = math.radians(-80.0), math.radians(-25.0 + 95.0 * reach)
        n_side = min(8, max(2, round(n_rib * (0.4 + 0.8 * reach))))
        step = (th_hi - th_lo) / n_side
        j = np.concatenate([np.arange(n_side), np.arange(n_side)])
        pick = np.concatenate([np.arange(n_side), 8 + np.arange(n_side)])
        local = th_lo + (j + rib_t[pick]) * step
        thetas = np.where(pick < 8, local, math.pi - local)
        idx = _angle_bin(thetas)
        rr = 0.5 * (R2[idx] + R3[idx])
        cart = local > math.radians(20.0)
        val = np.where(cart, hu["disc"] + 60.0, hu["bone"])  # costal cartilage at the front
        sc.add_many(
            rr * np.cos(thetas),
            rr * np.sin(thetas),
            rib_a[pick],
            rib_b,
            thetas + math.pi / 2 + rib_tilt[pick],
            [(1.0, val, RIB), (0.5, np.where(cart, val, hu["marrow"]), RIB)],
            _WALL,
            bg=hu["muscle"],
        )

    # ---- pelvis (iliac wings) at the lowest levels ------------------------------------------------------------------
    fpel = math.sqrt(max(0.0, (z - 0.75) / 0.25))
    wings = [
        (
            draw(0.72, 0.88),
            draw(0.15, 0.35) * sz,
            draw(0.03, 0.045) * sz,
            draw(0.05, 0.3),
            draw(0.04, 0.08),
            draw(0.3, 0.8),
        )
        for _ in range(2)
    ]
    iliacus = []
    if fpel > 0:
        for side, (lx, ly, bw, bend, gap, back) in zip((-1.0, 1.0), wings):
            x0, y0 = xv + side * (av * wide + gap * sz), y_v - bv * back  # at the sacro-iliac joint
            x1, y1 = x0 + (side * Ac * lx - x0) * (0.45 + 0.55 * fpel), y0 + ly * (0.45 + 0.55 * fpel)
            half = 0.5 * math.hypot(x1 - x0, y1 - y0)
            phi = math.atan2(y1 - y0, x1 - x0)
            cxw, cyw = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
            sc.add(
                cxw,
                cyw,
                half,
                bw,
                phi,
                [(1.0, cortex, PELVIS), (0.55, hu["marrow"], PELVIS)],
                _WALL,
                bend=-side * bend,
                bg=hu["muscle"],
            )
            nxm, nym = -side * math.sin(phi), side * math.cos(phi)  # towards the iliac fossa (antero-medial)
            iliacus.append((cxw + nxm * bw * 2.2, cyw + nym * bw * 2.2, half * 0.85, bw * 1.6, phi, -side * bend))

    # ---- back muscles, psoas / iliacus, crura ------------------------------------------------------------------------
    top_p, bot_p = y_v - bv + 0.02, y_post - 0.01
    a_p = draw(0.07, 0.1) * sz
    tilt = draw(-0.15, 0.15)
    sc.add_many(
        [xv - a_p * 0.9 - 0.01, xv + a_p * 0.9 + 0.01],
        0.5 * (top_p + bot_p),
        a_p,
        0.5 * (top_p - bot_p),
        np.array([-tilt, tilt]),
        [(1.0, hu["muscle"], MUSCLE)],
        _WALL,
    )
    for cxm, cym, am, bm, phm, bdm in iliacus:
        sc.add(cxm, cym, am, bm, phm, [(1.0, hu["muscle"], MUSCLE)], VFAT, bend=bdm)
    ql = draw(0.04, 0.06) * sz
    fps = min(1.0, max(0.0, (z - 0.28) / 0.55))
    ap = (0.03 + 0.07 * fps) * sz * draw(0.85, 1.15)
    p_dy, p_asp, p_phi = draw(-0.01, 0.03), draw(0.75, 1.0), draw(0.2, 0.6)
    mx, my, ma, mb, mphi = [], [], [], [], []
    if 0.25 < z < 0.85:  # quadratus lumborum
        mx += [xv - a_p * 2.0 - ql * 0.8, xv + a_p * 2.0 + ql * 0.8]
        my += [y_v - bv * 0.5] * 2
        ma += [ql * 1.3] * 2
        mb += [ql] * 2
        mphi += [-0.4, 0.4]
    if fps > 0:  # psoas, growing towards the pelvis
        mx += [xv - av * wide - ap * 0.75, xv + av * wide + ap * 0.75]
        my += [y_v + p_dy] * 2
        ma += [ap] * 2
        mb += [ap * p_asp] * 2
        mphi += [-p_phi, p_phi]
    elif z < 0.3:  # diaphragmatic crura hugging the aorta
        mx += [xv - av * 0.55, xv + av * 0.55]
        my += [y_v + bv + 0.05] * 2
        ma += [0.018 * sz] * 2
        mb += [0.07 * sz] * 2
        mphi += [-0.3, 0.3]
    sc.add_many(mx, my, np.array(ma), np.array(mb), mphi, [(1.0, hu["muscle"], MUSCLE)], VFAT, bg=hu["vfat"])

    # ---- great vessels ----------------------------------------------------------------------------------------------
    ra = draw(0.045, 0.062) * sz
    y_ao = y_v + bv * (0.6 if sacral else 1.0) + ra + draw(0.012, 0.04)
    x_ao = xv + draw(0.015, 0.06)
    ivc_a = draw(0.05, 0.075) * sz
    ivc_b = ivc_a * draw(0.55, 0.85)
    x_ivc = xv - draw(0.07, 0.12) * sz
    y_ivc = y_v + bv + ivc_b + draw(0.01, 0.04) + (0.05 if z < 0.25 else 0.0)
    ivc_phi = draw(-0.3, 0.3)
    calc = draw.flag(0.3)
    calc_t, calc_v = draw(0.0, 2 * math.pi), draw(300.0, 700.0)
    if z < 0.82:
        if calc:  # a calcified plaque on the aortic wall
            sc.add(
                x_ao + 0.9 * ra * math.cos(calc_t),
                y_ao + 0.9 * ra * math.sin(calc_t),
                0.012,
                0.008,
                calc_t + 1.57,
                [(1.0, calc_v, VESSEL)],
                VFAT,
                bg=hu["aorta"],
            )
        sc.add(x_ao, y_ao, ra, ra, 0.0, [(1.0, hu["aorta"], AORTA)], (VFAT, MUSCLE))
        sc.add(x_ivc, y_ivc, ivc_a, ivc_b, ivc_phi, [(1.0, hu["ivc"], IVC)], VFAT)
    else:  # below the bifurcation: common / external iliac arteries and veins
        spread = 0.06 + 0.35 * (z - 0.82)
        sc.add_many(
            np.array([-spread, spread, -spread - 0.04, spread + 0.02]) + xv,
            np.array([y_ao, y_ao, y_ao - 0.05, y_ao - 0.05]),
            ra * np.array([0.6, 0.6, 0.7, 0.7]),
            ra * np.array([0.6, 0.6, 0.5, 0.5]),
            0.0,
            [(1.0, np.array([hu["aorta"], hu["aorta"], hu["ivc"], hu["ivc"]]), VESSEL)],
            VFAT,
        )

    # ---- lung bases in the posterior costophrenic recesses ----------------------------------------------------------
    fl = max(0.0, 1.0 - z / 0.22)
    lungs = [(draw(0.5, 1.0), draw(0.2, 0.32), draw(0.06, 0.12), draw(0.2, 0.6)) for _ in range(2)]
    if fl > 0.1:
        for side, lab, (dt, la, lb, lbend) in zip((-1.0, 1.0), (LUNG_R, LUNG_L), lungs):
            t = -math.pi / 2 + side * dt
            rl = at(R3, t) - lb * fl * 0.7
            sc.add(
                rl * math.cos(t),
                rl * math.sin(t),
                la * (0.4 + 0.6 * fl) * sz,
                lb * fl * sz,
                t + math.pi / 2,
                [(1.0, hu["lung"], lab)],
                VFAT,
                bend=-lbend,
            )

    # ---- kidneys (in perirenal fat), posterior beside the spine ------------------------------------------------------
    zc_r = draw(0.48, 0.6)
    zc_l = zc_r - draw(0.03, 0.12)
    for side, lab, zc in ((-1.0, KIDNEY_R, zc_r), (1.0, KIDNEY_L, zc_l)):
        fk = _bump(z, zc, 0.3)
        ak, bk = draw(0.13, 0.17) * sz, draw(0.085, 0.11) * sz
        xk = xv + side * (av + draw(0.13, 0.2) * sz)
        yk = y_v + draw(-0.02, 0.05)
        phik = -side * draw(0.35, 0.8)
        kbend, pyr = draw(0.0, 0.15), draw(0.0, 1.0)
        cyst = (draw.flag(0.08), draw(-0.5, 0.5), draw(-0.5, 0.5), draw(0.2, 0.4))
        if fk < 0.3:
            continue
        ak, bk = ak * (0.4 + 0.6 * fk), bk * (0.5 + 0.5 * fk)
        if cyst[0]:
            sc.add(
                xk + cyst[1] * ak,
                yk + cyst[2] * bk,
                cyst[3] * bk,
                cyst[3] * bk,
                0.0,
                [(1.0, hu["urine"], LESION)],
                VFAT,
            )
        if fk > 0.6:  # renal sinus fat and pelvis, opening towards the hilum (antero-medial)
            sc.add(
                xk - side * 0.45 * bk,
                yk + 0.45 * bk,
                ak * 0.45,
                bk * 0.4,
                phik,
                [(1.0, hu["vfat"], RFAT), (0.45, hu["urine"], lab)],
                VFAT,
            )
        # medullary pyramids: a ring of small ellipses between the cortex and the sinus
        ang = phik + np.linspace(0.0, 2.0 * math.pi, 6, endpoint=False) + pyr
        cs, ss = math.cos(phik), math.sin(phik)
        pu, pv = 0.55 * np.cos(ang - phik), 0.55 * np.sin(ang - phik)
        sc.add_many(
            xk + ak * pu * cs - bk * pv * ss,
            yk + ak * pu * ss + bk * pv * cs,
            0.22 * bk,
            0.15 * bk,
            ang,
            [(1.0, hu["medulla"], lab)],
            VFAT,
        )
        sc.add(xk, yk, ak, bk, phik, [(1.25, hu["vfat"], RFAT), (1.0, hu["kidney"], lab)], VFAT, bend=kbend)

    # ---- stomach (upper levels, image right, anterior) ---------------------------------------------------------------
    fs = math.sqrt(max(0.0, (0.45 - z) / 0.45))
    st = (
        draw(0.2, 0.45),
        draw(0.15, 0.45),
        draw(0.13, 0.22) * sz,
        draw(0.09, 0.15) * sz,
        draw(-0.6, 0.3),
        draw(-0.2, 0.2),
    )
    st_gas, st_lvl, st_food = draw.flag(0.7), draw(-0.3, 0.7), draw.flag(0.3)
    if fs > 0.25:
        xs_, ys_ = Ac * st[0], cyc + Bc * st[1]
        a_s, b_s = st[2] * fs, st[3] * fs
        lvl = ys_ + st_lvl * b_s if st_gas else 10.0
        sc.add(
            xs_,
            ys_,
            a_s,
            b_s,
            st[4],
            [
                (1.0, hu["bowel_wall"], STOMACH),
                (0.8, hu["content"] if st_food else hu["fluid"], CONTENT if st_food else STOMACH),
                (0.8, -1000.0, GAS, lvl),
            ],
            VFAT,
            taper=st[5],
        )

    # ---- spleen: a crescent along the left posterolateral wall (image right) -----------------------------------------
    fsp = _bump(z, draw(0.12, 0.25), 0.32)
    sp = (draw(0.7, 1.2), draw(0.14, 0.22) * sz, draw(0.06, 0.1) * sz, draw(0.1, 0.4))
    if fsp > 0.25:
        t = -math.pi / 2 + sp[0]
        f = 0.5 + 0.5 * fsp
        rs = at(R3, t) - sp[2] * f * 0.8
        sc.add(
            rs * math.cos(t),
            rs * math.sin(t),
            sp[1] * f,
            sp[2] * f,
            t + math.pi / 2,
            [(1.0, hu["spleen"], SPLEEN)],
            VFAT,
            bend=-sp[3],
        )

    # ---- gallbladder (in front of the liver) and liver (image left; left lobe across the midline) --------------------
    fliv = min(1.0, max(0.0, (0.72 - z) / 0.45)) ** 0.6
    rl = (draw(0.3, 0.5), draw(-0.25, 0.1), draw(0.5, 0.65), draw(0.65, 0.9), draw(-0.3, 0.3), draw(-0.25, 0.25))
    ll = (draw(-0.1, 0.2), draw(0.3, 0.55), draw(0.3, 0.5), draw(0.18, 0.32), draw(-0.5, 0.05))
    f_left = min(1.0, max(0.0, (0.42 - z) / 0.3))
    gb = (draw.flag(0.6), draw(0.05, 0.3), draw(0.05, 0.35), draw(0.04, 0.075) * sz, draw(0.6, 1.0), draw(0.0, math.pi))
    if gb[0] and 0.28 < z < 0.58 and fliv > 0.05:
        sc.add(-Ac * gb[1], cyc + Bc * gb[2], gb[3], gb[3] * gb[4], gb[5], [(1.0, hu["bile"], GALLBLADDER)], VFAT)
    # vessels and the odd lesion inside the liver: in front of it, within its outline
    nv = 6
    vx = -Ac * rl[0] + Ac * rl[2] * fliv * 0.55 * draw.array(nv, -1.0, 1.0)
    vy = cyc + Bc * rl[1] + Bc * rl[3] * fliv * 0.55 * draw.array(nv, -1.0, 1.0)
    va = draw.array(nv, 0.012, 0.03) * sz
    vb = va * draw.array(nv, 0.4, 1.0)
    vphi = draw.array(nv, 0.0, math.pi)
    les_n = draw.integer(1, 3) if draw.flag(0.15) else 0
    les = [(draw(-0.5, 0.5), draw(-0.5, 0.5), draw(0.015, 0.06) * sz, draw(0.0, 40.0)) for _ in range(3)]
    if fliv > 0.05 and z < 0.6:
        sc.add_many(vx, vy, va, vb, vphi, [(1.0, hu["portal"], VESSEL)], VFAT, bg=hu["liver"])
        for lx, ly, lr, lv in les[:les_n]:
            sc.add(
                -Ac * rl[0] + lx * Ac * rl[2] * fliv,
                cyc + Bc * (rl[1] + ly * rl[3] * fliv),
                lr,
                lr * 0.9,
                0.0,
                [(1.0, lv, LESION)],
                VFAT,
            )
    if fliv > 0.05:
        sc.add(
            -Ac * rl[0],
            cyc + Bc * rl[1],
            Ac * rl[2] * fliv,
            Bc * rl[3] * (0.4 + 0.6 * fliv),
            rl[4],
            [(1.0, hu["liver"], LIVER)],
            VFAT,
            taper=rl[5],
        )
        if f_left > 0.1:
            sc.add(
                Ac * ll[0],
                cyc + Bc * ll[1],
                Ac * ll[2] * f_left,
                Bc * ll[3] * f_left,
                ll[4],
                [(1.0, hu["liver"], LIVER)],
                VFAT,
                taper=0.4,
            )

    # ---- pancreas draped over the aorta / spine, splenic vein behind it ----------------------------------------------
    fp = _bump(z, draw(0.35, 0.45), 0.17)
    pc = (
        draw(-0.04, 0.08),
        draw(0.1, 0.17),
        draw(0.2, 0.28) * sz,
        draw(0.03, 0.05) * sz,
        draw(-0.35, 0.1),
        draw(0.15, 0.45),
    )
    if fp > 0.2:
        ypc = y_ao + ra + pc[1] * 0.6
        ap_, bp_ = pc[2] * (0.5 + 0.5 * fp), pc[3]
        sc.add(
            pc[0] + 0.05,
            ypc - bp_ * 1.5,
            ap_ * 0.7,
            0.011 * sz,
            pc[4],
            [(1.0, hu["portal"], VESSEL)],
            VFAT,
            bend=pc[5] * 1.5,
            bg=hu["vfat"],
        )
        sc.add(
            pc[0], ypc, ap_, bp_, pc[4], [(1.4, hu["vfat"], RFAT), (1.0, hu["pancreas"], PANCREAS)], VFAT, bend=pc[5]
        )

    # ---- bowel: colon at the flanks and across the front, small-bowel loops in the middle ----------------------------
    n_small = int(3 + 14 * z + draw(0.0, 4.0))
    cand_x = draw.array(2 * n_small, -0.85, 0.85)
    cand_y = draw.array(2 * n_small, -0.35, 0.92)
    keep = np.flatnonzero(cand_x**2 + cand_y**2 < 0.8)[:n_small]
    bx, by = [cand_x[keep] * Ac], [cyc + cand_y[keep] * Bc]
    ba = [draw.array(keep.size, 0.035, 0.075) * sz]
    colon = [
        (draw(0.6, 0.8), draw(-0.2, 0.2), draw(0.06, 0.09)),
        (draw(0.65, 0.82), draw(-0.4, 0.0), draw(0.05, 0.075)),
        (draw(-0.4, 0.4), draw(0.55, 0.8), draw(0.06, 0.09)),
    ]
    if 0.3 < z < 0.95:  # ascending (image left) and descending (image right) colon
        bx.append(np.array([-Ac * colon[0][0], Ac * colon[1][0]]))
        by.append(cyc + Bc * np.array([colon[0][1], colon[1][1]]))
        ba.append(np.array([colon[0][2], colon[1][2]]) * sz)
    if 0.2 < z < 0.6:  # transverse colon
        bx.append(np.array([Ac * colon[2][0]]))
        by.append(np.array([cyc + Bc * colon[2][1]]))
        ba.append(np.array([colon[2][2] * sz]))
    bx, by, ba = np.concatenate(bx), np.concatenate(by), np.concatenate(ba)
    n = bx.size
    if n:
        bb = ba * draw.array(n, 0.55, 1.0)
        bphi = draw.array(n, 0.0, math.pi)
        kind = draw.array(n)  # what fills each loop
        r_in = draw.array(n, 0.6, 0.85)
        lvl_f = draw.array(n, -0.5, 0.6)
        is_colon = np.arange(n) >= keep.size
        gas_full = (kind < 0.2) | (is_colon & (kind < 0.45))
        feces = is_colon & (kind >= 0.45) & (kind < 0.8)
        collapsed = ~is_colon & (kind > 0.85)
        r_in = np.where(collapsed, 0.0, r_in)
        ymin = np.where(gas_full, _NO_YMIN, np.where((kind < 0.4) | feces, by + lvl_f * bb, 10.0))
        sc.add_many(
            bx,
            by,
            ba,
            bb,
            bphi,
            [
                (1.0, np.where(collapsed, hu["bowel_wall"] - 5.0, hu["bowel_wall"]), BOWEL),
                (r_in, np.where(feces, hu["content"], hu["fluid"]), np.where(feces, CONTENT, BOWEL)),
                (r_in, -1000.0, GAS, ymin),
            ],
            VFAT,
            bend=draw.array(n, -0.5, 0.5),
            taper=draw.array(n, -0.3, 0.3),
        )

    # ---- mesenteric vessels: small dots in the fat -------------------------------------------------------------------
    nd = 8
    sc.add_many(
        Ac * draw.array(nd, -0.6, 0.6),
        cyc + Bc * draw.array(nd, -0.2, 0.7),
        0.009 * sz,
        0.009 * sz,
        0.0,
        [(1.0, hu["portal"], VESSEL)],
        VFAT,
        bg=hu["vfat"],
    )
    sc.render()
    return {"level": z, "contrast": hu["contrast"]}


def _finish(cv: _Canvas, draw: _Draw, wy, wx, sigma_px: float, noise: float, version: int = 1, contrast: bool = False) -> np.ndarray:
    """Textures, partial-volume blur and noise; returns float32 HU. ``version=2`` adds the
    structure and reconstruction grain of :mod:`ctflow.data.ct_realism` (v1 output is unchanged)."""
    amp_low, amp_mid = _texture_amplitudes(draw)
    img = cv.hu + amp_low[cv.lab] * _texture(draw, wy[0], wx[0])
    img += amp_mid[cv.lab] * _texture(draw, wy[1], wx[1])
    if version == 2:
        rng = np.random.default_rng(draw.rng.integers(0, 2**63 - 1))
        ct_realism.add_structure(img, cv.lab, rng, cv.px, _V2_GROUPS, contrast)
    img = _blur(img, sigma_px)
    if version == 2:
        img = ct_realism.add_recon_grain(img, rng)
    if noise > 0.0:
        img += draw.rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.ascontiguousarray(img, dtype=np.float32)


def abdomen_slice(
    seed: int,
    size: int = 64,
    *,
    hu: bool = False,
    noise: float = 0.0,
    return_labels: bool = False,
    level: float | None = None,
    version: int = 1,
):
    """One procedural axial abdomen CT slice.

    Args:
        seed: a non-negative integer; the slice depends on nothing else (same seed, same bits).
        size: output side in pixels (16..512); the anatomy is drawn on that grid directly.
        hu: return Hounsfield units instead of the L40/W400 window mapped to [0, 1].
        noise: standard deviation (HU) of white noise added after the blur (0: none). The anatomy
            does not depend on ``noise``.
        return_labels: also return the ``(size, size)`` uint8 tissue label map (values index
            :data:`TISSUES`), as drawn before texture and blur.
        level: force the slice level in [0, 1] (0: liver dome and lung bases, ~0.4: kidneys and
            pancreas, 1: upper pelvis); ``None`` draws it from the seed. The rest of the anatomy
            still comes from the seed.
        version: 1 (piecewise-smooth, as before) or 2 (phantoms v2: parenchyma texture, vessels,
            fat septa, muscle marbling, FBP-like noise grain; see :mod:`ctflow.data.ct_realism`).
            The anatomy of a seed is the same in both.

    Returns:
        float32 ``(size, size)`` image, or ``(image, labels)`` with ``return_labels``.
    """
    size = _check_size(size)
    noise = _check_noise(noise)
    version = _check_version(version)
    draw = _Draw(np.random.default_rng(seed))
    xs, ys, rho, tidx = _axial_grid(size)
    cv = _Canvas(xs, ys)
    facts = _axial_scene(cv, tidx, rho, draw, level)
    rbf = _axial_rbf(size)
    img = _finish(cv, draw, (rbf[0], rbf[2]), (rbf[1], rbf[3]), draw(0.5, 1.0), noise, version, facts["contrast"])
    if not hu:
        img = hu_to_window(img)
    return (img, cv.lab) if return_labels else img


# --------------------------------------------------------------------------------------------------
# Coronal sections and organ-centred crops
# --------------------------------------------------------------------------------------------------

# coronal world: x in [-1, 1] (patient's right on the image's left), y in [-1.35, 1.35] (head up)
_COR_X = (-1.0, 1.0)
_COR_Y = (-1.35, 1.35)
# depth of the coronal plane (0 anterior .. 1 posterior) over which each OrganMNIST organ is cut
_COR_DEPTH = {
    BLADDER: (0.0, 0.45),
    FEMUR_L: (0.25, 0.8),
    FEMUR_R: (0.25, 0.8),
    HEART: (0.0, 0.55),
    KIDNEY_L: (0.45, 0.95),
    KIDNEY_R: (0.45, 0.95),
    LIVER: (0.0, 0.95),
    LUNG_L: (0.0, 1.0),
    LUNG_R: (0.0, 1.0),
    PANCREAS: (0.2, 0.5),
    SPLEEN: (0.35, 0.95),
}
_COARSE_PX = 0.025  # pixel of the whole-section pass that finds the organ's bounding box


def _depth_factor(d: float, organ: int) -> float:
    lo, hi = _COR_DEPTH[organ]
    return _bump(d, 0.5 * (lo + hi), 0.5 * (hi - lo) + 0.05)


def _coronal_scene(cv: _Canvas, draw: _Draw, d: float) -> dict:
    """Draw a coronal abdomen section at depth ``d`` (0 anterior, 1 posterior) onto ``cv``.

    Every random draw happens whatever the grid is, so the same generator state gives the same
    anatomy on any grid (the crop is drawn twice: whole section, then the crop window)."""
    px = cv.px
    hu = _tissue_values(draw)
    sz = draw(0.9, 1.1)
    xs, ys = cv.xs, cv.ys
    X = xs[None, :]

    # ---- body wall: half-widths per row (skin, subcutaneous fat, muscle) ----------------------------------------
    xc = draw(-0.03, 0.03)
    cut = math.sqrt(max(0.3, 1.0 - ((d - 0.5) / 0.62) ** 2))  # narrower off the mid-coronal plane
    W0, w1, w2, hip = draw(0.68, 0.84), draw(-0.04, 0.04), draw(0.0, 0.06), draw(0.02, 0.1)
    ts = draw(0.008, 0.012)
    ts_draw = max(ts, px)
    fat0, fat1 = 0.02 + 0.13 * draw() ** 1.5, draw(0.2, 0.7)
    tm0, glute = draw(0.025, 0.045) * sz, draw(0.05, 0.15)

    def walls(y):
        W = sz * cut * (W0 + w1 * y + w2 * y * y + hip * np.exp(-(((y + 1.0) / 0.3) ** 2)))
        tf = fat0 * (1.0 + fat1 * np.exp(-(((y + 0.4) / 0.5) ** 2)))
        tm = tm0 + glute * np.exp(-(((y + 1.05) / 0.3) ** 2))
        W1 = W - ts_draw
        return W, W1, W1 - tf, W1 - tf - tm

    tables = np.stack(walls(ys)).astype(np.float32)[:, :, None]
    k = (np.abs(X - xc).astype(np.float32) <= tables).sum(axis=0, dtype=np.uint8)
    skin_hu = hu["fat"] + (hu["skin"] - hu["fat"]) * ts / ts_draw
    cv.hu = np.array([-1000.0, skin_hu, hu["fat"], hu["muscle"], hu["vfat"]], np.float32)[k]
    cv.lab = np.array([AIR, SKIN, SUBFAT, MUSCLE, VFAT], np.uint8)[k]

    # ---- diaphragm domes, lungs, mediastinum (drawn directly on the rows above the domes) ---------------------------
    post = max(0.0, d - 0.5)
    yr = draw(0.3, 0.5) - 0.35 * post  # the right dome is higher; both drop in the posterior recesses
    yl = yr - draw(0.03, 0.12)
    xr, xl = -draw(0.3, 0.45) * sz, draw(0.3, 0.45) * sz
    kr, kl = draw(0.8, 1.4), draw(0.8, 1.4)

    def dome_at(x):
        return np.maximum(yr - kr * (x - xr) ** 2, yl - kl * (x - xl) ** 2)

    dome = dome_at(xs)
    th_d = max(draw(0.012, 0.02), px)
    xm, wm = draw(-0.02, 0.06), draw(0.08, 0.14) * sz
    r0, r1, _, _ = cv.window(-2.0, 2.0, float(dome.min()) - th_d, 5.0)
    if r0 < r1:
        Y = ys[r0:r1, None]
        lab = cv.lab[r0:r1]
        dm = dome[None, :]
        cav = lab == VFAT
        diaph = cav & (np.abs(Y - dm) <= th_d / 2)
        thorax = cav & (Y > dm + th_d / 2)
        med = thorax & (np.abs(X - xm) <= wm)
        lung = thorax & ~med
        cv.paint(r0, 0, diaph, hu["muscle"], MUSCLE)
        cv.paint(r0, 0, med, hu["vfat"], MEDIASTINUM)
        cv.paint(r0, 0, lung & (X < xm), hu["lung"], LUNG_R)
        cv.paint(r0, 0, lung & (X >= xm), hu["lung"], LUNG_L)

    # ---- spine column and sacrum (drawn directly, row by row) --------------------------------------------------------
    fsp = _bump(d, 0.74, 0.26)
    wv0 = draw(0.09, 0.12) * sz
    period = draw(0.16, 0.19) * sz
    phase0 = draw(0.0, 1.0)
    disc_frac = draw(0.18, 0.26)
    y_sac = draw(-0.8, -0.7)
    y_sac_bot = y_sac - draw(0.35, 0.45)
    tc_draw = max(draw(0.006, 0.01), px)
    cortex = hu["marrow"] + (hu["cortex"] - hu["marrow"]) * min(1.0, 0.008 / tc_draw)
    if fsp > 0.1:
        wv = wv0 * fsp * (1.0 - 0.15 * ys)  # lumbar bodies wider than thoracic ones
        sac = ys < y_sac
        wv = np.where(sac, wv0 * 1.8 * fsp * np.clip((ys - y_sac_bot) / (y_sac - y_sac_bot), 0.0, 1.0), wv)
        ph = ((ys - phase0 * period) / period) % 1.0
        disc = (ph < disc_frac) & ~sac
        endplate = ((ph < disc_frac + tc_draw / period) | (ph > 1.0 - tc_draw / period)) & ~disc & ~sac
        row_val = np.where(disc, hu["disc"], np.where(endplate, cortex, hu["marrow"])).astype(np.float32)
        r0, r1, c0, c1 = cv.window(xc - 2.0 * wv0, xc + 2.0 * wv0, -5.0, 5.0)
        if r0 < r1 and c0 < c1:
            dist = np.abs(cv.xs[c0:c1][None, :] - xc)
            m = dist <= wv[r0:r1, None]
            m &= _allowed_lut((VFAT, MUSCLE, MEDIASTINUM, LUNG_R, LUNG_L))[cv.lab[r0:r1, c0:c1]]
            edge = (dist > (wv[r0:r1, None] - tc_draw)) & ~disc[r0:r1, None]
            vals = np.where(edge, np.float32(cortex), row_val[r0:r1, None])
            np.copyto(cv.hu[r0:r1, c0:c1], vals, where=m)
            np.putmask(cv.lab[r0:r1, c0:c1], m, SPINE)

    sc = _Scene(cv)
    # ---- heart on the central tendon, lung vessels ------------------------------------------------------------------
    nlv = 14
    sc.add_many(
        draw.array(nlv, -0.7, 0.7) * sz,
        yr + draw.array(nlv, 0.05, 0.9),
        draw.array(nlv, 0.006, 0.016),
        0.008,
        draw.array(nlv, 0.0, math.pi),
        [(1.0, draw(-100.0, 40.0), VESSEL)],
        (LUNG_R, LUNG_L),
        bg=hu["lung"],
    )
    fh = _depth_factor(d, HEART)
    hx = xm + draw(0.05, 0.15) * sz
    ha, hb, hphi = draw(0.22, 0.3) * sz, draw(0.17, 0.24) * sz, draw(0.2, 0.5)
    if fh > 0.2:
        hf = 0.5 + 0.5 * fh
        y_floor = float(dome_at(np.array(hx)))
        sc.add(
            hx,
            y_floor + hb * hf * 0.75,
            ha * hf,
            hb * hf,
            hphi,
            [(1.08, hu["vfat"], MEDIASTINUM), (1.0, hu["heart"], HEART)],
            (LUNG_R, LUNG_L, MEDIASTINUM),
        )

    # ---- ribs along the lateral chest wall ---------------------------------------------------------------------------
    spacing = draw(0.1, 0.14) * sz
    y_low = draw(-0.3, -0.05)
    rib_y = np.arange(_COR_Y[1] + 0.2 - draw(0.0, spacing), y_low, -spacing)
    nr = rib_y.size
    jitter = draw.array(2 * nr, -0.03, 0.03)
    ar, br = draw(0.03, 0.045) * sz, draw(0.015, 0.022) * sz
    rib_phi = draw.array(2 * nr, -0.4, 0.4)
    if nr:
        _, _, W2, W3 = walls(rib_y)
        w = 0.5 * (W2 + W3)
        sc.add_many(
            np.concatenate([xc - w, xc + w]),
            np.concatenate([rib_y, rib_y]) + jitter,
            ar,
            br,
            rib_phi,
            [(1.0, hu["bone"], RIB), (0.5, hu["marrow"], RIB)],
            (MUSCLE, SUBFAT, VFAT, LUNG_R, LUNG_L),
            bg=hu["muscle"],
        )

    # ---- pelvis: femora (head, neck, trochanter, shaft), acetabula, iliac wings, pubis -------------------------------
    fpel = _bump(d, 0.6, 0.45)
    fem_f = _bump(d, 0.52, 0.32)
    fem = [
        (xc + side * draw(0.34, 0.42) * sz, draw(-1.08, -0.95), draw(0.085, 0.105) * sz * (0.5 + 0.5 * fem_f))
        for side in (-1.0, 1.0)
    ]
    wing = [(draw(0.55, 0.65) * sz, draw(-0.45, -0.3), draw(0.03, 0.05) * sz) for _ in range(2)]
    iliacus_t, glut_t = draw(0.04, 0.07) * sz, draw(0.05, 0.1) * sz
    bone_over = (VFAT, MUSCLE, SUBFAT)
    for side, lab, (hx_, hy_, hr) in zip((-1.0, 1.0), (FEMUR_R, FEMUR_L), fem):
        if fem_f <= 0.15:
            continue
        nx_, ny_ = hx_ + side * hr * 2.0, hy_ - hr * 1.3
        L = math.hypot(nx_ - hx_, ny_ - hy_)
        parts = [  # (cx, cy, a, b, phi)
            (hx_, hy_, hr, hr, 0.0),
            (0.5 * (hx_ + nx_), 0.5 * (hy_ + ny_), L * 0.6, hr * 0.72, math.atan2(ny_ - hy_, nx_ - hx_)),
            (nx_ + side * hr * 0.25, ny_ + hr * 0.1, hr * 0.8, hr * 0.95, 0.0),
            (nx_ - side * hr * 0.1, ny_ - hr * 3.5, hr * 0.75, hr * 3.6, side * 0.06),
        ]
        p = np.array(parts)
        sc.add_many(
            p[:, 0], p[:, 1], p[:, 2] * 0.8, p[:, 3] * 0.8, p[:, 4], [(1.0, hu["marrow"] * 0.8, lab)], bone_over
        )  # marrow first
        sc.add_many(p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4], [(1.0, cortex, lab)], bone_over)
        sc.add(
            hx_ - side * hr * 0.15,
            hy_ + hr * 0.2,
            hr * 1.35,
            hr * 1.3,
            0.0,
            [(1.0, cortex, PELVIS), (0.8, hu["marrow"], PELVIS)],
            bone_over,
        )
    for side, (hx_, hy_, hr), (xw, yw, bw) in zip((-1.0, 1.0), fem, wing):
        if fpel > 0.15:
            x0_, y0_ = hx_ - side * 0.02, hy_ + hr * 1.2
            x1_, y1_ = xc + side * xw, yw
            L = math.hypot(x1_ - x0_, y1_ - y0_)
            phw = math.atan2(y1_ - y0_, x1_ - x0_)
            sc.add(
                0.5 * (x0_ + x1_),
                0.5 * (y0_ + y1_),
                L / 2,
                bw * (0.6 + 0.4 * fpel),
                phw,
                [(1.0, cortex, PELVIS), (0.5, hu["marrow"], PELVIS)],
                bone_over,
                bend=side * 0.15,
                bg=hu["muscle"],
            )
            # iliacus on the inner face of the wing, gluteal muscles on the outer face
            nxm, nym = side * math.sin(phw), -side * math.cos(phw)
            nxm, nym = (nxm, nym) if nxm * side < 0 else (-nxm, -nym)  # unit normal pointing medially
            for sgn, thick in ((1.0, iliacus_t), (-1.0, glut_t)):
                sc.add(
                    0.5 * (x0_ + x1_) + sgn * nxm * (bw + thick),
                    0.5 * (y0_ + y1_) + sgn * nym * (bw + thick),
                    L * 0.48,
                    thick,
                    phw,
                    [(1.0, hu["muscle"], MUSCLE)],
                    (VFAT, SUBFAT),
                    bend=side * 0.15,
                )
    for side, (hx_, hy_, hr) in zip((-1.0, 1.0), fem):
        if fem_f > 0.15:  # hip muscles around the femoral head and neck
            sc.add(
                hx_ + side * hr * 1.2,
                hy_ - hr * 0.8,
                hr * 3.0,
                hr * 3.4,
                side * 0.3,
                [(1.0, hu["muscle"], MUSCLE)],
                (VFAT, SUBFAT),
            )
    pub = draw(0.08, 0.12)
    if d < 0.3:
        sc.add_many(
            [xc - pub, xc + pub],
            -1.25,
            0.07,
            0.045,
            0.0,
            [(1.0, cortex, PELVIS), (0.5, hu["marrow"], PELVIS)],
            (VFAT, MUSCLE),
        )

    # ---- psoas, bladder, great vessels, kidneys ----------------------------------------------------------------------
    fps = _bump(d, 0.58, 0.25)
    ps_w = draw(0.05, 0.07) * sz
    ps = [(draw(0.0, 0.15), draw(0.25, 0.33) * sz, draw(-0.95, -0.8)) for _ in range(2)]
    if fps > 0.15:
        for side, (y0_, xb, yb) in zip((-1.0, 1.0), ps):
            x0_, x1_ = xc + side * (wv0 + 0.02), xc + side * xb
            L = math.hypot(x1_ - x0_, yb - y0_)
            sc.add(
                0.5 * (x0_ + x1_),
                0.5 * (y0_ + yb),
                L / 2,
                ps_w * fps,
                math.atan2(yb - y0_, x1_ - x0_),
                [(1.0, hu["muscle"], MUSCLE)],
                VFAT,
            )
    fb = _depth_factor(d, BLADDER)
    bl = (draw(-0.03, 0.03), draw(-1.08, -0.92), draw(0.12, 0.2) * sz, draw(0.08, 0.14) * sz)
    if fb > 0.2:
        f = 0.5 + 0.5 * fb
        sc.add(
            xc + bl[0],
            bl[1],
            bl[2] * f,
            bl[3] * f,
            0.0,
            [(1.0, hu["bowel_wall"], BLADDER), (0.88, hu["urine"], BLADDER)],
            VFAT,
        )
    fp = _depth_factor(d, PANCREAS)  # the pancreas lies in front of the great vessels and kidneys
    pc = (
        draw(-0.05, 0.12),
        draw(-0.1, 0.08),
        draw(0.2, 0.3) * sz,
        draw(0.04, 0.06) * sz,
        draw(0.1, 0.4),
        draw(-0.3, 0.3),
    )
    if fp > 0.2:
        sc.add(
            xc + pc[0],
            pc[1],
            pc[2] * (0.5 + 0.5 * fp),
            pc[3],
            pc[4],
            [(1.4, hu["vfat"], RFAT), (1.0, hu["pancreas"], PANCREAS)],
            VFAT,
            bend=pc[5],
        )
    fv = _bump(d, 0.48, 0.15)
    ao = (draw(0.02, 0.07), draw(-0.45, -0.3), draw(0.04, 0.055) * sz)
    ivc = (-draw(0.06, 0.11), draw(0.05, 0.07) * sz)
    if fv > 0.2:
        top = max(yr, yl) + 0.1
        xa = xc + ao[0]
        sc.add(
            xa,
            0.5 * (top + ao[1]),
            ao[2] * fv,
            0.5 * (top - ao[1]),
            0.0,
            [(1.0, hu["aorta"], AORTA)],
            (VFAT, MUSCLE, MEDIASTINUM),
        )
        for side in (-1.0, 1.0):
            x1_, y1_ = xc + side * 0.3, -0.95
            L = math.hypot(x1_ - xa, y1_ - ao[1])
            sc.add(
                0.5 * (xa + x1_),
                0.5 * (ao[1] + y1_),
                L / 2,
                ao[2] * 0.6 * fv,
                math.atan2(y1_ - ao[1], x1_ - xa),
                [(1.0, hu["aorta"], VESSEL)],
                VFAT,
                bg=hu["vfat"],
            )
        sc.add(
            xc + ivc[0], 0.5 * (yr - 0.4), ivc[1] * fv, 0.5 * (yr + 0.4), 0.0, [(1.0, hu["ivc"], IVC)], (VFAT, MUSCLE)
        )
    kid = []
    for side, lab in ((-1.0, KIDNEY_R), (1.0, KIDNEY_L)):
        fk = _depth_factor(d, lab)
        kx = xc + side * draw(0.26, 0.34) * sz
        ky = draw(-0.2, -0.05) if side < 0 else draw(-0.1, 0.05)
        ka, kb = draw(0.11, 0.15) * sz, draw(0.22, 0.3) * sz
        kphi, pyr = side * draw(0.1, 0.35), draw(0.0, 1.0)
        if fk > 0.2:
            f = 0.4 + 0.6 * fk
            ang = np.linspace(0.0, 2.0 * math.pi, 7, endpoint=False) + pyr
            cs, ss = math.cos(kphi), math.sin(kphi)
            pu, pv = 0.55 * np.cos(ang), 0.6 * np.sin(ang)
            sc.add_many(
                kx + ka * f * pu * cs - kb * f * pv * ss,
                ky + ka * f * pu * ss + kb * f * pv * cs,
                0.2 * ka * f,
                0.12 * kb * f,
                ang + kphi,
                [(1.0, hu["medulla"], lab)],
                VFAT,
            )
            sc.add(kx, ky, ka * f, kb * f, kphi, [(1.3, hu["vfat"], RFAT), (1.0, hu["kidney"], lab)], VFAT)
            kid.append((side, lab, fk, kx, ky, ka * f, kb * f, kphi))
    sc.render()

    # ---- liver: the wedge under the right dome (drawn directly, around what is already there) ------------------------
    fliv = _bump(d, 0.45, 0.6)
    y_low_l = draw(-0.5, -0.2) + 0.3 * (1.0 - fliv)
    slope = draw(0.5, 0.95)
    x_tip = draw(0.05, 0.45) * sz - 0.6 * post
    x_lat = xc - sz * cut * (W0 + hip)
    curv = draw(-0.3, 0.3)
    if fliv > 0.1:
        r0, r1, c0, c1 = cv.window(-2.0, x_tip, y_low_l - 0.1, max(yr, yl))
        if r0 < r1 and c0 < c1:
            xw = cv.xs[c0:c1][None, :]
            bottom = y_low_l + slope * (xw - x_lat) + curv * (xw - x_lat) * (xw - x_tip)
            Y = ys[r0:r1, None]
            m = (Y < dome[None, c0:c1] - th_d / 2) & (Y > bottom) & (cv.lab[r0:r1, c0:c1] == VFAT)
            cv.paint(r0, c0, m, hu["liver"], LIVER)

    # ---- second scene: inside the liver and kidneys, then spleen, stomach, pancreas, bowel ---------------------------
    nv = 6
    vx = x_lat + draw.array(nv, 0.15, 0.6)
    vy = draw.array(nv, y_low_l + 0.2, yr - 0.05)
    va = draw.array(nv, 0.012, 0.03)
    vphi = draw.array(nv, 0.0, math.pi)
    if fliv > 0.1:
        sc.add_many(vx, vy, va, 0.012, vphi, [(1.0, hu["portal"], VESSEL)], LIVER, bg=hu["liver"])
    for side, lab, fk, kx, ky, ka, kb, kphi in kid:
        if fk > 0.5:  # renal sinus fat and pelvis at the hilum (medial)
            sc.add(
                kx - side * ka * 0.55,
                ky,
                ka * 0.45,
                kb * 0.4,
                kphi,
                [(1.0, hu["vfat"], RFAT), (0.45, hu["urine"], lab)],
                lab,
            )
    gbf, gbx, gba, gbphi = draw.flag(0.6), draw(-0.35, -0.1), draw(0.05, 0.08), draw(-0.5, 0.5)
    if gbf and d < 0.5 and fliv > 0.1:
        sc.add(
            gbx,
            y_low_l + slope * (gbx - x_lat) + 0.03,
            gba,
            gba * 1.5,
            gbphi,
            [(1.0, hu["bile"], GALLBLADDER)],
            (LIVER, VFAT),
        )
    fs = _depth_factor(d, SPLEEN)
    spx = xc + draw(0.45, 0.62) * sz
    spa, spb, spphi = draw(0.08, 0.12) * sz, draw(0.14, 0.22) * sz, draw(-0.35, 0.35)
    if fs > 0.2:
        f = 0.5 + 0.5 * fs
        y_top = float(dome_at(np.array(spx)))
        sc.add(
            spx, y_top - spb * f * 0.9 - th_d, spa * f, spb * f, spphi, [(1.0, hu["spleen"], SPLEEN)], VFAT, bend=0.2
        )
    fst = _bump(d, 0.2, 0.35)
    stx, sta, stb = draw(0.12, 0.35) * sz, draw(0.12, 0.2) * sz, draw(0.1, 0.17) * sz
    st_lvl, st_phi = draw(-0.2, 0.6), draw(-0.4, 0.4)
    if fst > 0.2:
        sty = yl - 0.05 - stb
        sc.add(
            xc + stx,
            sty,
            sta * fst,
            stb * fst,
            st_phi,
            [
                (1.0, hu["bowel_wall"], STOMACH),
                (0.82, hu["fluid"], STOMACH),
                (0.82, -1000.0, GAS, sty + st_lvl * stb * fst),
            ],
            VFAT,
        )
    n = draw.integer(12, 22)
    bx = xc + draw.array(n, -0.65, 0.65) * sz
    by = draw.array(n, -0.9, 0.15)
    ba = draw.array(n, 0.04, 0.08) * sz
    bb = ba * draw.array(n, 0.6, 1.0)
    kind = draw.array(n)
    r_in = draw.array(n, 0.6, 0.85)
    lvl = by + draw.array(n, -0.5, 0.6) * bb
    ymin = np.where(kind < 0.2, _NO_YMIN, np.where(kind < 0.45, lvl, 10.0))
    feces = (kind > 0.75) & (np.abs(bx - xc) > 0.4)
    sc.add_many(
        bx,
        by,
        ba,
        bb,
        draw.array(n, 0.0, math.pi),
        [
            (1.0, hu["bowel_wall"], BOWEL),
            (r_in, np.where(feces, hu["content"], hu["fluid"]), np.where(feces, CONTENT, BOWEL)),
            (r_in, -1000.0, GAS, ymin),
        ],
        VFAT,
        bend=draw.array(n, -0.5, 0.5),
        taper=draw.array(n, -0.3, 0.3),
    )
    nd = 8
    sc.add_many(
        xc + draw.array(nd, -0.5, 0.5),
        draw.array(nd, -0.8, 0.1),
        0.009,
        0.009,
        0.0,
        [(1.0, hu["portal"], VESSEL)],
        VFAT,
        bg=hu["vfat"],
    )
    sc.render()
    return {"depth": d, "contrast": hu["contrast"]}


def _coronal_grid(x0: float, y1: float, side: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of an n x n crop with top-left corner (x0, y1) and side ``side`` (world units)."""
    px = side / n
    return x0 + (np.arange(n) + 0.5) * px, y1 - (np.arange(n) + 0.5) * px


def coronal_crop(
    seed: int,
    size: int = 64,
    *,
    hu: bool = False,
    noise: float = 0.0,
    organ: int | None = None,
    return_labels: bool = False,
    version: int = 1,
):
    """A coronal abdomen view cropped around one organ, in the spirit of OrganCMNIST.

    A coronal section (lung bases and heart at the top, liver under the right dome on the image's
    left, spleen and stomach on the right, kidneys beside the spine column, bowel, iliac wings,
    femoral heads and bladder at the bottom) is laid out at a random depth; one organ is chosen and
    the section is drawn on a square grid centred on that organ's bounding box (plus a random
    margin of 5-25 % per side), ``size`` pixels across, then textured, blurred and windowed like
    :func:`abdomen_slice`. The depth of the plane is drawn within the range where the chosen organ
    is cut; the bounding box is that of its largest connected part in a coarse pass over the whole
    section. If the organ is hidden behind others there (rare), the crop centres on the largest
    organ shown instead, and the returned label says so.

    Args:
        seed: the crop depends only on it.
        size: output side (16..512).
        hu, noise: as in :func:`abdomen_slice`.
        organ: force the OrganMNIST class (0..10) to centre on; ``None`` picks one uniformly.
        return_labels: also return the crop's tissue label map (values index :data:`TISSUES`).
        version: 1 or 2 (phantoms v2), as in :func:`abdomen_slice`.

    Returns:
        ``(image, label)``: label is the OrganMNIST class of the centred organ (0 bladder,
        1 femur-left, 2 femur-right, 3 heart, 4 kidney-left, 5 kidney-right, 6 liver, 7 lung-left,
        8 lung-right, 9 pancreas, 10 spleen); ``(image, label, labels)`` with ``return_labels``.
    """
    size = _check_size(size)
    noise = _check_noise(noise)
    version = _check_version(version)
    if organ is not None and organ not in _FROM_ORGANMNIST:
        raise ValueError(f"organ must be an OrganMNIST class 0..10, got {organ!r}")
    draw = _Draw(np.random.default_rng(seed))
    pick = draw.integer(0, 10)
    target = _FROM_ORGANMNIST[pick if organ is None else organ]
    lo, hi = _COR_DEPTH[target]
    depth = lo + (hi - lo) * draw(0.2, 0.8)
    margin = draw(0.05, 0.25)
    sigma_u, res = draw(0.5, 1.0), draw(0.003, 0.007)
    scene_seed = int(draw.rng.integers(0, 2**63 - 1))

    # pass 1: the whole section on a coarse grid -> bounding box of the target organ
    nx = round((_COR_X[1] - _COR_X[0]) / _COARSE_PX)
    ny = round((_COR_Y[1] - _COR_Y[0]) / _COARSE_PX)
    xs = _COR_X[0] + (np.arange(nx) + 0.5) * _COARSE_PX
    ys = _COR_Y[1] - (np.arange(ny) + 0.5) * _COARSE_PX
    coarse = _Canvas(xs, ys)
    _coronal_scene(coarse, _Draw(np.random.default_rng(scene_seed)), depth)
    mask = coarse.lab == target
    if not mask.any():  # hidden by something drawn before it: centre on the largest organ shown
        cls = organmnist_label(coarse.lab)
        target = _FROM_ORGANMNIST[cls if cls >= 0 else 6]
        mask = coarse.lab == target
    parts, n_parts = ndimage.label(mask)
    if n_parts > 1:  # the organ proper, not slivers between other organs
        mask = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    bx0, bx1 = xs[cols[0]] - _COARSE_PX / 2, xs[cols[-1]] + _COARSE_PX / 2
    by0, by1 = ys[rows[-1]] - _COARSE_PX / 2, ys[rows[0]] + _COARSE_PX / 2
    side = max(bx1 - bx0, by1 - by0, 0.12) * (1.0 + 2.0 * margin)
    cxb, cyb = 0.5 * (bx0 + bx1), 0.5 * (by0 + by1)

    # pass 2: the same section drawn on the crop grid
    xs, ys = _coronal_grid(cxb - side / 2, cyb + side / 2, side, size)
    cv = _Canvas(xs, ys)
    sdraw = _Draw(np.random.default_rng(scene_seed))
    facts = _coronal_scene(cv, sdraw, depth)
    wy = tuple(_rbf_matrix(ys, _COR_Y[0] - 0.2, _COR_Y[1] + 0.2, sp) for sp in _TEXTURE_SPACINGS)
    wx = tuple(_rbf_matrix(xs, _COR_X[0] - 0.2, _COR_X[1] + 0.2, sp) for sp in _TEXTURE_SPACINGS)
    sigma = min(2.5, max(sigma_u, res / (side / size)))
    img = _finish(cv, sdraw, wy, wx, sigma, noise, version, facts["contrast"])
    if not hu:
        img = hu_to_window(img)
    label = _TO_ORGANMNIST[target]
    return (img, label, cv.lab) if return_labels else (img, label)


# --------------------------------------------------------------------------------------------------
# Generator object, dataset, npz writer
# --------------------------------------------------------------------------------------------------


class AbdomenPhantom:
    """A configured phantom source: ``phantom(seed)`` gives one image (axial or coronal).

    Args:
        size: output side in pixels (16..512).
        kind: ``"axial"`` (:func:`abdomen_slice`), ``"coronal"`` (:func:`coronal_crop`) or
            ``"mixed"`` (axial for even seeds, coronal for odd ones).
        hu: Hounsfield units instead of the [0, 1] window.
        noise: white-noise standard deviation in HU.
        version: 1 (piecewise-smooth) or 2 (CT-realistic phantoms v2).

    ``phantom.generate(seed)`` returns ``(image, label)`` with label -1 for axial slices.
    """

    KINDS = ("axial", "coronal", "mixed")

    def __init__(self, size: int = 64, kind: str = "axial", *, hu: bool = False, noise: float = 0.0, version: int = 1):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.version = _check_version(version)
        self.size = _check_size(size)
        self.kind = kind
        self.hu = bool(hu)
        self.noise = _check_noise(noise)

    def kind_of(self, seed: int) -> str:
        if self.kind == "mixed":
            return "axial" if seed % 2 == 0 else "coronal"
        return self.kind

    def generate(self, seed: int) -> tuple[np.ndarray, int]:
        if self.kind_of(seed) == "axial":
            return abdomen_slice(seed, self.size, hu=self.hu, noise=self.noise, version=self.version), -1
        return coronal_crop(seed, self.size, hu=self.hu, noise=self.noise, version=self.version)

    def __call__(self, seed: int) -> np.ndarray:
        return self.generate(seed)[0]

    def __repr__(self) -> str:
        return f"AbdomenPhantom(size={self.size}, kind={self.kind!r}, hu={self.hu}, noise={self.noise}, version={self.version})"


def _ellipse_image(seed: int, size: int) -> np.ndarray:
    """A :func:`ctflow.phantoms.random_ellipses` phantom rasterised at ``size`` and scaled into
    [0, 1]: negative values clipped to 0, then divided by the maximum (when above 1)."""
    img = ellipses_image(random_ellipses(seed, size / 2.0), size, 1.0, supersample=2).numpy()
    img = np.clip(img, 0.0, None)
    peak = float(img.max())
    if peak > 1.0:
        img = img / peak
    return img.astype(np.float32)


def _is_ellipse(index: int, fraction: float) -> bool:
    # evenly spread: exactly floor(n * fraction) of the first n items are ellipse images
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


class AbdomenPhantomDataset(torch.utils.data.Dataset):
    """``n`` procedural phantoms as a torch Dataset of ``(image (1, S, S) float32 in [0, 1], label)``.

    Item ``i`` is drawn from seed ``seed * 1_000_003 + i`` (so datasets with different ``seed``
    values do not share items for ``n < 1_000_003``), and is the same every time it is read.

    Args:
        n: number of items.
        size: image side (16..512).
        seed: dataset seed.
        kind: ``"axial"`` (label -1), ``"coronal"`` (OrganMNIST label of the centred organ), or
            ``"mixed"`` (item seed even: axial, odd: coronal).
        ellipse_fraction: fraction of items replaced by random-ellipse phantoms
            (:func:`ctflow.phantoms.random_ellipses`, label -1). The choice depends only on the
            index: item ``i`` is an ellipse image when ``floor((i + 1) f) > floor(i f)``, which spreads
            them evenly (exactly ``floor(n f)`` of them).
        transform: optional callable applied to the image tensor.
        version: phantom generation 1 or 2 (:class:`AbdomenPhantom`).
    """

    def __init__(
        self,
        n: int,
        size: int = 64,
        seed: int = 0,
        kind: str = "axial",
        ellipse_fraction: float = 0.0,
        transform: Callable | None = None,
        version: int = 1,
    ):
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not 0.0 <= float(ellipse_fraction) <= 1.0:
            raise ValueError(f"ellipse_fraction must be in [0, 1], got {ellipse_fraction}")
        self.n = int(n)
        self.seed = int(seed)
        self.ellipse_fraction = float(ellipse_fraction)
        self.transform = transform
        self.phantom = AbdomenPhantom(size, kind, version=version)
        self.size = self.phantom.size
        self.kind = kind

    def __len__(self) -> int:
        return self.n

    def item_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index

    def is_ellipse(self, index: int) -> bool:
        return _is_ellipse(index, self.ellipse_fraction)

    def array(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index`` as a ``(S, S)`` float32 array in [0, 1] and its label."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a dataset of {self.n}")
        index %= max(self.n, 1)
        seed = self.item_seed(index)
        if self.is_ellipse(index):
            return _ellipse_image(seed, self.size), -1
        return self.phantom.generate(seed)

    def __getitem__(self, index: int):
        img, label = self.array(int(index))
        x = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(label)


def write_phantom_npz(
    path: str | os.PathLike,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int = 64,
    seed: int = 0,
    kind: str = "coronal",
    *,
    ellipse_fraction: float = 0.0,
    unlabeled: int = 6,
    progress: bool | None = None,
) -> Path:
    """Write a phantom dataset with the MedMNIST ``.npz`` layout and return ``path``.

    Keys ``train_images``, ``val_images``, ``test_images``: ``(N, S, S)`` uint8 ``round(255 x)``;
    ``train_labels``, ``val_labels``, ``test_labels``: ``(N, 1)`` int64 OrganMNIST classes (0..10).
    The splits are consecutive index ranges of one :class:`AbdomenPhantomDataset` (train first),
    so their seeds are disjoint. Labels stay valid classes: an axial slice gets the class of the
    largest OrganMNIST organ it shows (:func:`organmnist_label`), and an image without one (a
    random-ellipse image, a pelvic slice with none of them) gets ``unlabeled`` (default 6, liver).
    The file is written through a temporary file and renamed only when complete. ``progress``
    shows a tqdm bar (default: when there are 2000 or more images).
    """
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if min(counts.values()) < 0:
        raise ValueError(f"split sizes must be >= 0, got {counts}")
    if unlabeled not in _FROM_ORGANMNIST:
        raise ValueError(f"unlabeled must be an OrganMNIST class 0..10, got {unlabeled}")
    total = sum(counts.values())
    ds = AbdomenPhantomDataset(total, size, seed, kind, ellipse_fraction)
    if progress is None:
        progress = total >= 2000
    from tqdm.auto import tqdm

    arrays: dict[str, np.ndarray] = {}
    start = 0
    with tqdm(total=total, desc=f"phantoms -> {Path(path).name}", unit="img", disable=not progress) as bar:
        for split, count in counts.items():
            images = np.empty((count, ds.size, ds.size), np.uint8)
            labels = np.empty((count, 1), np.int64)
            for j in range(count):
                i = start + j
                if not ds.is_ellipse(i) and ds.phantom.kind_of(ds.item_seed(i)) == "axial":
                    img, lab_map = abdomen_slice(ds.item_seed(i), ds.size, return_labels=True)
                    label = organmnist_label(lab_map)
                else:
                    img, label = ds.array(i)
                images[j] = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
                labels[j, 0] = label if label >= 0 else unlabeled
                bar.update(1)
            arrays[f"{split}_images"] = images
            arrays[f"{split}_labels"] = labels
            start += count
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------------


def benchmark_rate(size: int = 64, n: int = 1000, kind: str = "axial") -> float:
    """Images generated per second by a loop over seeds 0..n-1 (after one warm-up call).

    ``kind``: ``"axial"`` (:func:`abdomen_slice`) or ``"coronal"`` (:func:`coronal_crop`). The
    blur and the textures are small matrix products, so for a one-core figure set
    ``OPENBLAS_NUM_THREADS=1`` (or the variable of your BLAS) before starting Python.
    """
    if kind not in ("axial", "coronal"):
        raise ValueError(f"kind must be 'axial' or 'coronal', got {kind!r}")
    fn = abdomen_slice if kind == "axial" else coronal_crop
    fn(n + 1, size)
    t0 = time.perf_counter()
    for seed in range(n):
        fn(seed, size)
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":  # python -m ctflow.data.abdomen
    for _kind in ("axial", "coronal"):
        for _size in (64, 128):
            print(f"{_kind:8s} {_size:4d}^2: {benchmark_rate(_size, 1000, _kind):8.0f} images/s")
