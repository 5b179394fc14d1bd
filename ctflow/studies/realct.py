"""Real CT slices as an evaluation set: the ``realct`` suite of ``ctflow benchmark``.

A slice read with :func:`ctflow.io.read_dicom_image` is turned into the priors' frame:

1. **Orientation.** Turned so the patient's anterior is at the top and the patient's right on the image's
   left (the radiological display the phantoms are drawn in): with ImageOrientationPatient ``(r, c)`` in
   DICOM's LPS patient frame, rows are flipped when the column direction ``c`` points anterior
   (``c_y < 0``), columns when the row direction ``r`` points to the patient's right (``r_x < 0``).
2. **Field of view.** The body is the largest connected region above −500 HU (holes filled, so the table
   drops out). A square centred on it with side ``max(h, w) / BODY_FRACTION`` is cut out (−1024 HU where
   it leaves the image), so the body fills the field of view as in the axial phantoms; a body that touches
   the image border (a crop of a larger patient) keeps the central square of the whole image.
3. **Resampling.** Exact area averaging to the prior's size (each output pixel is the area-weighted mean of
   the input pixels it covers), then the L40/W400 window to [0, 1] (:func:`ctflow.units.hu_to_window`).

Always available: ``CT_small.dcm``, a 128² abdominal CT slice that ships with pydicom. More slices come from
``ctflow benchmark --real-ct FILE ...`` (for instance ``explicit_VR-UN.dcm`` from the ``pydicom-data`` wheel,
a 512² contrast-phase slice at the pancreas).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

BODY_HU = -500.0
#: The body's extent over the field-of-view side in the axial phantoms (their median at 64²).
BODY_FRACTION = 0.8
AIR_HU = -1024.0


@dataclasses.dataclass(frozen=True)
class RealSlice:
    """One prepared slice: ``image`` ``(S, S)`` float32 in window units [0, 1], and where it came from."""

    name: str
    image: np.ndarray
    source: str
    native: str
    mm_per_px: float
    flips: tuple[bool, bool]  # (rows flipped, columns flipped)


def ct_small_path() -> Path | None:
    """pydicom's bundled ``CT_small.dcm`` (None when this pydicom does not ship it)."""
    from pydicom.data import get_testdata_file

    p = get_testdata_file("CT_small.dcm", download=False)
    return Path(p) if p else None


def default_files() -> list[Path]:
    p = ct_small_path()
    return [p] if p is not None else []


def anterior_up_flips(orientation) -> tuple[bool, bool]:
    """``(flip rows, flip columns)`` that put anterior at the top and the patient's right on the left,
    from ImageOrientationPatient ``(r_x, r_y, r_z, c_x, c_y, c_z)``; no flips when it is missing."""
    if orientation is None:
        return False, False
    r, c = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return bool(c[1] < 0), bool(r[0] < 0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of ``mask`` with its holes filled."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(lab == int(np.argmax(sizes)))


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of exact area averaging: output pixel i covers input ``[i s, (i+1) s)``."""
    s = n_in / n_out
    edges = np.arange(n_out + 1) * s
    lo = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(hi - lo, 0.0, None) / s


def area_resize(img: np.ndarray, shape) -> np.ndarray:
    """Resize by exact area averaging (for integer factors, block means). Meant for downsampling."""
    x = np.asarray(img, np.float64)
    return _area_matrix(x.shape[0], shape[0]) @ x @ _area_matrix(x.shape[1], shape[1]).T


def body_square(hu: np.ndarray, pixel_mm: float, size: int,
                body_fraction: float = BODY_FRACTION) -> tuple[np.ndarray, dict]:
    """Cut the square field of view around the body (step 2 of the module docstring) and area-resize it to
    ``size``; returns the HU image and a description (native size, crop, mm per output pixel)."""
    hu = np.asarray(hu, np.float64)
    h, w = hu.shape
    body = largest_component(hu > BODY_HU)
    rows, cols = np.nonzero(body)
    touches = rows.size == 0 or rows.min() == 0 or cols.min() == 0 or rows.max() == h - 1 or cols.max() == w - 1
    if touches:
        side = min(h, w)
        r0, c0 = (h - side) // 2, (w - side) // 2
    else:
        side = round(float(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)) / body_fraction)
        r0 = round(float(rows.min() + rows.max() + 1) / 2 - side / 2)
        c0 = round(float(cols.min() + cols.max() + 1) / 2 - side / 2)
    crop = np.full((side, side), AIR_HU)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, h), min(c0 + side, w)
    crop[rs - r0: re - r0, cs - c0: ce - c0] = hu[rs:re, cs:ce]
    info = {"native": f"{h}x{w} @ {pixel_mm:.3g} mm",
            "crop": f"{side} px ({side * pixel_mm:.0f} mm){' whole image' if touches else ''}",
            "mm_per_px": side * pixel_mm / size}
    return area_resize(crop, (size, size)).astype(np.float32), info


def prepare_slice(path: str | os.PathLike, size: int) -> RealSlice:
    """Read one DICOM CT slice (ctflow's guarded reader) and bring it into the priors' frame."""
    from ..io import read_dicom_image
    from ..units import hu_to_window

    ct = read_dicom_image(path)
    hu = np.asarray(ct.hu, np.float32)
    if hu.ndim == 3:  # a multi-frame file: its middle frame
        hu = hu[hu.shape[0] // 2]
    flip_rows, flip_cols = anterior_up_flips(ct.orientation)
    if flip_rows:
        hu = hu[::-1]
    if flip_cols:
        hu = hu[:, ::-1]
    small, info = body_square(hu, float(ct.pixel_spacing[1]), size)
    img = np.clip(hu_to_window(small), 0.0, 1.0).astype(np.float32)
    return RealSlice(Path(path).stem, img, Path(path).name, info["native"], info["mm_per_px"], (flip_rows, flip_cols))


def real_ct_images(files=None, size: int = 64):
    """The prepared slices of ``files`` (default: pydicom's ``CT_small.dcm``) as a tensor ``(n, 1, S, S)``
    and their :class:`RealSlice` descriptions."""
    import torch

    paths = [Path(f) for f in files] if files else default_files()
    if not paths:
        raise DataError("no real CT slices: this pydicom does not ship CT_small.dcm; pass --real-ct FILE ...",
                        "CT_small.dcm")
    slices = [prepare_slice(p, size) for p in paths]
    imgs = torch.from_numpy(np.stack([s.image for s in slices]))[:, None].contiguous()
    return imgs, slices
