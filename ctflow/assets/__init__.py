"""Data shipped inside the package, located with :mod:`importlib.resources` (no repository paths).

* ``priors/NAME/`` — the shipped flow priors (``prior.json`` + ``prior.safetensors`` + data card);
  :func:`shipped_priors_dir` is the folder :func:`ctflow.priors.load_prior` searches by name.
* ``sinograms/`` — the demo's bundled sparse-angle scan; :func:`bundled_sinogram` (and
  ``bundled_sinogram(truth=True)`` for its ground truth).

These files are package data (``pyproject.toml`` lists them), so ``pip install .``, a wheel and
``pip install -e .`` all find them. They are plain files on disk in every normal installation; a
zip-imported ctflow is not supported (the functions then raise a :class:`~ctflow.errors.DataError`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import DataError

__all__ = ["BUNDLED_SCAN", "assets_dir", "bundled_sinogram", "shipped_priors_dir"]

#: The demo's bundled scan (30 parallel views of a held-out procedural abdomen slice, 1 % noise).
BUNDLED_SCAN = "abdomen-64-sparse30"


def assets_dir() -> Path:
    """The folder of ctflow's package data (``ctflow/assets`` in the installed package)."""
    root = resources.files(__name__)
    if not isinstance(root, Path):  # e.g. a zipimport Traversable
        raise DataError(f"ctflow's package data are not plain files here ({root!r}); install ctflow normally (pip)")
    return root


def shipped_priors_dir() -> Path:
    """The folder holding the shipped priors, one sub-folder per prior (``phantom-28``, ``phantom-64``)."""
    return assets_dir() / "priors"


def bundled_sinogram(truth: bool = False) -> Path:
    """The HDF5 file of the bundled sparse-angle scan (``truth=True``: its ground-truth image)."""
    path = assets_dir() / "sinograms" / (f"{BUNDLED_SCAN}_truth.h5" if truth else f"{BUNDLED_SCAN}.h5")
    if not path.is_file():
        raise DataError("the bundled scan is missing from this ctflow installation (package data not installed)", str(path))
    return path
