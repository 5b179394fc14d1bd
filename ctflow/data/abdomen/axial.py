"""Axial slices: :func:`abdomen_slice`.

The image spans ``[-1, 1]`` in x and y (pixel size ``2 / size``; one unit is about 200 mm, so the
field of view is about 400 mm), in radiological orientation: the patient's right on the image's
left, anterior at the top, the spine and the table at the bottom. The slice level runs from 0
(liver dome and lung bases) over ~0.4 (kidneys, pancreas) to 1 (upper pelvis).

:func:`_axial_scene` draws the anatomy in a fixed order of steps (:mod:`.axial_body`: body wall,
table, spine, ribs, pelvis, muscles, great vessels; :mod:`.axial_organs`: lungs, kidneys, stomach,
spleen, liver, pancreas, bowel) that consume the random draws in that order, so a seed always
gives the same slice; :func:`~.texture._finish` then adds texture, blur and noise.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .axial_body import _N_THETA, _Axial, _body_wall, _great_vessels, _muscles, _pelvis, _ribs, _table, _vertebra
from .axial_organs import _bowel, _kidneys, _liver, _lung_bases, _pancreas, _stomach_and_spleen
from .canvas import _Canvas, _Draw, _rbf_matrix, _readonly, _Scene
from .texture import _TEXTURE_SPACINGS, _finish
from .tissues import _check_noise, _check_size, _check_version, _tissue_values, hu_to_window

# --------------------------------------------------------------------------------------------------
# Per-size caches (coordinates, angle bins, texture bases)
# --------------------------------------------------------------------------------------------------


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


@functools.lru_cache(maxsize=64)
def _axial_rbf(size: int):
    xs, ys, _, _ = _axial_grid(size)
    out = []
    for spacing in _TEXTURE_SPACINGS:
        out.append(_rbf_matrix(ys, -1.2, 1.2, spacing))
        out.append(_rbf_matrix(xs, -1.2, 1.2, spacing))
    return tuple(_readonly(*out))


# --------------------------------------------------------------------------------------------------
# The scene and the entry point
# --------------------------------------------------------------------------------------------------

# the steps after the body wall, in drawing order (which is also the order of the random draws)
_STEPS = (
    _table, _vertebra, _ribs, _pelvis, _muscles, _great_vessels,  # axial_body
    _lung_bases, _kidneys, _stomach_and_spleen, _liver, _pancreas, _bowel,  # axial_organs
)  # fmt: skip


def _axial_scene(cv: _Canvas, tidx: np.ndarray, rho: np.ndarray, draw: _Draw, level: float | None = None) -> dict:
    """Draw one axial abdomen slice onto ``cv``; returns a few scene facts (level, contrast)."""
    z = draw()  # 0: liver dome / lung bases ... 0.4: kidneys, pancreas ... 1: upper pelvis
    if level is not None:
        z = min(1.0, max(0.0, float(level)))
    hu = _tissue_values(draw)
    sz = draw(0.9, 1.1)  # overall anatomy scale
    s = _Axial(cv, draw, _Scene(cv), z, hu, sz)
    _body_wall(s, tidx, rho)
    for step in _STEPS:
        step(s)
    s.sc.render()
    return {"level": z, "contrast": hu["contrast"]}


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
            fat septa, muscle marbling, FBP-like noise grain; see :mod:`ctflow.data.abdomen.texture`).
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
