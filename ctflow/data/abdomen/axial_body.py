"""Axial slices, first half of the scene: body wall, table, spine, ribs, pelvis, muscles
and great vessels, and the :class:`_Axial` state the steps share.

Radiological orientation: the patient's right on the image's left, anterior at the top. The body
wall comes from radial layer tables (skin, subcutaneous fat, muscle) over 720 angle bins around the
origin; bones, muscles and vessels are shapes added to the state's scene (:class:`~.canvas._Scene`).
The steps run in the order of :data:`~.axial._STEPS`, each drawing its random numbers in the order
the single scene function used to, so a seed gives the same slice bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .canvas import _Canvas, _Draw, _Scene, _softmin
from .tissues import (
    AIR,
    AORTA,
    CANAL,
    IVC,
    MUSCLE,
    PELVIS,
    RIB,
    SKIN,
    SPINE,
    SUBFAT,
    TABLE,
    VESSEL,
    VFAT,
)

# --------------------------------------------------------------------------------------------------
# Angle bins and angular profiles of the body wall (720 bins over [-pi, pi))
# --------------------------------------------------------------------------------------------------

_N_THETA = 720
_THETA = -math.pi + (np.arange(_N_THETA) + 0.5) * (2.0 * math.pi / _N_THETA)
_COS_T, _SIN_T = np.cos(_THETA), np.sin(_THETA)
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


def _at(table: np.ndarray, theta: float) -> float:
    """Value of an angular table (720 bins) at angle ``theta``."""
    return float(table[int((theta + math.pi) * _ANGLE_SCALE) % _N_THETA])


# --------------------------------------------------------------------------------------------------
# The scene, step by step
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Axial:
    """What the steps of one axial scene share: inputs, then the facts each step leaves for later ones."""

    cv: _Canvas
    draw: _Draw
    sc: _Scene
    z: float  # slice level (0: liver dome ... 1: upper pelvis)
    hu: dict  # HU values of this 'patient' (tissues._tissue_values)
    sz: float  # overall anatomy scale
    # _body_wall: outer radius of the skin, fat and muscle layers per angle bin, the cavity inside
    R0: np.ndarray = field(default_factory=lambda: np.zeros(_N_THETA))
    R2: np.ndarray = field(default_factory=lambda: np.zeros(_N_THETA))
    R3: np.ndarray = field(default_factory=lambda: np.zeros(_N_THETA))
    Ac: float = 0.0  # half-width of the cavity
    Bc: float = 0.0  # half-height of the cavity
    cyc: float = 0.0  # its vertical centre
    y_post: float = 0.0  # posterior fat / muscle boundary on the midline
    # _vertebra: centre and semi-axes of the vertebral body, sacral level, cortical bone HU
    xv: float = 0.0
    y_v: float = 0.0
    av: float = 0.0
    bv: float = 0.0
    wide: float = 1.0
    sacral: bool = False
    cortex: float = 0.0
    # _pelvis: iliacus muscles (cx, cy, a, b, phi, bend) on the inner face of the iliac wings
    iliacus: list = field(default_factory=list)
    # _great_vessels: aorta centre height and radius
    y_ao: float = 0.0
    ra: float = 0.0


def _body_wall(s: _Axial, tidx: np.ndarray, rho: np.ndarray) -> None:
    """Radial tables (skin, subcutaneous fat, muscle) around the origin; covers every pixel of ``cv``."""
    cv, draw, z, hu, sz = s.cv, s.draw, s.z, s.hu, s.sz
    px = cv.px
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

    # the cavity inside the muscle wall: organs are placed relative to it
    Ac = 0.5 * (_at(R3, 0.0) + _at(R3, math.pi))
    Bc = 0.5 * (_at(R3, math.pi / 2) + _at(R3, -math.pi / 2))
    cyc = 0.5 * (_at(R3, math.pi / 2) - _at(R3, -math.pi / 2))
    y_post = -_at(R2, -math.pi / 2)  # posterior fat / muscle boundary on the midline
    s.R0, s.R2, s.R3 = R0, R2, R3
    s.Ac, s.Bc, s.cyc, s.y_post = Ac, Bc, cyc, y_post


def _table(s: _Axial) -> None:
    """The table under the patient (drawn directly: only over air)."""
    cv, draw, hu, R0 = s.cv, s.draw, s.hu, s.R0
    px = cv.px
    table_flag = draw.flag(0.5)
    t_top = -_at(R0, -math.pi / 2) - draw(0.01, 0.05)
    t_curv, t_th, t_w = draw(0.0, 0.15), draw(0.012, 0.025), draw(0.8, 1.0)
    if table_flag and t_top > -1.0:
        th_draw = max(t_th, 1.5 * px)
        r0, r1, c0, c1 = cv.window(-t_w, t_w, t_top - th_draw, t_top + t_curv * t_w * t_w + th_draw)
        if r0 < r1 and c0 < c1:
            xw = cv.xs[c0:c1]
            m = np.abs(cv.ys[r0:r1, None] - (t_top - th_draw / 2 + t_curv * xw * xw)[None, :]) <= th_draw / 2
            m &= cv.lab[r0:r1, c0:c1] == AIR
            cv.paint(r0, c0, m, -1000.0 + (hu["table"] + 1000.0) * t_th / th_draw, TABLE)


def _vertebra(s: _Axial) -> None:
    """Vertebral body (or a disc), posterior arch with the canal, spinous and transverse processes."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    px, y_post = s.cv.px, s.y_post
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
    s.xv, s.y_v, s.av, s.bv, s.wide, s.sacral, s.cortex = xv, y_v, av, bv, wide, sacral, cortex


def _ribs(s: _Axial) -> None:
    """Ribs (and costal cartilage at the front) in the muscle layer, above the pelvis."""
    draw, sc, z, hu, sz, R2, R3 = s.draw, s.sc, s.z, s.hu, s.sz, s.R2, s.R3
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


def _pelvis(s: _Axial) -> None:
    """Iliac wings at the lowest levels; leaves the iliacus muscles for :func:`_muscles`."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    xv, y_v, av, bv, wide, cortex, Ac = s.xv, s.y_v, s.av, s.bv, s.wide, s.cortex, s.Ac
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
    s.iliacus = iliacus


def _muscles(s: _Axial) -> None:
    """Back muscles, iliacus, quadratus lumborum, psoas or the diaphragmatic crura."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    xv, y_v, av, bv, wide, y_post = s.xv, s.y_v, s.av, s.bv, s.wide, s.y_post
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
    for cxm, cym, am, bm, phm, bdm in s.iliacus:
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


def _great_vessels(s: _Axial) -> None:
    """Aorta (with the odd calcified plaque) and IVC, or the iliac vessels below the bifurcation."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    xv, y_v, bv, sacral = s.xv, s.y_v, s.bv, s.sacral
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
    s.y_ao, s.ra = y_ao, ra
