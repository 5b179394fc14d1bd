"""Procedural abdomen phantoms (ctflow.data.abdomen): shapes, determinism, HU plausibility,
radiological orientation, coronal organ crops, the torch Dataset and the MedMNIST-layout writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ctflow.data.abdomen import (
    LABELS,
    ORGANMNIST_CLASSES,
    TISSUES,
    AbdomenPhantom,
    AbdomenPhantomDataset,
    abdomen_slice,
    coronal_crop,
    hu_to_window,
    organmnist_label,
    write_phantom_npz,
)
from ctflow.errors import ShapeError

# OrganMNIST class -> tissue label of the generators
ORGAN_TISSUE = {
    0: LABELS["bladder"],
    1: LABELS["femur_left"],
    2: LABELS["femur_right"],
    3: LABELS["heart"],
    4: LABELS["kidney_left"],
    5: LABELS["kidney_right"],
    6: LABELS["liver"],
    7: LABELS["lung_left"],
    8: LABELS["lung_right"],
    9: LABELS["pancreas"],
    10: LABELS["spleen"],
}


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean(), cols.mean()])


# ---------------------------------------------------------------------------------------------------
# shapes, ranges, determinism
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 28, 64, 128])
def test_axial_shape_dtype_range(size):
    for seed in range(4):
        img = abdomen_slice(seed, size)
        assert img.shape == (size, size) and img.dtype == np.float32
        assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0
        assert img.std() > 0.05  # not blank
    img, lab = abdomen_slice(0, size, return_labels=True)
    assert lab.shape == (size, size) and lab.dtype == np.uint8 and lab.max() < len(TISSUES)


@pytest.mark.parametrize("size", [16, 28, 64, 128])
def test_coronal_shape_dtype_range(size):
    for seed in range(4):
        img, label = coronal_crop(seed, size)
        assert img.shape == (size, size) and img.dtype == np.float32
        assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0
        assert isinstance(label, int) and 0 <= label <= 10


def test_determinism_and_call_order():
    first = abdomen_slice(123, 64)
    first_c = coronal_crop(123, 48)
    # other seeds and sizes in between must not change anything (caches hold only grids)
    for seed in range(5):
        abdomen_slice(seed, 32)
        coronal_crop(seed, 40)
    np.testing.assert_array_equal(abdomen_slice(123, 64), first)
    again = coronal_crop(123, 48)
    np.testing.assert_array_equal(again[0], first_c[0])
    assert again[1] == first_c[1]
    np.testing.assert_array_equal(abdomen_slice(123, 64, hu=True), abdomen_slice(123, 64, hu=True))
    # different seeds differ
    imgs = [abdomen_slice(s, 64) for s in range(6)]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert not np.array_equal(imgs[i], imgs[j])
    assert not np.array_equal(coronal_crop(1, 48)[0], coronal_crop(2, 48)[0])


def test_window_and_noise():
    hu = abdomen_slice(7, 64, hu=True)
    np.testing.assert_allclose(abdomen_slice(7, 64), np.clip((hu + 160.0) / 400.0, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(
        hu_to_window(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])), [0.0, 0.0, 0.5, 1.0, 1.0]
    )
    noisy = abdomen_slice(7, 64, hu=True, noise=20.0)
    diff = noisy - hu  # same anatomy, added white noise of the requested level
    assert 15.0 < diff.std() < 25.0 and abs(diff.mean()) < 2.0
    np.testing.assert_array_equal(abdomen_slice(7, 64, noise=0.0), abdomen_slice(7, 64))


def test_bad_arguments():
    for bad in (8, 1000, 64.0, "64"):
        with pytest.raises(ShapeError):
            abdomen_slice(0, bad)
    with pytest.raises(ValueError):
        abdomen_slice(0, 64, noise=-1.0)
    with pytest.raises(ValueError):
        coronal_crop(0, 64, organ=11)
    with pytest.raises(ValueError):
        AbdomenPhantomDataset(4, kind="sagittal")
    with pytest.raises(ValueError):
        AbdomenPhantomDataset(4, ellipse_fraction=1.5)


# ---------------------------------------------------------------------------------------------------
# HU plausibility and anatomy orientation
# ---------------------------------------------------------------------------------------------------


def test_hu_values_plausible():
    bone = [LABELS["spine"], LABELS["rib"], LABELS["pelvis"]]
    liver_medians = []
    for seed in range(12):
        img, lab = abdomen_slice(seed, 128, hu=True, return_labels=True, level=0.25)
        assert img.dtype == np.float32
        # air outside the body
        corners = np.concatenate(
            [img[:4, :4].ravel(), img[:4, -4:].ravel(), img[-2:, :4].ravel(), img[-2:, -4:].ravel()]
        )
        np.testing.assert_allclose(corners, -1000.0, atol=5.0)
        assert np.median(img[lab == LABELS["air"]]) < -990.0
        assert img[np.isin(lab, bone)].max() > 300.0
        fat = img[lab == LABELS["subcutaneous_fat"]]
        assert -160.0 < np.median(fat) < -50.0
        liver = lab == LABELS["liver"]
        if liver.mean() > 0.05:
            liver_medians.append(float(np.median(img[liver])))
    assert len(liver_medians) >= 8
    assert all(40.0 <= m <= 80.0 for m in liver_medians), liver_medians


def test_radiological_orientation():
    size = 64
    for seed in range(10):
        _, lab = abdomen_slice(seed, size, return_labels=True, level=0.2)
        liver = lab == LABELS["liver"]
        spine = lab == LABELS["spine"]
        assert liver.sum() > 20 and spine.sum() > 5
        # liver mass on the image's left (the patient's right); spine posterior = lower half
        assert _centroid(liver)[1] < size / 2
        assert _centroid(spine)[0] > size / 2
        body = lab != LABELS["air"]
        body_rows = np.nonzero(body.any(axis=1))[0]
        assert _centroid(spine)[0] > body_rows.mean()
    # kidneys beside the spine: the right one on the image's left
    for seed in range(10):
        _, lab = abdomen_slice(seed, 64, return_labels=True, level=0.5)
        kr, kl, sp = (lab == LABELS[k] for k in ("kidney_right", "kidney_left", "spine"))
        if kr.sum() > 4 and kl.sum() > 4:
            assert _centroid(kr)[1] < _centroid(sp)[1] < _centroid(kl)[1]


def test_levels_change_anatomy():
    _, top = abdomen_slice(3, 64, return_labels=True, level=0.0)
    _, low = abdomen_slice(3, 64, return_labels=True, level=1.0)
    assert (top == LABELS["liver"]).sum() > 50 and (low == LABELS["liver"]).sum() == 0
    assert (low == LABELS["pelvis"]).sum() > 0 and (top == LABELS["pelvis"]).sum() == 0
    assert ((top == LABELS["lung_right"]) | (top == LABELS["lung_left"])).any()


def test_organmnist_label_of_axial_slice():
    _, lab = abdomen_slice(0, 64, return_labels=True, level=0.1)
    assert organmnist_label(lab) == 6  # the liver dominates the upper abdomen
    assert organmnist_label(np.zeros((8, 8), np.uint8)) == -1


# ---------------------------------------------------------------------------------------------------
# coronal organ crops
# ---------------------------------------------------------------------------------------------------


def test_coronal_crop_centred_on_organ():
    size = 64
    seen = set()
    for seed in range(40):
        _, label, lab = coronal_crop(seed, size, return_labels=True)
        assert 0 <= label <= 10 and ORGANMNIST_CLASSES[label]
        organ = lab == ORGAN_TISSUE[label]
        assert organ.sum() > 10, (seed, label)
        parts, _ = ndimage.label(organ)  # the organ proper, without slivers elsewhere in the crop
        organ = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        centre = (size - 1) / 2
        # the crop is centred on the organ's bounding box, with a margin on every side
        rows, cols = np.nonzero(organ)
        assert abs((rows.min() + rows.max()) / 2 - centre) <= 0.125 * size
        assert abs((cols.min() + cols.max()) / 2 - centre) <= 0.125 * size
        assert np.abs(_centroid(organ) - centre).max() <= 0.25 * size
        seen.add(label)
    assert len(seen) >= 8  # organs are picked across the classes


@pytest.mark.parametrize("organ", range(11))
def test_coronal_crop_forced_organ(organ):
    hits = 0
    for seed in range(3):
        _, label, lab = coronal_crop(seed, 32, organ=organ, return_labels=True)
        hits += label == organ
        assert (lab == ORGAN_TISSUE[label]).any()
    assert hits >= 2  # falls back to another organ only when the forced one is hidden


def test_coronal_anatomy_layout():
    # in liver crops the liver sits under the right dome: lungs above it, on the image's left side of the body
    _, label, lab = coronal_crop(5, 64, organ=6, return_labels=True)
    assert label == 6
    liver = _centroid(lab == LABELS["liver"])
    lung = (lab == LABELS["lung_right"]) | (lab == LABELS["lung_left"])
    if lung.sum() > 10:
        assert _centroid(lung)[0] < liver[0]


# ---------------------------------------------------------------------------------------------------
# Dataset and generator object
# ---------------------------------------------------------------------------------------------------


def test_dataset_items_and_loader():
    ds = AbdomenPhantomDataset(10, size=32, seed=3, kind="axial")
    assert len(ds) == 10
    x, y = ds[4]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y == -1
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # item i is the phantom of seed  seed * 1_000_003 + i
    np.testing.assert_array_equal(x[0].numpy(), abdomen_slice(3 * 1_000_003 + 4, 32))
    np.testing.assert_array_equal(ds[-1][0], ds[9][0])
    with pytest.raises(IndexError):
        ds[10]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 32, 32) and yb.tolist() == [-1] * 4


def test_dataset_kinds_and_transform():
    cor = AbdomenPhantomDataset(6, size=28, seed=1, kind="coronal")
    labels = [cor[i][1] for i in range(6)]
    assert all(0 <= lab <= 10 for lab in labels)
    mixed = AbdomenPhantomDataset(6, size=28, seed=2, kind="mixed")
    for i in range(6):
        assert (mixed[i][1] == -1) == (mixed.item_seed(i) % 2 == 0)
    flipped = AbdomenPhantomDataset(3, size=28, transform=lambda t: torch.flip(t, dims=(-1,)))
    plain = AbdomenPhantomDataset(3, size=28)
    torch.testing.assert_close(flipped[1][0], torch.flip(plain[1][0], dims=(-1,)))
    assert repr(AbdomenPhantom(64, "coronal")).startswith("AbdomenPhantom(")
    img, lab = AbdomenPhantom(32, "axial").generate(5)
    assert lab == -1 and img.shape == (32, 32)


def test_ellipse_fraction_mixing():
    n, f = 40, 0.3
    a = AbdomenPhantomDataset(n, size=32, seed=5, ellipse_fraction=f)
    b = AbdomenPhantomDataset(n, size=32, seed=5, ellipse_fraction=f)
    flags = [a.is_ellipse(i) for i in range(n)]
    assert sum(flags) == int(n * f)  # exactly floor(n f), spread evenly
    assert flags == [b.is_ellipse(i) for i in range(n)]
    assert not any(AbdomenPhantomDataset(n, size=32, ellipse_fraction=0.0).is_ellipse(i) for i in range(n))
    assert all(AbdomenPhantomDataset(n, size=32, ellipse_fraction=1.0).is_ellipse(i) for i in range(n))
    for i in range(n):
        xa, ya = a[i]
        xb, yb = b[i]
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert ya == yb
        assert 0.0 <= float(xa.min()) and float(xa.max()) <= 1.0
        if flags[i]:
            assert ya == -1
            assert not np.array_equal(xa[0].numpy(), abdomen_slice(a.item_seed(i), 32))
        else:
            np.testing.assert_array_equal(xa[0].numpy(), abdomen_slice(a.item_seed(i), 32))
    # ellipse images: background 0, body near the top of the range
    ell = a[flags.index(True)][0][0].numpy()
    assert ell[0, 0] == 0.0 and ell.max() > 0.5


# ---------------------------------------------------------------------------------------------------
# MedMNIST-layout npz writer
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["coronal", "axial"])
def test_write_phantom_npz(tmp_path, kind):
    path = tmp_path / "sub" / f"phantom_{kind}.npz"
    out = write_phantom_npz(path, 6, 3, 4, size=28, seed=1, kind=kind, ellipse_fraction=0.2 if kind == "axial" else 0.0)
    assert out == path and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    with np.load(path) as z:
        assert sorted(z.files) == sorted(
            ["train_images", "val_images", "test_images", "train_labels", "val_labels", "test_labels"]
        )
        sizes = {"train": 6, "val": 3, "test": 4}
        images = {}
        for split, n in sizes.items():
            x, y = z[f"{split}_images"], z[f"{split}_labels"]
            assert x.shape == (n, 28, 28) and x.dtype == np.uint8
            assert y.shape == (n, 1) and y.dtype == np.int64
            assert ((0 <= y) & (y <= 10)).all()
            images[split] = x
    # disjoint splits: no image appears in two splits
    flat = {split: {x.tobytes() for x in imgs} for split, imgs in images.items()}
    assert not (flat["train"] & flat["val"]) and not (flat["train"] & flat["test"]) and not (flat["val"] & flat["test"])
    # images are round(255 x) of the dataset items, split after split
    ds = AbdomenPhantomDataset(13, size=28, seed=1, kind=kind, ellipse_fraction=0.2 if kind == "axial" else 0.0)
    np.testing.assert_array_equal(images["val"][0], np.round(ds[6][0][0].numpy() * 255.0).astype(np.uint8))
    if kind == "coronal":
        with np.load(path) as z:
            assert z["test_labels"][1, 0] == ds[10][1]


def test_write_phantom_npz_failure_leaves_nothing(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(ValueError):
        write_phantom_npz(path, 2, 1, 1, size=16, unlabeled=12)
    with pytest.raises(ShapeError):
        write_phantom_npz(path, 2, 1, 1, size=8)
    assert list(tmp_path.iterdir()) == []


def test_write_phantom_npz_interrupted_write(tmp_path, monkeypatch):
    from ctflow.data.abdomen import dataset

    def broken_savez(file, **arrays):
        with open(file, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(dataset.np, "savez_compressed", broken_savez)
    target = tmp_path / "x.npz"
    with pytest.raises(OSError):
        write_phantom_npz(target, 2, 1, 1, size=16)
    assert list(tmp_path.iterdir()) == []
