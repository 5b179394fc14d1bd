"""Size limits that every reader checks *before* it allocates what a file declares.

A corrupt or hostile file can declare anything: 10⁹ views in a 15 KB HDF5 file, a 2.9 GB array in a
3.4 MB ``.npz``, a DICOM image of 65535² × 10⁴ frames, a geometry nested 10⁵ levels deep. The readers
of :mod:`ctflow.io`, the npz loaders (training, benchmark, MedMNIST), geometry files and prior folders
compare such declared sizes with the limits below and raise :class:`~ctflow.errors.LimitError` (a
:class:`~ctflow.errors.DataError` naming the file *and* the limit) instead of allocating.

=====================  ==============================  =============================================
limit                  environment variable            default
=====================  ==============================  =============================================
``max_array_bytes``    ``CTFLOW_MAX_ARRAY_BYTES``      4 GiB: what one read may allocate for the data
                                                       of one array (the stored values plus the copies
                                                       the reader makes, e.g. a float32 result of uint8
                                                       data, a decompressed HDF5 chunk)
``max_text_bytes``     ``CTFLOW_MAX_TEXT_BYTES``       16 MiB: geometry/config files, JSON attributes
``max_config_nodes``   ``CTFLOW_MAX_CONFIG_NODES``     10⁶ values in one parsed YAML/JSON document
``max_nesting``        ``CTFLOW_MAX_NESTING``          64 levels of nested lists/mappings
``max_count``          ``CTFLOW_MAX_COUNT``            2³¹ − 1: any count (views, detector elements,
                                                       pixels per side) a file may declare
``max_compression``    ``CTFLOW_MAX_COMPRESSION``      200: the largest ratio of declared to stored
                                                       bytes of a compressed array over 16 MiB (a
                                                       "zip bomb" in an ``.npz`` or HDF5 file)
=====================  ==============================  =============================================

Values accept a plain number of bytes or a binary suffix (``512M``, ``2G``, ``64MiB``). Set them for
the whole process with :func:`configure` or for a block with :func:`limits`::

    with ctflow.limits.limits(max_array_bytes="256M"):
        ctflow.io.read_sinogram_h5(path)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import ConfigError, LimitError

__all__ = ["Limits", "check_array", "check_bytes", "check_compression", "check_count", "configure", "current", "limits"]

_ENV = {
    "max_array_bytes": "CTFLOW_MAX_ARRAY_BYTES",
    "max_text_bytes": "CTFLOW_MAX_TEXT_BYTES",
    "max_config_nodes": "CTFLOW_MAX_CONFIG_NODES",
    "max_nesting": "CTFLOW_MAX_NESTING",
    "max_count": "CTFLOW_MAX_COUNT",
    "max_compression": "CTFLOW_MAX_COMPRESSION",
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring)."""

    max_array_bytes: int = 4 * 1024**3
    max_text_bytes: int = 16 * 1024**2
    max_config_nodes: int = 1_000_000
    max_nesting: int = 64
    max_count: int = 2**31 - 1
    max_compression: int = 200


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _parse_size(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"limit {name} must be a positive number, got {value!r}")
    if isinstance(value, (int, float)):
        v = value
    else:
        m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not m:
            raise ConfigError(f"limit {name} must be a number with an optional K/M/G/T suffix, got {value!r}")
        try:
            v = float(m.group(1)) * _UNITS[m.group(2).upper()]
        except ValueError:
            raise ConfigError(f"limit {name}: cannot read {value!r} as a number") from None
    if not (isinstance(v, int) or math.isfinite(v)) or v < 1:
        raise ConfigError(f"limit {name} must be a positive finite number, got {value!r}")
    return int(v)


_override: dict[str, int] = {}


def current() -> Limits:
    """The limits in force: :func:`configure`/:func:`limits` settings, else the environment, else defaults."""
    values = {}
    for f in dataclasses.fields(Limits):
        if f.name in _override:
            values[f.name] = _override[f.name]
        elif os.environ.get(_ENV[f.name]):
            values[f.name] = _parse_size(_ENV[f.name], os.environ[_ENV[f.name]])
    return Limits(**values)


