"""Guarded ``.npy`` / ``.npz`` reading: every declared size is checked before anything is allocated.

``np.load`` trusts the file: the ``.npy`` header's shape decides the allocation, a 3 MB ``.npz`` can
expand to gigabytes, and a damaged archive fails with ``BadZipFile``, ``zlib.error``, ``EOFError`` or
numpy's own ``ValueError``. :func:`read_npy` and :class:`NpzFile` read the header first, refuse
object (pickle) arrays, check the shape against :mod:`ctflow.limits` (in the larger of the stored and
the returned dtype), check that the archive member is as long as the header says and that its
compression ratio is plausible, then read the data in 1 MiB pieces into one preallocated array. The
zip CRC is verified when a member is read whole. Every failure is a
:class:`~ctflow.errors.DataError` naming the file (and the array).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import CTFlowError, DataError, NonFiniteDataError
from ..files import CappedReader
from ..limits import check_array, check_compression

__all__ = ["NpzFile", "count_nonfinite", "read_npy"]

_CHUNK = 1 << 20
_NUMERIC = "biuf"


def _header(fp: IO[bytes], what: str, path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, header_length)`` of the ``.npy`` stream at ``fp``."""
    fmt = np.lib.format
    try:
        start = fp.tell()
        major, minor = fmt.read_magic(fp)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp, max_header_size=10000)
        elif (major, minor) in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp, max_header_size=10000)
        else:
            raise ValueError(f"unknown .npy format version {major}.{minor}")
        header_len = fp.tell() - start
    except Exception as e:  # noqa: BLE001 (ValueError, EOFError, SyntaxError from the header's literal)
        raise DataError(f"{what}: not a valid .npy header ({type(e).__name__}: {e})", str(path)) from None
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise DataError(f"{what} holds Python objects (it would need pickle, which ctflow never loads)", str(path))
    return tuple(int(d) for d in shape), bool(fortran), dtype, header_len


def _check_dtype(dtype: np.dtype, kinds: str, what: str, path: Path) -> None:
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize > 16:
        raise DataError(f"{what} has dtype {dtype}, not plain numbers", str(path))


def _fill(fp: IO[bytes], arr: np.ndarray, nbytes: int, what: str, path: Path) -> None:
    """Read ``nbytes`` from ``fp`` into ``arr``'s buffer in 1 MiB pieces (no second copy)."""
    buf = memoryview(arr.reshape(-1, order="A").view(np.uint8)) if arr.size else memoryview(bytearray())
    off = 0
    while off < nbytes:
        chunk = fp.read(min(_CHUNK, nbytes - off))
        if not chunk:
            raise DataError(f"{what} is truncated: {off} of {nbytes} data bytes present", str(path))
        buf[off : off + len(chunk)] = chunk
        off += len(chunk)


def count_nonfinite(arr: np.ndarray) -> int:
    """Number of NaN/Inf values, counted in blocks (no temporary as large as the array)."""
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return 0
    flat = arr.reshape(-1, order="A") if (arr.flags.c_contiguous or arr.flags.f_contiguous) else arr.ravel()
    step = 1 << 20
    return int(sum(flat[i : i + step].size - np.count_nonzero(np.isfinite(flat[i : i + step]))
                   for i in range(0, flat.size, step)))


def _finish(arr: np.ndarray, dtype_out: Any, finite: bool, what: str, path: Path) -> np.ndarray:
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if dtype_out is not None:
        arr = arr.astype(dtype_out, copy=False)
    if finite and arr.dtype.kind in "fc":
        bad = count_nonfinite(arr)
        if bad:
            raise NonFiniteDataError(f"{what} contains {bad} NaN/Inf value(s) out of {arr.size}", str(path))
    return arr


