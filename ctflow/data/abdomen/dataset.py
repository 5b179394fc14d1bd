"""Phantoms as data: :class:`AbdomenPhantom` (a configured generator), :class:`AbdomenPhantomDataset`
(a torch Dataset, optionally mixed with random-ellipse phantoms), :func:`write_phantom_npz` (the
MedMNIST ``.npz`` layout) and :func:`benchmark_rate` (images per second).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ...files import atomic_path
from ...physics.phantoms import ellipses_image, random_ellipses
from .axial import abdomen_slice
from .coronal import coronal_crop
from .tissues import _FROM_ORGANMNIST, _check_noise, _check_size, _check_version, organmnist_label

# --------------------------------------------------------------------------------------------------
# Generator object, dataset, npz writer
# --------------------------------------------------------------------------------------------------


class AbdomenPhantom:
    """A configured phantom source: ``phantom(seed)`` gives one image (axial or coronal).

    Args:
        size: output side in pixels (16..512).
        kind: ``"axial"`` (:func:`abdomen_slice`), ``"coronal"`` (:func:`coronal_crop`) or
            ``"mixed"`` (axial for even seeds, coronal for odd ones).
        hu: Hounsfield units instead of the [0, 1] window.
        noise: white-noise standard deviation in HU.
        version: 1 (piecewise-smooth) or 2 (CT-realistic phantoms v2).

    ``phantom.generate(seed)`` returns ``(image, label)`` with label -1 for axial slices.
    """

    KINDS = ("axial", "coronal", "mixed")

    def __init__(self, size: int = 64, kind: str = "axial", *, hu: bool = False, noise: float = 0.0, version: int = 1):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.version = _check_version(version)
        self.size = _check_size(size)
        self.kind = kind
        self.hu = bool(hu)
        self.noise = _check_noise(noise)

    def kind_of(self, seed: int) -> str:
        if self.kind == "mixed":
            return "axial" if seed % 2 == 0 else "coronal"
        return self.kind

    def generate(self, seed: int) -> tuple[np.ndarray, int]:
        if self.kind_of(seed) == "axial":
            return abdomen_slice(seed, self.size, hu=self.hu, noise=self.noise, version=self.version), -1
        return coronal_crop(seed, self.size, hu=self.hu, noise=self.noise, version=self.version)

    def __call__(self, seed: int) -> np.ndarray:
        return self.generate(seed)[0]

    def __repr__(self) -> str:
        return f"AbdomenPhantom(size={self.size}, kind={self.kind!r}, hu={self.hu}, noise={self.noise}, version={self.version})"


def _ellipse_image(seed: int, size: int) -> np.ndarray:
    """A :func:`ctflow.physics.phantoms.random_ellipses` phantom rasterised at ``size`` and scaled into
    [0, 1]: negative values clipped to 0, then divided by the maximum (when above 1)."""
    img = ellipses_image(random_ellipses(seed, size / 2.0), size, 1.0, supersample=2).numpy()
    img = np.clip(img, 0.0, None)
    peak = float(img.max())
    if peak > 1.0:
        img = img / peak
    return img.astype(np.float32)


def _is_ellipse(index: int, fraction: float) -> bool:
    # evenly spread: exactly floor(n * fraction) of the first n items are ellipse images
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


class AbdomenPhantomDataset(torch.utils.data.Dataset):
    """``n`` procedural phantoms as a torch Dataset of ``(image (1, S, S) float32 in [0, 1], label)``.

    Item ``i`` is drawn from seed ``seed * 1_000_003 + i`` (so datasets with different ``seed``
    values do not share items for ``n < 1_000_003``), and is the same every time it is read.

    Args:
        n: number of items.
        size: image side (16..512).
        seed: dataset seed.
        kind: ``"axial"`` (label -1), ``"coronal"`` (OrganMNIST label of the centred organ), or
            ``"mixed"`` (item seed even: axial, odd: coronal).
        ellipse_fraction: fraction of items replaced by random-ellipse phantoms
            (:func:`ctflow.physics.phantoms.random_ellipses`, label -1). The choice depends only on the
            index: item ``i`` is an ellipse image when ``floor((i + 1) f) > floor(i f)``, which spreads
            them evenly (exactly ``floor(n f)`` of them).
        transform: optional callable applied to the image tensor.
        version: phantom generation 1 or 2 (:class:`AbdomenPhantom`).
    """

    def __init__(
        self,
        n: int,
        size: int = 64,
        seed: int = 0,
        kind: str = "axial",
        ellipse_fraction: float = 0.0,
        transform: Callable | None = None,
        version: int = 1,
    ):
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not 0.0 <= float(ellipse_fraction) <= 1.0:
            raise ValueError(f"ellipse_fraction must be in [0, 1], got {ellipse_fraction}")
        self.n = int(n)
        self.seed = int(seed)
        self.ellipse_fraction = float(ellipse_fraction)
        self.transform = transform
        self.phantom = AbdomenPhantom(size, kind, version=version)
        self.size = self.phantom.size
        self.kind = kind

    def __len__(self) -> int:
        return self.n

    def item_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index

    def is_ellipse(self, index: int) -> bool:
        return _is_ellipse(index, self.ellipse_fraction)

    def array(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index`` as a ``(S, S)`` float32 array in [0, 1] and its label."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a dataset of {self.n}")
        index %= max(self.n, 1)
        seed = self.item_seed(index)
        if self.is_ellipse(index):
            return _ellipse_image(seed, self.size), -1
        return self.phantom.generate(seed)

    def __getitem__(self, index: int):
        img, label = self.array(int(index))
        x = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(label)


def write_phantom_npz(
    path: str | os.PathLike,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int = 64,
    seed: int = 0,
    kind: str = "coronal",
    *,
    ellipse_fraction: float = 0.0,
    unlabeled: int = 6,
    progress: bool | None = None,
) -> Path:
    """Write a phantom dataset with the MedMNIST ``.npz`` layout and return ``path``.

    Keys ``train_images``, ``val_images``, ``test_images``: ``(N, S, S)`` uint8 ``round(255 x)``;
    ``train_labels``, ``val_labels``, ``test_labels``: ``(N, 1)`` int64 OrganMNIST classes (0..10).
    The splits are consecutive index ranges of one :class:`AbdomenPhantomDataset` (train first),
    so their seeds are disjoint. Labels stay valid classes: an axial slice gets the class of the
    largest OrganMNIST organ it shows (:func:`organmnist_label`), and an image without one (a
    random-ellipse image, a pelvic slice with none of them) gets ``unlabeled`` (default 6, liver).
    The file is written through a temporary file and renamed only when complete. ``progress``
    shows a tqdm bar (default: when there are 2000 or more images).
    """
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if min(counts.values()) < 0:
        raise ValueError(f"split sizes must be >= 0, got {counts}")
    if unlabeled not in _FROM_ORGANMNIST:
        raise ValueError(f"unlabeled must be an OrganMNIST class 0..10, got {unlabeled}")
    total = sum(counts.values())
    ds = AbdomenPhantomDataset(total, size, seed, kind, ellipse_fraction)
    if progress is None:
        progress = total >= 2000
    from tqdm.auto import tqdm

    arrays: dict[str, np.ndarray] = {}
    start = 0
    with tqdm(total=total, desc=f"phantoms -> {Path(path).name}", unit="img", disable=not progress) as bar:
        for split, count in counts.items():
            images = np.empty((count, ds.size, ds.size), np.uint8)
            labels = np.empty((count, 1), np.int64)
            for j in range(count):
                i = start + j
                if not ds.is_ellipse(i) and ds.phantom.kind_of(ds.item_seed(i)) == "axial":
                    img, lab_map = abdomen_slice(ds.item_seed(i), ds.size, return_labels=True)
                    label = organmnist_label(lab_map)
                else:
                    img, label = ds.array(i)
                images[j] = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
                labels[j, 0] = label if label >= 0 else unlabeled
                bar.update(1)
            arrays[f"{split}_images"] = images
            arrays[f"{split}_labels"] = labels
            start += count
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------------


def benchmark_rate(size: int = 64, n: int = 1000, kind: str = "axial") -> float:
    """Images generated per second by a loop over seeds 0..n-1 (after one warm-up call).

    ``kind``: ``"axial"`` (:func:`abdomen_slice`) or ``"coronal"`` (:func:`coronal_crop`). The
    blur and the textures are small matrix products, so for a one-core figure set
    ``OPENBLAS_NUM_THREADS=1`` (or the variable of your BLAS) before starting Python.
    """
    if kind not in ("axial", "coronal"):
        raise ValueError(f"kind must be 'axial' or 'coronal', got {kind!r}")
    fn = abdomen_slice if kind == "axial" else coronal_crop
    fn(n + 1, size)
    t0 = time.perf_counter()
    for seed in range(n):
        fn(seed, size)
    return n / (time.perf_counter() - t0)
