"""Coronal sections, first part of the scene: the :class:`_Coronal` state the steps share, the
body wall, diaphragm domes with lungs and mediastinum, spine column, heart, ribs and pelvis.

Coronal world: x in [-1, 1] (the patient's right on the image's left), y in [-1.35, 1.35] (head
up); the section lies at depth ``d`` (0 anterior, 1 posterior). The body wall comes from per-row
layer tables (:meth:`_Coronal.walls`); the lungs, the spine column and (in :mod:`.coronal_organs`)
the liver are painted directly, the other parts are shapes added to the state's scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .canvas import _allowed_lut, _bump, _Canvas, _Draw, _Scene
from .tissues import (
    AIR,
    BLADDER,
    FEMUR_L,
    FEMUR_R,
    HEART,
    KIDNEY_L,
    KIDNEY_R,
    LIVER,
    LUNG_L,
    LUNG_R,
    MEDIASTINUM,
    MUSCLE,
    PANCREAS,
    PELVIS,
    RIB,
    SKIN,
    SPINE,
    SPLEEN,
    SUBFAT,
    VESSEL,
    VFAT,
)

# --------------------------------------------------------------------------------------------------
# Coronal world and the depth range over which each organ is cut
# --------------------------------------------------------------------------------------------------

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


def _depth_factor(d: float, organ: int) -> float:
    lo, hi = _COR_DEPTH[organ]
    return _bump(d, 0.5 * (lo + hi), 0.5 * (hi - lo) + 0.05)


# --------------------------------------------------------------------------------------------------
# The scene, step by step
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Coronal:
    """What the steps of one coronal section share: inputs, then the facts each step leaves for later ones."""

    cv: _Canvas
    draw: _Draw
    sc: _Scene
    d: float  # depth of the plane (0 anterior .. 1 posterior)
    hu: dict  # HU values of this 'patient' (tissues._tissue_values)
    sz: float  # overall anatomy scale
    # _body_wall: body centre, narrowing off the mid-coronal plane, parameters of walls()
    xc: float = 0.0
    cut: float = 1.0
    wall: tuple = ()  # (W0, w1, w2, hip, fat0, fat1, tm0, glute, ts_draw)
    # _thorax: diaphragm domes (dome_at: peaks yr, yl at xr, xl, curvatures kr, kl), sampled per column
    # in `dome`, their thickness th_d, the mediastinum centre xm, the posterior offset post
    post: float = 0.0
    yr: float = 0.0
    yl: float = 0.0
    xr: float = 0.0
    xl: float = 0.0
    kr: float = 0.0
    kl: float = 0.0
    dome: np.ndarray = field(default_factory=lambda: np.zeros(0))
    th_d: float = 0.0
    xm: float = 0.0
    # _spine: half-width of the vertebral bodies, cortical bone HU
    wv0: float = 0.0
    cortex: float = 0.0
    # _vessels_and_kidneys: drawn kidneys (side, label, fk, kx, ky, ka, kb, kphi), for their hila
    kid: list = field(default_factory=list)
    # _liver: depth factor and the lower edge of the liver wedge (y_low_l + slope * (x - x_lat) + ...)
    fliv: float = 0.0
    y_low_l: float = 0.0
    slope: float = 0.0
    x_lat: float = 0.0

    def walls(self, y):
        """Half-widths (from ``xc``) of the skin, subcutaneous fat, muscle and cavity outlines at heights ``y``."""
        sz, cut = self.sz, self.cut
        W0, w1, w2, hip, fat0, fat1, tm0, glute, ts_draw = self.wall
        W = sz * cut * (W0 + w1 * y + w2 * y * y + hip * np.exp(-(((y + 1.0) / 0.3) ** 2)))
        tf = fat0 * (1.0 + fat1 * np.exp(-(((y + 0.4) / 0.5) ** 2)))
        tm = tm0 + glute * np.exp(-(((y + 1.05) / 0.3) ** 2))
        W1 = W - ts_draw
        return W, W1, W1 - tf, W1 - tf - tm

    def dome_at(self, x):
        """Height of the diaphragm at ``x`` (the higher of the two domes)."""
        yr, kr, xr, yl, kl, xl = self.yr, self.kr, self.xr, self.yl, self.kl, self.xl
        return np.maximum(yr - kr * (x - xr) ** 2, yl - kl * (x - xl) ** 2)


def _body_wall(s: _Coronal) -> None:
    """Per-row tables (skin, subcutaneous fat, muscle); covers every pixel of ``cv``."""
    cv, draw, d, hu, sz = s.cv, s.draw, s.d, s.hu, s.sz
    px, ys, X = cv.px, cv.ys, cv.xs[None, :]
    xc = draw(-0.03, 0.03)
    cut = math.sqrt(max(0.3, 1.0 - ((d - 0.5) / 0.62) ** 2))  # narrower off the mid-coronal plane
    W0, w1, w2, hip = draw(0.68, 0.84), draw(-0.04, 0.04), draw(0.0, 0.06), draw(0.02, 0.1)
    ts = draw(0.008, 0.012)
    ts_draw = max(ts, px)
    fat0, fat1 = 0.02 + 0.13 * draw() ** 1.5, draw(0.2, 0.7)
    tm0, glute = draw(0.025, 0.045) * sz, draw(0.05, 0.15)
    s.xc, s.cut, s.wall = xc, cut, (W0, w1, w2, hip, fat0, fat1, tm0, glute, ts_draw)
    tables = np.stack(s.walls(ys)).astype(np.float32)[:, :, None]
    k = (np.abs(X - xc).astype(np.float32) <= tables).sum(axis=0, dtype=np.uint8)
    skin_hu = hu["fat"] + (hu["skin"] - hu["fat"]) * ts / ts_draw
    cv.hu = np.array([-1000.0, skin_hu, hu["fat"], hu["muscle"], hu["vfat"]], np.float32)[k]
    cv.lab = np.array([AIR, SKIN, SUBFAT, MUSCLE, VFAT], np.uint8)[k]


def _thorax(s: _Coronal) -> None:
    """Diaphragm domes, lungs and mediastinum (drawn directly on the rows above the domes)."""
    cv, draw, d, hu, sz = s.cv, s.draw, s.d, s.hu, s.sz
    px, xs, ys, X = cv.px, cv.xs, cv.ys, cv.xs[None, :]
    post = max(0.0, d - 0.5)
    yr = draw(0.3, 0.5) - 0.35 * post  # the right dome is higher; both drop in the posterior recesses
    yl = yr - draw(0.03, 0.12)
    xr, xl = -draw(0.3, 0.45) * sz, draw(0.3, 0.45) * sz
    kr, kl = draw(0.8, 1.4), draw(0.8, 1.4)
    s.post, s.yr, s.yl, s.xr, s.xl, s.kr, s.kl = post, yr, yl, xr, xl, kr, kl
    dome = s.dome_at(xs)
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
    s.dome, s.th_d, s.xm = dome, th_d, xm


def _spine(s: _Coronal) -> None:
    """Spine column and sacrum (drawn directly, row by row)."""
    cv, draw, d, hu, sz, xc = s.cv, s.draw, s.d, s.hu, s.sz, s.xc
    px, ys = cv.px, cv.ys
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
    s.wv0, s.cortex = wv0, cortex


def _heart(s: _Coronal) -> None:
    """Lung vessels and the heart on the central tendon."""
    draw, sc, d, hu, sz = s.draw, s.sc, s.d, s.hu, s.sz
    yr, xm = s.yr, s.xm
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
        y_floor = float(s.dome_at(np.array(hx)))
        sc.add(
            hx,
            y_floor + hb * hf * 0.75,
            ha * hf,
            hb * hf,
            hphi,
            [(1.08, hu["vfat"], MEDIASTINUM), (1.0, hu["heart"], HEART)],
            (LUNG_R, LUNG_L, MEDIASTINUM),
        )


def _ribs(s: _Coronal) -> None:
    """Ribs along the lateral chest wall."""
    draw, sc, hu, sz, xc = s.draw, s.sc, s.hu, s.sz, s.xc
    spacing = draw(0.1, 0.14) * sz
    y_low = draw(-0.3, -0.05)
    rib_y = np.arange(_COR_Y[1] + 0.2 - draw(0.0, spacing), y_low, -spacing)
    nr = rib_y.size
    jitter = draw.array(2 * nr, -0.03, 0.03)
    ar, br = draw(0.03, 0.045) * sz, draw(0.015, 0.022) * sz
    rib_phi = draw.array(2 * nr, -0.4, 0.4)
    if nr:
        _, _, W2, W3 = s.walls(rib_y)
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


def _pelvis(s: _Coronal) -> None:
    """Femora (head, neck, trochanter, shaft), acetabula, iliac wings with their muscles, pubis."""
    draw, sc, d, hu, sz = s.draw, s.sc, s.d, s.hu, s.sz
    xc, cortex = s.xc, s.cortex
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
