"""Tissues of the abdomen phantoms: label table, OrganMNIST classes, the L40/W400 window, the HU
values of one 'patient' and the per-tissue amplitudes of the smooth texture fields.

A label map (``return_labels=True``) holds the index of a name in :data:`TISSUES`; "right" and
"left" are the patient's sides (the patient's right is on the image's left).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ShapeError
from ...units import WINDOW_LEVEL, WINDOW_WIDTH, hu_to_window  # noqa: F401  (re-exported by the package)

if TYPE_CHECKING:
    from .canvas import _Draw

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

MIN_SIZE, MAX_SIZE = 16, 512


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
        raise ValueError(
            f"version must be 1 (piecewise-smooth phantoms) or 2 (CT-realistic, phantoms v2), got {version!r}"
        )
    return int(version)


def _check_noise(noise) -> float:
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0.0):
        raise ValueError(f"noise is a standard deviation in HU and must be >= 0, got {noise}")
    return noise


# --------------------------------------------------------------------------------------------------
# HU values and texture amplitudes per seed
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


def _texture_amplitudes(draw: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Per-label amplitudes (HU) of the low- and mid-frequency texture fields."""
    u = draw.array(2 * _TEX_LO.shape[0]).reshape(-1, 2)
    amp = (_TEX_LO + (_TEX_HI - _TEX_LO) * u).astype(np.float32)[_TEX_OF_LABEL]
    return amp[:, 0], amp[:, 1]