def configure(**values: Any) -> Limits:
    """Set limits for the whole process (``None`` restores the environment/default value); returns them."""
    names = {f.name for f in dataclasses.fields(Limits)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(names)}")
    for k, v in values.items():
        if v is None:
            _override.pop(k, None)
        else:
            _override[k] = _parse_size(k, v)
    return current()


@contextlib.contextmanager
def limits(**values: Any) -> Iterator[Limits]:
    """Context manager form of :func:`configure`; the previous settings come back afterwards."""
    saved = dict(_override)
    try:
        yield configure(**values)
    finally:
        _override.clear()
        _override.update(saved)


def _fmt(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def check_bytes(nbytes: int, what: str, path: Any = None, limit: str = "max_array_bytes") -> int:
    """Raise :class:`LimitError` if ``nbytes`` exceeds the limit ``limit``; return ``nbytes``."""
    cap = getattr(current(), limit)
    if nbytes > cap:
        raise LimitError(
            f"{what} declares {_fmt(nbytes)}, more than the limit {limit} = {_fmt(cap)} "
            f"(raise it with {_ENV[limit]} or ctflow.limits.configure({limit}=...) if the file is genuine)",
            None if path is None else str(path),
        )
    return nbytes


def check_array(shape: Sequence[Any], itemsize: int, what: str, path: Any = None, extra_itemsize: int = 0) -> int:
    """Check a declared array before allocating it: every dimension a non-negative integer within
    ``max_count`` and ``prod(shape) · (itemsize + extra_itemsize)`` within ``max_array_bytes``, where
    ``extra_itemsize`` counts the bytes per element of the copies the reader makes (a float32 result of
    uint8 data: 4). Returns the number of elements."""
    lim = current()
    n = 1
    for d in shape:
        try:
            d = int(d)
        except (TypeError, ValueError, OverflowError):
            raise LimitError(f"{what} has a non-integer dimension {d!r} (shape {tuple(shape)})", None if path is None else str(path)) from None
        if d < 0:
            raise LimitError(f"{what} has a negative dimension (shape {tuple(shape)})", None if path is None else str(path))
        if d > lim.max_count:
            raise LimitError(
                f"{what} declares a dimension of {d} (shape {tuple(shape)}), more than the limit max_count = "
                f"{lim.max_count} ({_ENV['max_count']})",
                None if path is None else str(path),
            )
        n *= d
    check_bytes(n * max(int(itemsize) + int(extra_itemsize), 1), f"{what} (shape {tuple(int(d) for d in shape)})", path)
    return n


_RATIO_FLOOR = 16 * 1024**2  # arrays below this size are never refused for their compression ratio


def check_compression(declared: int, stored: int, what: str, path: Any = None) -> None:
    """Raise :class:`LimitError` if an array over 16 MiB expands from ``stored`` to ``declared`` bytes by
    more than ``max_compression`` (a decompression bomb)."""
    cap = current().max_compression
    if declared > _RATIO_FLOOR and declared > cap * max(int(stored), 1):
        raise LimitError(
            f"{what} declares {_fmt(declared)} but stores only {_fmt(max(int(stored), 0))} (ratio "
            f"{declared / max(int(stored), 1):.0f}:1), more than the limit max_compression = {cap}:1 "
            f"({_ENV['max_compression']}); a decompression bomb or a corrupt size",
            None if path is None else str(path),
        )


def check_count(value: int, what: str, path: Any = None) -> int:
    """Raise :class:`LimitError` if a declared count exceeds ``max_count``."""
    cap = current().max_count
    if value > cap:
        raise LimitError(f"{what} is {value}, more than the limit max_count = {cap} ({_ENV['max_count']})",
                         None if path is None else str(path))
    return value