def read_npy(path: str | os.PathLike, *, what: str = "array", kinds: str = _NUMERIC, dtype: Any = None,
             finite: bool = True) -> np.ndarray:
    """Read a ``.npy`` file through the guards (see the module docstring).

    ``kinds``: accepted dtype kinds (default bool/int/uint/float); ``dtype``: convert to this (the limit
    counts its itemsize too); ``finite``: refuse NaN/Inf.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with CappedReader(path) as fp:
            shape, fortran, dt, header_len = _header(fp, what, path)
            _check_dtype(dt, kinds, what, path)
            extra = np.dtype(dtype).itemsize if dtype is not None and np.dtype(dtype) != dt else 0
            n = check_array(shape, dt.itemsize, what, path, extra)
            nbytes = n * dt.itemsize
            if size < header_len + nbytes:
                raise DataError(f"{what} is truncated: the header declares {nbytes} data bytes (shape {shape}, "
                                f"{dt}) but the file holds {max(size - header_len, 0)}", str(path))
            arr = np.empty(shape, dtype=dt, order="F" if fortran else "C")
            _fill(fp, arr, nbytes, what, path)
    except CTFlowError:
        raise
    except FileNotFoundError:
        raise DataError("file does not exist", str(path)) from None
    except Exception as e:  # noqa: BLE001 (OSError, MemoryError, ...)
        raise DataError(f"cannot read {what}: {type(e).__name__}: {e}", str(path)) from None
    return _finish(arr, dtype, finite, what, path)


class NpzFile:
    """A ``.npz`` archive opened through the guards; use as a context manager.

    ``keys`` lists the arrays; :meth:`shape` reads one header; :meth:`read` one array (optionally only
    its first ``max_rows`` rows).
    """

    def __init__(self, path: str | os.PathLike, what: str = ".npz file"):
        self._zf = None
        self._fh = None
        self.path = Path(path)
        self.what = what
        try:
            if not self.path.is_file():
                raise DataError(f"{what} does not exist" if not self.path.exists() else f"{what} is not a file",
                                str(self.path))
            if not zipfile.is_zipfile(self.path):
                raise DataError(f"not a valid {what} (not a zip archive)", str(self.path))
            self._fh = CappedReader(self.path)
            self._zf = zipfile.ZipFile(self._fh)
            names = self._zf.namelist()
        except CTFlowError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 (BadZipFile, OSError, ValueError, ...)
            self.close()
            raise DataError(f"corrupt {what} ({type(e).__name__}: {e})", str(self.path)) from None
        self.keys = [n[:-4] for n in names if n.endswith(".npy")]

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in (self._zf, self._fh):
            try:
                if f is not None:
                    f.close()
            except Exception:  # noqa: BLE001, S110
                pass

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def _member(self, key: str):
        if key not in self.keys:
            raise DataError(f"no array {key!r} in the {self.what} (arrays: {sorted(self.keys)[:20]})", str(self.path))
        return self._zf.getinfo(key + ".npy")

    def _guard(self, key: str, fn):
        try:
            return fn()
        except CTFlowError:
            raise
        except Exception as e:  # noqa: BLE001 (BadZipFile, zlib.error, EOFError, NotImplementedError, OSError, ...)
            raise DataError(f"corrupt {self.what}: array {key!r}: {type(e).__name__}: {e}",
                            str(self.path)) from None

    def _header(self, fp, what: str):
        try:
            return _header(fp, what, self.path)
        except DataError as e:
            raise DataError(f"corrupt {self.what}: {str(e).removeprefix(f'{self.path}: ')}", str(self.path)) from None

    def shape(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` declared by array ``key`` (only its header is read)."""

        def run():
            info = self._member(key)
            with self._zf.open(info) as fp:
                shape, _, dt, _ = self._header(fp, f"array {key!r}")
            return shape, dt

        return self._guard(key, run)

    def read(self, key: str, *, kinds: str = _NUMERIC, dtype: Any = None, finite: bool = True,
             max_rows: int | None = None) -> np.ndarray:
        """Array ``key`` (its first ``max_rows`` rows when given), checked as described in the module."""
        what = f"array {key!r}"

        def run():
            info = self._member(key)
            with self._zf.open(info) as fp:
                shape, fortran, dt, header_len = self._header(fp, what)
                _check_dtype(dt, kinds, what, self.path)
                extra = np.dtype(dtype).itemsize if dtype is not None and np.dtype(dtype) != dt else 0
                n = check_array(shape, dt.itemsize, what, self.path, extra)
                nbytes = n * dt.itemsize
                if info.file_size != header_len + nbytes:
                    raise DataError(
                        f"{what} is corrupt: its header declares {nbytes} data bytes (shape {shape}, {dt}) but the "
                        f"archive member holds {max(info.file_size - header_len, 0)}", str(self.path))
                check_compression(nbytes, info.compress_size, what, self.path)
                if max_rows is not None and not fortran and len(shape) >= 1 and shape[0] > max_rows:
                    shape = (int(max_rows), *shape[1:])
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
                    arr = np.empty(shape, dtype=dt)
                    _fill(fp, arr, nbytes, what, self.path)
                else:
                    arr = np.empty(shape, dtype=dt, order="F" if fortran else "C")
                    _fill(fp, arr, nbytes, what, self.path)
                    fp.read(1)  # reach the end: zipfile verifies the CRC there
                    if max_rows is not None:
                        arr = arr[:max_rows]
            return arr

        arr = self._guard(key, run)
        return _finish(arr, dtype, finite, what, self.path)
