"""Axial slices, second half of the scene: lung bases, kidneys, stomach, spleen, liver,
pancreas and bowel, placed relative to the body cavity and the spine that :mod:`.axial_body`
leaves in the :class:`~.axial_body._Axial` state. The steps run in the order of
:func:`~.axial._axial_scene` and consume the random draws in that order.
"""

from __future__ import annotations

import math

import numpy as np

from .axial_body import _at, _Axial
from .canvas import _NO_YMIN, _bump
from .tissues import (
    BOWEL,
    CONTENT,
    GALLBLADDER,
    GAS,
    KIDNEY_L,
    KIDNEY_R,
    LESION,
    LIVER,
    LUNG_L,
    LUNG_R,
    PANCREAS,
    RFAT,
    SPLEEN,
    STOMACH,
    VESSEL,
    VFAT,
)


def _lung_bases(s: _Axial) -> None:
    """Lung bases in the posterior costophrenic recesses."""
    draw, sc, z, hu, sz, R3 = s.draw, s.sc, s.z, s.hu, s.sz, s.R3
    fl = max(0.0, 1.0 - z / 0.22)
    lungs = [(draw(0.5, 1.0), draw(0.2, 0.32), draw(0.06, 0.12), draw(0.2, 0.6)) for _ in range(2)]
    if fl > 0.1:
        for side, lab, (dt, la, lb, lbend) in zip((-1.0, 1.0), (LUNG_R, LUNG_L), lungs):
            t = -math.pi / 2 + side * dt
            rl = _at(R3, t) - lb * fl * 0.7
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


def _kidneys(s: _Axial) -> None:
    """Kidneys (in perirenal fat) beside the spine: sinus, medullary pyramids, the odd cyst."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    xv, y_v, av = s.xv, s.y_v, s.av
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


def _stomach_and_spleen(s: _Axial) -> None:
    """Stomach (upper levels, image right, anterior) and the spleen along the left posterolateral wall."""
    draw, sc, z, hu, sz, R3 = s.draw, s.sc, s.z, s.hu, s.sz, s.R3
    Ac, Bc, cyc = s.Ac, s.Bc, s.cyc
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

    # spleen: a crescent along the left posterolateral wall (image right)
    fsp = _bump(z, draw(0.12, 0.25), 0.32)
    sp = (draw(0.7, 1.2), draw(0.14, 0.22) * sz, draw(0.06, 0.1) * sz, draw(0.1, 0.4))
    if fsp > 0.25:
        t = -math.pi / 2 + sp[0]
        f = 0.5 + 0.5 * fsp
        rs = _at(R3, t) - sp[2] * f * 0.8
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


def _liver(s: _Axial) -> None:
    """Gallbladder, vessels and lesions inside the liver, the liver (image left) and its left lobe."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    Ac, Bc, cyc = s.Ac, s.Bc, s.cyc
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


def _pancreas(s: _Axial) -> None:
    """Pancreas draped over the aorta and spine, splenic vein behind it."""
    draw, sc, z, hu, sz, y_ao, ra = s.draw, s.sc, s.z, s.hu, s.sz, s.y_ao, s.ra
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


def _bowel(s: _Axial) -> None:
    """Colon at the flanks and across the front, small-bowel loops in the middle, mesenteric vessels."""
    draw, sc, z, hu, sz = s.draw, s.sc, s.z, s.hu, s.sz
    Ac, Bc, cyc = s.Ac, s.Bc, s.cyc
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

    # mesenteric vessels: small dots in the fat
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
