"""Coronal sections, second part of the scene: psoas, bladder, pancreas, great vessels, kidneys,
then (after the first render) the liver wedge under the right dome, what lies inside the liver and
kidneys, spleen, stomach and bowel, placed relative to what :mod:`.coronal_body` leaves in the
:class:`~.coronal_body._Coronal` state.
"""

from __future__ import annotations

import math

import numpy as np

from .canvas import _NO_YMIN, _bump
from .coronal_body import _Coronal, _depth_factor
from .tissues import (
    AORTA,
    BLADDER,
    BOWEL,
    CONTENT,
    GALLBLADDER,
    GAS,
    IVC,
    KIDNEY_L,
    KIDNEY_R,
    LIVER,
    MEDIASTINUM,
    MUSCLE,
    PANCREAS,
    RFAT,
    SPLEEN,
    STOMACH,
    VESSEL,
    VFAT,
)


def _psoas_bladder_pancreas(s: _Coronal) -> None:
    """Psoas muscles, bladder and pancreas (in front of the great vessels and kidneys)."""
    draw, sc, d, hu, sz = s.draw, s.sc, s.d, s.hu, s.sz
    xc, wv0 = s.xc, s.wv0
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


def _vessels_and_kidneys(s: _Coronal) -> None:
    """Aorta with the iliac arteries, IVC, kidneys with their medullary pyramids."""
    draw, sc, d, hu, sz = s.draw, s.sc, s.d, s.hu, s.sz
    xc, yr, yl = s.xc, s.yr, s.yl
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
    s.kid = kid


def _liver(s: _Coronal) -> None:
    """The liver: a wedge under the right dome, drawn directly around what is already there."""
    cv, draw, d, hu, sz = s.cv, s.draw, s.d, s.hu, s.sz
    ys, xc, cut, post, yr, yl = cv.ys, s.xc, s.cut, s.post, s.yr, s.yl
    W0, hip = s.wall[0], s.wall[3]
    dome, th_d = s.dome, s.th_d
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
    s.fliv, s.y_low_l, s.slope, s.x_lat = fliv, y_low_l, slope, x_lat


def _liver_contents(s: _Coronal) -> None:
    """Vessels inside the liver, renal sinus fat and pelvis at the kidneys' hila, gallbladder."""
    draw, sc, d, hu = s.draw, s.sc, s.d, s.hu
    yr, kid = s.yr, s.kid
    fliv, y_low_l, slope, x_lat = s.fliv, s.y_low_l, s.slope, s.x_lat
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


def _spleen_and_stomach(s: _Coronal) -> None:
    """Spleen under the left dome, stomach with its gas-fluid level."""
    draw, sc, d, hu, sz = s.draw, s.sc, s.d, s.hu, s.sz
    xc, yl, th_d = s.xc, s.yl, s.th_d
    fs = _depth_factor(d, SPLEEN)
    spx = xc + draw(0.45, 0.62) * sz
    spa, spb, spphi = draw(0.08, 0.12) * sz, draw(0.14, 0.22) * sz, draw(-0.35, 0.35)
    if fs > 0.2:
        f = 0.5 + 0.5 * fs
        y_top = float(s.dome_at(np.array(spx)))
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


def _bowel(s: _Coronal) -> None:
    """Small-bowel and colon loops, mesenteric vessels."""
    draw, sc, hu, sz = s.draw, s.sc, s.hu, s.sz
    xc = s.xc
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
