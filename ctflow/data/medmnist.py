"""MedMNIST organ datasets (OrganCMNIST, OrganAMNIST, OrganSMNIST) read straight from the ``.npz``.

The files are the MedMNIST+ v3 releases on Zenodo (record 10519652), the same files and cache folder
(``~/.medmnist``) as the official ``medmnist`` package, which ctflow does not need. Each file holds
``{train,val,test}_images`` (N, S, S) uint8 and ``{train,val,test}_labels`` (N, 1); the 11 labels are
organs (0 bladder, 1 femur-left, 2 femur-right, 3 heart, 4 kidney-left, 5 kidney-right, 6 liver,
7 lung-left, 8 lung-right, 9 pancreas, 10 spleen). Data licence: CC BY 4.0 (cite MedMNIST and LiTS).

Files are found in ``root``, else ``$MEDMNIST_ROOT``, else ``~/.medmnist``. Nothing is downloaded
unless asked (``download=True`` or ``ctflow data medmnist --download``); downloads stream to a temp
file in the target folder and are renamed into place only after the MD5 check passes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..files import atomic_path

__all__ = [
    "MEDMNIST_BASE_URL",
    "MEDMNIST_FILES",
    "MEDMNIST_FLAGS",
    "MEDMNIST_LABELS",
    "MEDMNIST_SIZES",
    "MEDMNIST_SPLITS",
    "MedMNISTDataset",
    "MedMNISTFile",
    "MedMNISTLocation",
    "download_medmnist",
    "load_medmnist",
    "locate_medmnist",
    "medmnist_root",
    "medmnist_url",
    "verify_medmnist_file",
]

#: Folder URL of the files; ``?download=1`` is appended for http(s) URLs. Tests and mirrors may
#: point it (or the ``base_url=`` arguments) elsewhere, e.g. at a ``file://`` folder.
MEDMNIST_BASE_URL = "https://zenodo.org/records/10519652/files"
MEDMNIST_FLAGS = ("organcmnist", "organamnist", "organsmnist")
MEDMNIST_SIZES = (28, 64, 128, 224)
MEDMNIST_SPLITS = ("train", "val", "test")
MEDMNIST_LABELS = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
)  # fmt: skip
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class MedMNISTFile:
    """One MedMNIST release file: its name and accepted MD5s.

    ``md5`` is ``None`` when no checksum is known: such a file is checked only for its layout, and
    verification warns instead of failing.
    """

    flag: str
    size: int
    filename: str
    md5: tuple[str, ...] | None

    @property
    def url(self) -> str:
        """Download URL under the current :data:`MEDMNIST_BASE_URL`."""
        return medmnist_url(self.flag, self.size)


# MD5s of the v3 files (Zenodo record 10519652, as in medmnist/info.py of medmnist 3.x). At 28 px
# the older v2 files (records 5208230 / 6496656) hold the same images and are accepted too.
_V3_MD5 = {
    ("organcmnist", 28): "b9ceb9546e10131b32923c5bbeaea2b1",
    ("organcmnist", 64): "3ce34a8724ea6f548e6db4744d03b6a9",
    ("organcmnist", 128): "773c1f009daa3fe5d9a2a201b2a7ed94",
    ("organcmnist", 224): "050f5e875dc056f6768abf94ec9995d1",
    ("organamnist", 28): "68e3f8846a6bd62f0c9bf841c0d9eacc",
    ("organamnist", 64): "2dcccc29b88e6da5a01161ef20cda288",
    ("organamnist", 128): "eeae80d0a227a8d099027e1b3cfd3b60",
    ("organamnist", 224): "50747347e05c87dd3aaf92c49f9f3170",
    ("organsmnist", 28): "9ab87b696fb54e2a387ebe992d6ed5f1",
    ("organsmnist", 64): "53a6d115339d874c25e309a994ff46d3",
    ("organsmnist", 128): "ded0c5fa01a95dc4978b956f613e9b8e",
    ("organsmnist", 224): "b354719e553fbbb2513d5533f52a4cb1",
}
_V2_MD5 = {
    "organcmnist": "0afa5834fb105f7705a7d93372119a21",
    "organamnist": "866b832ed4eeba67bfb9edee1d5544e6",
    "organsmnist": "e5c39f1af030238290b9557d9503af9d",
}


def _filename(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _build_table() -> dict[tuple[str, int], MedMNISTFile]:
    table = {}
    for flag in MEDMNIST_FLAGS:
        for size in MEDMNIST_SIZES:
            md5s = [m for m in (_V3_MD5.get((flag, size)), _V2_MD5.get(flag) if size == 28 else None) if m]
            table[(flag, size)] = MedMNISTFile(flag, size, _filename(flag, size), tuple(md5s) or None)
    return table


#: ``(flag, size) -> MedMNISTFile`` for every supported file.
MEDMNIST_FILES: dict[tuple[str, int], MedMNISTFile] = _build_table()


@dataclasses.dataclass(frozen=True)
class MedMNISTLocation:
    """Where a MedMNIST file is expected and its state (what ``ctflow data medmnist`` reports).

    ``md5_ok`` is ``None`` when the file is missing or no checksum is known; ``md5`` holds the
    accepted checksums and ``actual_md5`` the file's own (``None`` if missing).
    """

    flag: str
    size: int
    path: Path
    exists: bool
    md5_ok: bool | None
    url: str
    md5: tuple[str, ...] | None
    actual_md5: str | None = None


# --------------------------------------------------------------------------------------------
# validation and paths
# --------------------------------------------------------------------------------------------
def _entry(flag: str, size: int) -> MedMNISTFile:
    if not isinstance(flag, str) or flag.lower() not in MEDMNIST_FLAGS:
        raise ValueError(f"unknown MedMNIST flag {flag!r}; valid flags: {', '.join(MEDMNIST_FLAGS)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) not in MEDMNIST_SIZES:
        raise ValueError(f"unsupported MedMNIST size {size!r}; valid sizes: {', '.join(map(str, MEDMNIST_SIZES))}")
    return MEDMNIST_FILES[(flag.lower(), int(size))]


def _check_split(split: str) -> str:
    if split not in MEDMNIST_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(MEDMNIST_SPLITS)}")
    return split


def medmnist_root(root: str | os.PathLike | None = None) -> Path:
    """The MedMNIST folder: ``root``, else ``$MEDMNIST_ROOT``, else ``~/.medmnist`` (not created)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MEDMNIST_ROOT")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".medmnist"


