"""What the training loop sees: images addressable by a global index (procedural phantoms, MedMNIST or an
npz), the batch of each step built off the training thread (:class:`StepBatches`), and the per-step
noise and times, pure functions of ``(seed, step)`` so that a resumed run sees the batches an
uninterrupted one would."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError

if TYPE_CHECKING:
    from .train import TrainConfig


class ImageSource:
    """Images in [0, 1] addressable by a global index (training) and a fixed validation set."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        if cfg.data == "phantoms":
            from ..data.abdomen import AbdomenPhantomDataset

            common = {"size": cfg.size, "kind": cfg.phantom_kind, "ellipse_fraction": cfg.ellipse_fraction, "version": cfg.phantom_version}
            self._train = AbdomenPhantomDataset(2**40, seed=cfg.seed, **common)
            val = AbdomenPhantomDataset(cfg.n_val, seed=cfg.seed + 7919, **common)
            self.val = torch.stack([val[i][0] for i in range(len(val))])
            self._array = None
        else:
            self._array, self.val = self._load_npz(cfg)
            self._train = None

    @staticmethod
    def _load_npz(cfg: TrainConfig):
        from ..data.medmnist import MEDMNIST_FLAGS, load_medmnist

        if cfg.data in MEDMNIST_FLAGS:
            tr, _ = load_medmnist(cfg.data, cfg.size, "train", root=cfg.medmnist_root)
            va, _ = load_medmnist(cfg.data, cfg.size, "val", root=cfg.medmnist_root)
        else:
            p = Path(cfg.data)
            if not p.is_file():
                raise DataError("training data file does not exist (use 'phantoms', a MedMNIST flag or an .npz path)", str(p))
            tr, va = _read_training_npz(p, cfg.n_val)
        if tr.shape[-1] != cfg.size:
            raise DataError(f"images are {tr.shape[-1]}px but size={cfg.size}", cfg.data)
        return torch.from_numpy(np.ascontiguousarray(tr))[:, None], torch.from_numpy(np.ascontiguousarray(va[: cfg.n_val]))[:, None]

    def batch(self, indices: list[int]) -> torch.Tensor:
        if self._train is not None:
            return torch.stack([self._train[i][0] for i in indices])
        n = self._array.shape[0]
        epoch_perm = {}
        out = []
        for i in indices:  # a fresh permutation per epoch, seeded by (seed, epoch)
            e = i // n
            if e not in epoch_perm:
                epoch_perm[e] = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + e))
            out.append(self._array[epoch_perm[e][i % n]])
        return torch.stack(out)


def _read_training_npz(p: Path, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_images`` and the first ``n_val`` ``val_images`` of a MedMNIST-layout ``.npz`` as float32 in
    [0, 1] (÷255), read through :class:`ctflow.io.arrays.NpzFile`: shapes, dtypes and declared sizes are
    checked before anything is allocated, NaN/Inf refused; every failure is a DataError naming the file."""
    from ..io.arrays import NpzFile

    with NpzFile(p, "training .npz file") as z:
        if "train_images" not in z or "val_images" not in z:
            raise DataError(f"expected MedMNIST keys train_images/val_images, found {sorted(z.keys)}", str(p))
        arrays = []
        for key, rows in (("train_images", None), ("val_images", max(int(n_val), 1))):
            shape, _ = z.shape(key)
            if len(shape) != 3 or shape[1] != shape[2] or shape[0] < 1 or shape[1] < 1:
                raise DataError(f"{key} must be (N, S, S) images, got shape {shape}", str(p))
            arrays.append(z.read(key, dtype=np.float32, max_rows=rows))
    tr, va = arrays
    if tr.shape[1:] != va.shape[1:]:
        raise DataError(f"train_images are {tr.shape[1:]} but val_images are {va.shape[1:]}", str(p))
    tr /= np.float32(255.0)
    va /= np.float32(255.0)
    return tr, va


class StepBatches(torch.utils.data.IterableDataset):
    """The data batches of steps ``start .. stop-1`` for one rank, in step order (one item per step).

    Iterated by a DataLoader worker, so the next batches are generated while the network trains on
    the current one; the content of step ``s`` depends only on ``(seed, s)``, never on the workers.
    """

    def __init__(self, data: ImageSource, start: int, stop: int, batch_size: int, lo: int, local: int):
        self.data, self.start, self.stop = data, start, stop
        self.batch_size, self.lo, self.local = batch_size, lo, local

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.lo
            yield self.data.batch(list(range(first, first + self.local)))


def sample_times(n: int, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    if cfg.t_sampling == "uniform":
        return torch.rand(n, generator=g)
    return torch.sigmoid(cfg.logit_mean + cfg.logit_std * torch.randn(n, generator=g))


def step_noise(cfg: TrainConfig, step: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, t)`` for the whole global batch of ``step`` (a pure function of seed and step)."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7 * step + 1)
    return torch.randn(shape, generator=g), sample_times(shape[0], cfg, g)
