"""Write docs/phantoms_contact_sheet.png: procedural abdomen phantoms beside a real CT slice.

Rows: axial slices at 64² and 128² (levels from the liver dome down to the pelvis), then coronal
organ-centred crops ("in the spirit of OrganCMNIST") at 64² and 128², one per organ class. The
left panel is pydicom's bundled real CT test slice ``CT_small.dcm`` (HU = stored * slope +
intercept), shown in the same abdominal window L40/W400 as the phantoms.

    python docs/make_contact_sheet.py [--out docs/phantoms_contact_sheet.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ctflow._io import atomic_path
from ctflow.data.abdomen import ORGANMNIST_CLASSES, abdomen_slice, coronal_crop, hu_to_window

N_COLS = 7
LEVELS = np.linspace(0.05, 0.95, N_COLS)
ORGANS = (6, 10, 5, 4, 3, 8, 0, 2, 9, 7, 1)  # OrganMNIST classes shown, left to right


def real_ct_window() -> tuple[np.ndarray, str]:
    """pydicom's CT_small.dcm in HU, windowed L40/W400, and a caption."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    px = float(ds.PixelSpacing[0])
    caption = f"real CT (pydicom CT_small.dcm)\n{hu.shape[0]}² px, {px:.2f} mm/px, L40/W400"
    return hu_to_window(hu), caption


def make_sheet(out: Path, seed: int = 0) -> Path:
    fig = plt.figure(figsize=(2.6 + 1.9 * N_COLS, 8.4), dpi=100)
    grid = fig.add_gridspec(4, N_COLS + 2, width_ratios=[2.2, 0.15] + [1.0] * N_COLS, hspace=0.32, wspace=0.06)
    real, caption = real_ct_window()
    ax = fig.add_subplot(grid[1:3, 0])
    ax.imshow(real, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(caption, fontsize=8)
    ax.axis("off")
    rows = [("axial", 64), ("axial", 128), ("coronal", 64), ("coronal", 128)]
    for r, (kind, size) in enumerate(rows):
        for c in range(N_COLS):
            ax = fig.add_subplot(grid[r, c + 2])
            s = seed + 100 * r + c
            if kind == "axial":
                img = abdomen_slice(s, size, level=float(LEVELS[c]))
                title = f"axial {size}² z={LEVELS[c]:.2f}"
            else:
                img, label = coronal_crop(s, size, organ=ORGANS[(c + 3 * (r - 2)) % len(ORGANS)])
                title = f"cor {size}² {ORGANMNIST_CLASSES[label]}"
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle("ctflow procedural abdomen phantoms (synthetic) vs a real CT slice; window L40/W400", fontsize=9)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "phantoms_contact_sheet.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = make_sheet(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