def medmnist_url(flag: str, size: int = 28, base_url: str | None = None) -> str:
    """Download URL of a file: ``{base_url}/{filename}``, plus ``?download=1`` for http(s)."""
    entry = _entry(flag, size)
    base = (MEDMNIST_BASE_URL if base_url is None else base_url).rstrip("/")
    url = f"{base}/{entry.filename}"
    if urllib.parse.urlsplit(base).scheme in ("http", "https"):
        url += "?download=1"
    return url


def _md5_text(entry: MedMNISTFile) -> str:
    return " or ".join(entry.md5) if entry.md5 else "unknown (no published checksum; only the layout is checked)"


# --------------------------------------------------------------------------------------------
# checksums
# --------------------------------------------------------------------------------------------
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def _hash_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _file_md5(path: Path) -> str:
    """MD5 of ``path``, cached per (path, size, mtime) so repeated loads do not re-hash."""
    key = _stat_key(path)
    md5 = _MD5_CACHE.get(key)
    if md5 is None:
        md5 = _MD5_CACHE[key] = _hash_file(path)
    return md5


def verify_medmnist_file(path: str | os.PathLike, flag: str, size: int = 28) -> str:
    """Check ``path`` against the MD5s of ``(flag, size)`` and return its MD5.

    Raises :class:`DataError` on a mismatch or a missing file; warns (and returns the MD5) when no
    checksum is known for the file.
    """
    entry = _entry(flag, size)
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    md5 = _file_md5(path)
    if entry.md5 is None:
        warnings.warn(
            f"{path}: no published MD5 for {entry.filename}; only its layout is checked", UserWarning, stacklevel=2
        )
    elif md5 not in entry.md5:
        raise DataError(
            f"MD5 mismatch: expected {_md5_text(entry)}, got {md5}. The file is corrupt, incomplete or a "
            f"different release; delete it and download it again (load_medmnist(..., download=True) or "
            f"`ctflow data medmnist --download`), or pass verify=False to skip the check",
            str(path),
        )
    return md5


