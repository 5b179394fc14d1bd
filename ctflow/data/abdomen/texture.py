r"""Texture, partial-volume blur and noise: what turns a drawn canvas into a CT-like image.

:func:`_finish` runs the same steps for both views. Phantoms v1 add two smooth random texture
fields (organ-scale shading and mottling, per-tissue amplitudes from :mod:`.tissues`), blur with a
Gaussian of sigma 0.5 to 1 pixel (a partial-volume stand-in) and add optional white noise: the
result is piecewise smooth, the images total variation is built for.

Phantoms v2 (``version=2``): reconstructed CT (what OrganCMNIST crops are) has, on top of that,
structure at the scale of one to three pixels. It is added on the HU canvas and its tissue label
map, in five vectorised steps that depend only on the random generator they are given:

1. **Parenchyma texture**: white noise blurred with a Gaussian of :math:`\sigma \approx 1` pixel
   (at least 0.8 mm), scaled per tissue (liver, spleen, kidney, pancreas, muscle, fat, bone).
2. **Vessels** in liver, spleen and kidneys: random branching trees of line segments (root in the
   organ, 2-3 generations, radius shrinking by ~0.7 per generation), painted with anti-aliased
   coverage :math:`w = \mathrm{clip}(r + \tfrac12 - d, 0, 1)` (:math:`d`: pixel-to-segment
   distance, pixels) and only inside the organ. Darker than the parenchyma without contrast,
   brighter in a contrast phase.
3. **Fat heterogeneity**: thin fibrous septa (+20..+70 HU, sub-pixel width, so diluted by coverage)
   in subcutaneous, visceral and retroperitoneal fat; **muscle marbling**: intramuscular fat where a
   fine random field exceeds a threshold.
4. (the partial-volume blur of :math:`\sigma` 0.5-1 pixel, unchanged from v1)
5. **Reconstruction noise grain**: white noise shaped like filtered back-projection noise, whose
   power spectrum grows like :math:`|f|` up to an apodised cut-off,
   :math:`\hat n(f) = \hat w(f)\,\sqrt{|f|}\,\tfrac12(1 + \cos(\pi |f| / f_c))`, normalised to unit
   standard deviation and scaled to 2-15 HU (on 85 % of the images).

Lengths are drawn in world units (one unit is about 200 mm) and converted with the pixel size, so a
zoomed coronal crop shows wider vessels in pixels than a whole axial slice, as real crops do.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .canvas import _blur, _Canvas, _Draw
from .tissues import (
    AORTA,
    BOWEL,
    CONTENT,
    FEMUR_L,
    FEMUR_R,
    HEART,
    IVC,
    KIDNEY_L,
    KIDNEY_R,
    LESION,
    LIVER,
    LUNG_L,
    LUNG_R,
    MEDIASTINUM,
    MUSCLE,
    PANCREAS,
    PELVIS,
    RFAT,
    RIB,
    SPINE,
    SPLEEN,
    STOMACH,
    SUBFAT,
    TISSUES,
    VESSEL,
    VFAT,
    _texture_amplitudes,
)

__all__ = ["TissueGroups", "add_recon_grain", "add_structure"]

# --------------------------------------------------------------------------------------------------
# Phantoms v1: smooth texture fields
# --------------------------------------------------------------------------------------------------

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
# Phantoms v2: parenchyma texture, vessel trees, fat septa, muscle marbling, reconstruction grain
# --------------------------------------------------------------------------------------------------


class TissueGroups:
    """Label values of the tissue groups the v2 steps act on (given by the generator's label table)."""

    def __init__(self, *, vessel_organs, fat, muscle, parenchyma_amp: dict[int, tuple[float, float]], n_labels: int):
        self.vessel_organs = tuple(int(v) for v in vessel_organs)
        self.fat = np.zeros(256, bool)
        self.fat[list(fat)] = True
        self.muscle = np.zeros(256, bool)
        self.muscle[list(muscle)] = True
        lo = np.zeros(256, np.float32)
        hi = np.zeros(256, np.float32)
        for label, (a, b) in parenchyma_amp.items():
            lo[label], hi[label] = a, b
        self.amp_lo, self.amp_hi = lo, hi
        self.n_labels = int(n_labels)


def _segment_coverage(rows: np.ndarray, cols: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Max over segments of the anti-aliased coverage of pixel centres ``(rows, cols)`` (pixels).

    ``seg``: ``(S, 5)`` rows ``(r0, c0, r1, c1, radius)`` in pixels. Returns ``(len(rows),)`` in [0, 1].
    """
    p = np.stack([rows, cols], axis=1).astype(np.float32)[:, None, :]  # (P, 1, 2)
    a = seg[None, :, 0:2].astype(np.float32)
    b = seg[None, :, 2:4].astype(np.float32)
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-6), 0.0, 1.0)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
    return np.clip(seg[None, :, 4] + 0.5 - d, 0.0, 1.0).max(axis=1)


def _tree(rng: np.random.Generator, root: np.ndarray, length: float, radius: float, generations: int) -> list:
    """Segments ``(r0, c0, r1, c1, radius)`` of a random branching tree grown from ``root``."""
    out = []
    tips = [(root, rng.uniform(0, 2 * math.pi), length, radius)]
    for _ in range(generations):
        nxt = []
        for start, ang, ln, rad in tips:
            ang = ang + rng.normal(0.0, 0.25)
            end = start + ln * np.array([math.sin(ang), math.cos(ang)])
            out.append((start[0], start[1], end[0], end[1], rad))
            for sign in (-1.0, 1.0):
                if rng.random() < 0.8:
                    nxt.append((end, ang + sign * rng.uniform(0.35, 0.9), ln * rng.uniform(0.55, 0.85), rad * 0.7))
        tips = nxt
    return out


def _random_pixels(rng: np.random.Generator, mask: np.ndarray, n: int) -> np.ndarray:
    idx = np.flatnonzero(mask)
    pick = idx[rng.integers(0, idx.size, n)]
    return np.stack(np.unravel_index(pick, mask.shape), axis=1).astype(np.float64)


def _paint_segments(hu: np.ndarray, allowed: np.ndarray, seg: list, delta) -> None:
    """``hu += coverage · delta`` on the pixels where ``allowed`` (delta: scalar or per-pixel array)."""
    if not seg or not allowed.any():
        return
    segs = np.asarray(seg, np.float32)
    r, c = np.nonzero(allowed)
    cov = _segment_coverage(r, c, segs)
    d = delta if np.isscalar(delta) else delta[r, c]
    hu[r, c] += cov * d


def _smooth_noise(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap", truncate=3.0)
    return f / max(float(f.std()), 1e-6)


def add_structure(
    hu: np.ndarray, lab: np.ndarray, rng: np.random.Generator, px: float, groups: TissueGroups, contrast: bool
) -> None:
    """Steps 1-3 in place on the HU canvas ``hu`` with labels ``lab``; ``px`` is the pixel size in
    world units (1 unit ≈ 200 mm)."""
    mm = px * 200.0  # pixel size in mm
    # 1. parenchyma texture: per-label amplitude (HU) times a ~1-pixel-correlated field
    u = rng.random(256).astype(np.float32)
    amp = groups.amp_lo + (groups.amp_hi - groups.amp_lo) * u
    sigma = max(0.6, rng.uniform(0.8, 1.6) / mm)
    hu += amp[lab] * _smooth_noise(rng, hu.shape, sigma)

    # 2. vessel trees inside the solid organs
    for organ in groups.vessel_organs:
        mask = lab == organ
        area = int(mask.sum())
        if area < 12:
            continue
        n_trees = 1 + int(area * mm * mm > 2500.0) + int(area * mm * mm > 9000.0)
        roots = _random_pixels(rng, mask, n_trees)
        seg = []
        for root in roots:
            length = rng.uniform(12.0, 30.0) / mm
            radius = rng.uniform(1.5, 4.0) / mm
            seg += _tree(rng, root, length, radius, generations=int(rng.integers(2, 4)))
        delta = rng.uniform(40.0, 110.0) if contrast else -rng.uniform(8.0, 25.0)
        if organ != groups.vessel_organs[0] and not contrast:  # kidneys/spleen: sinus fat-like hila
            delta = -rng.uniform(10.0, 40.0)
        _paint_segments(hu, mask, seg, np.float32(delta))

    # 3a. fibrous septa in fat
    fat = groups.fat[lab]
    if fat.any():
        n = int(rng.integers(3, 14))
        starts = _random_pixels(rng, fat, n)
        seg = []
        for s in starts:
            ang = rng.uniform(0, 2 * math.pi)
            ln = rng.uniform(10.0, 45.0) / mm
            width = rng.uniform(0.15, 0.45)  # sub-pixel: contrast diluted by coverage
            mid = s + 0.5 * ln * np.array([math.sin(ang), math.cos(ang)])
            ang2 = ang + rng.normal(0.0, 0.4)
            end = mid + 0.5 * ln * np.array([math.sin(ang2), math.cos(ang2)])
            seg += [(s[0], s[1], mid[0], mid[1], width), (mid[0], mid[1], end[0], end[1], width)]
        _paint_segments(hu, fat, seg, np.float32(rng.uniform(20.0, 70.0)))

    # 3b. intramuscular fat (marbling)
    muscle = groups.muscle[lab]
    if muscle.any():
        field = _smooth_noise(rng, hu.shape, max(0.6, rng.uniform(1.0, 2.5) / mm))
        thr = rng.uniform(1.2, 2.2)
        w = np.clip(field - thr, 0.0, 1.0)
        hu -= np.where(muscle, w * np.float32(rng.uniform(30.0, 100.0)), np.float32(0.0))


def add_recon_grain(
    hu: np.ndarray, rng: np.random.Generator, probability: float = 0.85, sigma_hu=(2.0, 15.0)
) -> np.ndarray:
    """Step 5: FBP-like noise grain (power ∝ |f| up to an apodised cut-off); returns a new array."""
    if rng.random() >= probability:
        return hu
    ny, nx = hu.shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    fc = rng.uniform(0.35, 0.5)  # cycles/pixel; 0.5 is Nyquist
    shape = np.sqrt(f) * np.where(f < fc, 0.5 * (1.0 + np.cos(np.pi * f / fc)), 0.0)
    white = np.fft.rfft2(rng.standard_normal((ny, nx)))
    n = np.fft.irfft2(white * shape, s=(ny, nx))
    n /= max(float(n.std()), 1e-12)
    return (hu + n.astype(np.float32) * np.float32(rng.uniform(*sigma_hu))).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Both: the finishing steps of a drawn canvas
# --------------------------------------------------------------------------------------------------

# phantoms v2: which labels get vessels, septa, marbling, and the fine-texture amplitude (HU) range
_V2_GROUPS = TissueGroups(
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


#: phantoms v2 blur less than v1 (partial volume of σ ≈ 0.35-0.7 pixel instead of 0.5-1): with v1's blur,
#: the phantoms had 4-7x less power near Nyquist than real slices (docs/phantom_realism.md)
V2_BLUR_SCALE = 0.7
#: standard deviation range (HU) of the FBP-like grain of phantoms v2
V2_GRAIN_HU = (3.0, 15.0)


def _finish(
    cv: _Canvas, draw: _Draw, wy, wx, sigma_px: float, noise: float, version: int = 1, contrast: bool = False
) -> np.ndarray:
    """Textures, partial-volume blur and noise; returns float32 HU. ``version=2`` adds the
    structure (steps 1-3) and reconstruction grain (step 5) of phantoms v2; v1 output is unchanged."""
    amp_low, amp_mid = _texture_amplitudes(draw)
    img = cv.hu + amp_low[cv.lab] * _texture(draw, wy[0], wx[0])
    img += amp_mid[cv.lab] * _texture(draw, wy[1], wx[1])
    if version == 2:
        rng = np.random.default_rng(draw.rng.integers(0, 2**63 - 1))
        add_structure(img, cv.lab, rng, cv.px, _V2_GROUPS, contrast)
    img = _blur(img, sigma_px * (V2_BLUR_SCALE if version == 2 else 1.0))
    if version == 2:
        img = add_recon_grain(img, rng, sigma_hu=V2_GRAIN_HU)
    if noise > 0.0:
        img += draw.rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.ascontiguousarray(img, dtype=np.float32)
