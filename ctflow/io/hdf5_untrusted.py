"""Guards for untrusted HDF5 files, used by the readers in :mod:`.hdf5` before and while libhdf5 reads.

* opening: :func:`_open` checks the file (exists, HDF5 signature) and walks its global heap collections
  (``GCOL``) first, refusing the damage that makes libhdf5 spin forever (:func:`_check_global_heaps`);
  :func:`_damage_is_data_error` turns anything h5py raises on damaged content into a DataError;
* root attributes: :func:`_root_attrs` reads them in a forked child process (a crash or a loop in
  libhdf5 costs the child, not the caller), with each attribute's declared size checked against
  :mod:`ctflow.limits` and its value checked (text where ctflow expects text, no NaN/Inf);
* datasets: :func:`_read_float32` checks declared sizes, chunks, compression ratio, virtual and
  external storage (:func:`_check_dataset`) before reading, and refuses NaN/Inf after.

Every refusal is a :class:`~ctflow.errors.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CTFlowError, DataError, NonFiniteDataError
from ..limits import check_array, check_bytes, check_compression
from .arrays import count_nonfinite


def _h5py():
    import h5py

    return h5py


# --------------------------------------------------------------------------------------------
# opening a file
# --------------------------------------------------------------------------------------------
def _open(path: str | os.PathLike):
    """Check that ``path`` is an existing HDF5 file and open it read-only."""
    h5py = _h5py()
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", str(p))
    if not p.is_file():
        raise DataError("not a file", str(p))
    try:
        ok = h5py.is_hdf5(p)
    except OSError as e:
        raise DataError(f"cannot read the file: {e}", str(p)) from None
    if not ok:
        raise DataError("not an HDF5 file (no HDF5 signature)", str(p))
    _check_global_heaps(p)
    try:
        return h5py.File(p, "r")
    except Exception as e:  # noqa: BLE001 (OSError mostly; corrupt superblocks raise others too)
        raise DataError(f"cannot open the HDF5 file: {e}", str(p)) from None


_HEAPS_CHECKED: set[tuple] = set()  # (device, inode, size, mtime) of files already found sound


def _check_global_heaps(path: Path) -> None:
    """Refuse files whose global heap collections would make libhdf5 loop forever.

    Variable-length strings (all of ctflow's JSON attributes) live in global heap collections
    (signature ``GCOL``). libhdf5 (1.14 and 2.0) walks a collection's objects with
    ``p = begin + need`` where ``need`` is the object's size for the free-space object (index 0),
    so an object header zeroed by corruption (index 0, size 0) makes it spin at 100 % CPU forever,
    uninterruptibly, the first time an attribute is read; a size near 2⁶⁴ wraps the pointer
    backwards with the same effect. This walks every collection the same way first (one pass over
    the file with ``mmap.find``, ~0.1 s per GB from the page cache) and raises DataError instead.
    """
    import mmap
    import struct

    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            key = (st.st_dev, st.st_ino, size, st.st_mtime_ns)
            if size == 0 or key in _HEAPS_CHECKED:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
                pos = m.find(b"GCOL")
                while pos >= 0:
                    if pos + 16 <= size and m[pos + 4] == 1:
                        (coll,) = struct.unpack_from("<Q", m, pos + 8)
                        end = pos + coll
                        if coll >= 16 and end <= size:
                            p = pos + 16
                            while p < end:
                                if p + 16 > end:
                                    break  # tail too small for an object: free space
                                idx = struct.unpack_from("<H", m, p)[0]
                                (osize,) = struct.unpack_from("<Q", m, p + 8)
                                need = osize if idx == 0 else 16 + ((osize + 7) // 8) * 8
                                if need <= 0 or need >= 2**62:
                                    raise DataError(
                                        f"corrupt HDF5 global heap collection at byte {pos}: object {idx} at byte {p} "
                                        f"declares size {osize}, which would make the HDF5 library loop forever "
                                        "reading the file's string attributes",
                                        str(path),
                                    )
                                p += need
                    pos = m.find(b"GCOL", pos + 4)
            if len(_HEAPS_CHECKED) > 256:
                _HEAPS_CHECKED.clear()
            _HEAPS_CHECKED.add(key)
    except OSError as e:
        raise DataError(f"cannot read the file: {e}", str(path)) from None


@contextlib.contextmanager
def _damage_is_data_error(path: Path):
    """Turn every error h5py raises on damaged content into a DataError naming the file."""
    try:
        yield
    except CTFlowError:
        raise
    except Exception as e:  # noqa: BLE001 (OSError, KeyError, ValueError, MemoryError, RecursionError, ...)
        raise DataError(f"damaged or unreadable HDF5 content ({type(e).__name__}: {e})", str(path)) from None


# --------------------------------------------------------------------------------------------
# root attributes
# --------------------------------------------------------------------------------------------
def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.dtype.kind in "SO":
        return [_decode(x) for x in v.tolist()]
    return v


def _attrs_dict(obj, path: Path | None = None) -> dict:
    """Every attribute of ``obj``, strings decoded; each attribute's declared size is checked against
    the limits before it is read."""
    h5py = _h5py()
    out = {}
    for name in obj.attrs.keys():
        if path is not None:
            aid = h5py.h5a.open(obj.id, name.encode("utf-8", "surrogateescape"))
            try:
                n = aid.get_space().get_simple_extent_npoints()
                itemsize = aid.get_type().get_size()
            finally:
                aid.close()
            check_array((n,), max(itemsize, 16), f"attribute {name!r}", path)
        value = _decode(obj.attrs[name])
        if path is not None:
            _check_attr_value(name, value, path)
        out[name] = value
    return out


#: Seconds the forked attribute reader may take before the file is declared unreadable.
ATTRS_TIMEOUT_S = 60.0


def _root_attrs(path: Path) -> dict:
    """The root attributes of ``path``, read in a forked child process where ``fork`` exists.

    Reading variable-length string attributes makes libhdf5 dereference references into the file's
    global heaps; in a damaged file a reference to a missing heap object or a wrong length crashes the
    library (a segmentation fault, found by ``tools/fuzz.py`` in about 1 of 800 mutated files) or makes
    it loop. The child reads them (a few milliseconds: fork copies no memory) and returns the decoded,
    checked dict; a child that crashes or takes longer than :data:`ATTRS_TIMEOUT_S` becomes a DataError
    naming the file, and the caller is unharmed. ``CTFLOW_HDF5_ISOLATION=0`` reads in-process.
    """
    if not hasattr(os, "fork") or os.environ.get("CTFLOW_HDF5_ISOLATION", "1") == "0":
        with _open(path) as f, _damage_is_data_error(path):
            return _attrs_dict(f, path)
    try:
        st = path.stat()
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", str(path)) from None
    if key in _ATTRS_CACHE:  # read_any asks for the kind, then the reader for everything
        return copy.deepcopy(_ATTRS_CACHE[key])
    attrs = _root_attrs_forked(path)
    if len(_ATTRS_CACHE) >= 8:
        _ATTRS_CACHE.pop(next(iter(_ATTRS_CACHE)))
    _ATTRS_CACHE[key] = copy.deepcopy(attrs)
    return attrs


_ATTRS_CACHE: dict[tuple, dict] = {}


def _root_attrs_forked(path: Path) -> dict:
    import pickle
    import select
    import signal

    h5py = _h5py()
    _check_global_heaps(path)
    rfd, wfd = os.pipe()
    with h5py._objects.phil:  # no other thread may hold h5py's lock in the child
        pid = os.fork()
    if pid == 0:  # child: read, send, exit without running any cleanup of the parent's state
        code = 0
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is expected and reported by the parent
            os.close(rfd)
            try:
                with _open(path) as f, _damage_is_data_error(path):
                    result = ("ok", _attrs_dict(f, path))
            except BaseException as e:  # noqa: BLE001
                result = ("err", e if isinstance(e, CTFlowError) else DataError(f"{type(e).__name__}: {e}", str(path)))
            try:
                data = pickle.dumps(result)
            except Exception as e:  # noqa: BLE001
                data = pickle.dumps(("err", DataError(f"cannot return the attributes ({e})", str(path))))
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + ATTRS_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise DataError(f"reading the attributes took longer than {ATTRS_TIMEOUT_S:g} s (the HDF5 library "
                                "loops on this damaged file)", str(path))
            ready, _, _ = select.select([rfd], [], [], min(left, 1.0))
            if ready:
                block = os.read(rfd, 1 << 16)
                if not block:
                    break
                chunks.append(block)
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        how = f"crashed (signal {sig})" if sig else f"failed (exit status {os.WEXITSTATUS(status)})"
        raise DataError(f"the HDF5 library {how} reading the file's attributes: the file is damaged", str(path))
    status_, payload = pickle.loads(b"".join(chunks))
    if status_ == "ok":
        return payload
    raise payload


_TEXT_ATTRS = ("kind", "method", "created", "ctflow_version", "units")


def _check_attr_value(name: str, value: Any, path: Path) -> None:
    """ctflow's own text attributes must be text; no attribute may hold NaN/Inf."""
    if name in _TEXT_ATTRS and not isinstance(value, str):
        raise DataError(f"corrupt {name} attribute: expected text, got {type(value).__name__}", str(path))
    try:
        arr = np.asarray(value)
        finite = arr.dtype.kind not in "fc" or bool(np.all(np.isfinite(arr)))
    except (TypeError, ValueError):
        finite = True
    if not finite:
        raise DataError(f"attribute {name!r} holds NaN/Inf", str(path))


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------
def _check_dataset(ds, path: Path, out_itemsize: int) -> None:
    """Declared sizes and storage of a dataset, checked before anything is read: the result
    (``out_itemsize`` bytes per element) plus one decompressed chunk must fit ``max_array_bytes``."""
    if ds.dtype.kind not in "fiu" or ds.dtype.itemsize > 16:
        raise DataError(f"dataset {ds.name} has non-numeric dtype {ds.dtype}", str(path))
    what = f"dataset {ds.name}"
    chunk = 0
    if ds.chunks is not None:
        chunk = check_array(ds.chunks, ds.dtype.itemsize, f"the chunks of {what}", path) * ds.dtype.itemsize
    n = check_array(ds.shape, out_itemsize, what, path)
    check_bytes(n * out_itemsize + chunk, f"{what} (shape {ds.shape}) with one chunk of {chunk} bytes", path)
    if ds.is_virtual:
        raise DataError(f"{what} is a virtual dataset (it reads other files); refusing it", str(path))
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        raise DataError(f"{what} stores its data in external files; refusing it", str(path))
    # compressed chunks, or chunks never written (read back as fill values): declared vs stored bytes
    check_compression(n * ds.dtype.itemsize, ds.id.get_storage_size(), what, path)


def _read_float32(ds, path: Path) -> np.ndarray:
    _check_dataset(ds, path, 4)
    arr = np.empty(ds.shape, dtype=np.float32)
    if arr.size:
        try:
            ds.read_direct(arr)
        except Exception as e:  # noqa: BLE001 (OSError for damaged chunks, filters that fail, ...)
            raise DataError(f"cannot read dataset {ds.name} (file damaged?): {type(e).__name__}: {e}", str(path)) from None
    bad = count_nonfinite(arr)
    if bad:
        raise NonFiniteDataError(f"dataset {ds.name} contains {bad} NaN/Inf value(s) out of {arr.size}", str(path))
    return arr
