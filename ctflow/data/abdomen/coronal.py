"""Coronal organ crops: :func:`coronal_crop`, in the spirit of OrganCMNIST.

:func:`_coronal_scene` draws a coronal section in a fixed order of steps (:mod:`.coronal_body`:
body wall, thorax, spine, heart, ribs, pelvis; :mod:`.coronal_organs`: psoas, bladder, pancreas,
great vessels, kidneys, then the liver, its contents, spleen, stomach and bowel) that consume the
random draws in that order. Every draw happens whatever the grid is, so the same generator state
gives the same anatomy on any grid: the crop is drawn twice, the whole section on a coarse grid
to find the organ, then the crop window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .canvas import _Canvas, _Draw, _rbf_matrix, _Scene
from .coronal_body import _COR_DEPTH, _COR_X, _COR_Y, _body_wall, _Coronal, _heart, _pelvis, _ribs, _spine, _thorax
from .coronal_organs import (
    _bowel,
    _liver,
    _liver_contents,
    _psoas_bladder_pancreas,
    _spleen_and_stomach,
    _vessels_and_kidneys,
)
from .texture import _TEXTURE_SPACINGS, _finish
from .tissues import (
    _FROM_ORGANMNIST,
    _TO_ORGANMNIST,
    _check_noise,
    _check_size,
    _check_version,
    _tissue_values,
    hu_to_window,
    organmnist_label,
)

_COARSE_PX = 0.025  # pixel of the whole-section pass that finds the organ's bounding box

# --------------------------------------------------------------------------------------------------
# The scene and the entry point
# --------------------------------------------------------------------------------------------------


def _coronal_scene(cv: _Canvas, draw: _Draw, d: float) -> dict:
    """Draw a coronal abdomen section at depth ``d`` (0 anterior, 1 posterior) onto ``cv``.

    Every random draw happens whatever the grid is, so the same generator state gives the same
    anatomy on any grid (the crop is drawn twice: whole section, then the crop window)."""
    hu = _tissue_values(draw)
    sz = draw(0.9, 1.1)
    s = _Coronal(cv, draw, _Scene(cv), d, hu, sz)
    for step in (_body_wall, _thorax, _spine):  # drawn directly
        step(s)
    for step in (_heart, _ribs, _pelvis, _psoas_bladder_pancreas, _vessels_and_kidneys):
        step(s)
    s.sc.render()
    _liver(s)  # drawn directly, around the organs of the first render
    for step in (_liver_contents, _spleen_and_stomach, _bowel):
        step(s)
    s.sc.render()
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