def locate_medmnist(
    flag: str = "organcmnist", size: int = 28, root: str | os.PathLike | None = None, base_url: str | None = None
) -> MedMNISTLocation:
    """Where ``(flag, size)`` is expected, whether it is there and whether its MD5 is right."""
    entry = _entry(flag, size)
    path = medmnist_root(root) / entry.filename
    exists = path.is_file()
    actual = _file_md5(path) if exists else None
    ok = None if actual is None or entry.md5 is None else actual in entry.md5
    return MedMNISTLocation(
        flag=entry.flag,
        size=entry.size,
        path=path,
        exists=exists,
        md5_ok=ok,
        url=medmnist_url(entry.flag, entry.size, base_url),
        md5=entry.md5,
        actual_md5=actual,
    )


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------
def download_medmnist(
    flag: str = "organcmnist",
    size: int = 28,
    root: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = _DOWNLOAD_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Download ``(flag, size)`` into the MedMNIST folder and return its path.

    The file streams into a temp file beside the target (with a progress bar), its MD5 is checked,
    and only then is it renamed into place; a failed or mismatching download leaves nothing behind.
    An existing file is kept unless ``force``.
    """
    entry = _entry(flag, size)
    path = medmnist_root(root) / entry.filename
    if path.is_file() and not force:
        return path
    url = medmnist_url(entry.flag, entry.size, base_url)
    from tqdm.auto import tqdm

    h = hashlib.md5()
    received = 0
    try:
        with atomic_path(path) as tmp:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise DataError(
                    f"cannot download {url}: {getattr(e, 'reason', e)}. Without internet, fetch the file elsewhere "
                    f"and place it at this path",
                    str(path),
                ) from None
            with response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.filename, disable=not progress
                ) as bar:
                    while True:
                        try:
                            block = response.read(_CHUNK)
                        except OSError as e:
                            msg = f"download of {url} failed after {received} bytes: {e}"
                            raise DataError(msg, str(path)) from None
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
            if total is not None and received != total:
                raise DataError(f"download of {url} is incomplete: got {received} of {total} bytes", str(path))
            md5 = h.hexdigest()
            if entry.md5 is None:
                warnings.warn(
                    f"{path}: no published MD5 for {entry.filename}; only its layout is checked",
                    UserWarning,
                    stacklevel=2,
                )
            elif md5 not in entry.md5:
                raise DataError(
                    f"MD5 mismatch for the download from {url}: expected {_md5_text(entry)}, got {md5}; "
                    f"the file was not saved",
                    str(path),
                )
    except OSError as e:  # disk full, permissions, ...
        raise DataError(f"cannot write the download: {e}", str(path)) from None
    _MD5_CACHE[_stat_key(path)] = md5
    return path


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def _missing_file_error(entry: MedMNISTFile, path: Path, base_url: str | None) -> DataError:
    url = medmnist_url(entry.flag, entry.size, base_url)
    size_opt = "" if entry.size == 28 else f" --size {entry.size}"
    return DataError(
        f"MedMNIST file {entry.filename} not found in {path.parent}. Fix it with one of: "
        f"load_medmnist(..., download=True); `ctflow data medmnist --flag {entry.flag}{size_opt} --download`; "
        f"or download {url} yourself and place it at {path} (expected MD5: {_md5_text(entry)}). "
        f"Set root= or $MEDMNIST_ROOT to use another folder.",
        str(path),
    )


def _read_split(path: Path, split: str, size: int, as_float: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one split, read through :class:`ctflow.io.arrays.NpzFile` (declared sizes
    checked against :mod:`ctflow.limits` before anything is allocated, CRC verified)."""
    from ..io.arrays import NpzFile

    ki, kl = f"{split}_images", f"{split}_labels"
    hint = "; delete it and download it again"
    try:
        with NpzFile(path, ".npz file") as npz:
            missing = [k for k in (ki, kl) if k not in npz]
            if missing:
                raise DataError(
                    f"not a MedMNIST file: missing key(s) {missing}; keys present: {sorted(npz.keys) or 'none'}",
                    str(path),
                )
            (ishape, idt), (lshape, ldt) = npz.shape(ki), npz.shape(kl)
            if idt != np.uint8 or len(ishape) != 3 or ishape[1:] != (size, size):
                raise DataError(f"{ki} must be uint8 of shape (N, {size}, {size}), got {idt} {ishape}", str(path))
            if ldt.kind not in "iu" or len(lshape) not in (1, 2) or (len(lshape) == 2 and lshape[1] != 1):
                raise DataError(f"{kl} must be integers of shape (N, 1), got {ldt} {lshape}", str(path))
            if lshape[0] != ishape[0]:
                raise DataError(f"{ki} has {ishape[0]} images but {kl} has {lshape[0]} labels", str(path))
            images = npz.read(ki, kinds="u", dtype=np.float32 if as_float else None)
            labels = npz.read(kl, kinds="iu", dtype=np.int64)
    except DataError as e:
        if str(e).endswith(hint) or "limit" in str(e):
            raise
        raise type(e)(str(e).removeprefix(f"{path}: ") + hint, str(path)) from None
    return images, labels.reshape(-1)


def load_medmnist(
    flag: str = "organcmnist",
    size: int = 28,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    verify: bool = True,
    as_float: bool = True,
    *,
    base_url: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a MedMNIST organ dataset.

    Args:
        flag: ``"organcmnist"`` (coronal), ``"organamnist"`` (axial) or ``"organsmnist"`` (sagittal).
        size: 28, 64, 128 or 224 pixels.
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder with the ``.npz`` files (default ``$MEDMNIST_ROOT`` or ``~/.medmnist``).
        download: fetch the file if missing (MD5-checked, atomic).
        verify: check the MD5 of an existing file (cached per path, size and mtime).
        as_float: float32 images in [0, 1]; ``False`` keeps the uint8 pixels.
        base_url: override :data:`MEDMNIST_BASE_URL` for the download.

    Returns:
        ``(images, labels)``: (N, size, size) float32 (or uint8) and (N,) int64.

    Raises:
        ValueError: unknown flag, size or split.
        DataError: the file is missing (the message says how to get it), fails the MD5 check, or
            is not a valid MedMNIST ``.npz``.
    """
    entry = _entry(flag, size)
    split = _check_split(split)
    path = medmnist_root(root) / entry.filename
    if not path.is_file():
        if not download:
            raise _missing_file_error(entry, path, base_url)
        download_medmnist(entry.flag, entry.size, root, base_url=base_url)
    if verify:
        verify_medmnist_file(path, entry.flag, entry.size)
    images, labels = _read_split(path, split, entry.size, as_float=as_float)
    if as_float:
        images /= np.float32(255.0)
    return images, labels


class MedMNISTDataset(Dataset):
    """A split of a MedMNIST organ dataset as a torch ``Dataset``.

    Items are ``(image, label)``: a (1, S, S) float32 tensor in [0, 1] (uint8 if ``as_float=False``),
    passed through ``transform`` if given, and an ``int`` label. The pixels stay in memory as uint8.
    Arguments are those of :func:`load_medmnist`.
    """

    def __init__(
        self,
        flag: str = "organcmnist",
        size: int = 28,
        split: str = "train",
        root: str | os.PathLike | None = None,
        download: bool = False,
        verify: bool = True,
        as_float: bool = True,
        transform: Callable[[Any], Any] | None = None,
        *,
        base_url: str | None = None,
    ):
        self.images, self.labels = load_medmnist(
            flag, size, split, root, download=download, verify=verify, as_float=False, base_url=base_url
        )
        self.flag, self.size, self.split = flag.lower(), int(size), split
        self.as_float = as_float
        self.transform = transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int):
        x = torch.from_numpy(self.images[index]).unsqueeze(0)
        if self.as_float:
            x = x.to(torch.float32) / 255.0
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])

    def __repr__(self) -> str:
        return f"MedMNISTDataset(flag={self.flag!r}, size={self.size}, split={self.split!r}, n={len(self)})"
