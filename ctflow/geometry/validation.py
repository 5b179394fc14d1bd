"""Checks shared by the geometry classes: each raises a GeometryError naming the class and field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import GeometryError


def _short(value: Any) -> str:
    """``repr(value)`` cut to a readable length (a 400-digit integer from a corrupt file stays short)."""
    r = repr(value)
    return r if len(r) <= 60 else f"{r[:40]}…({len(r)} characters)"


def _max_count() -> int:
    from ..limits import current

    return current().max_count


def _positive_float(cls: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise GeometryError(f"{cls}: {name} must be a finite number, got {_short(value)}") from None
    if not math.isfinite(v) or v <= 0:
        raise GeometryError(f"{cls}: {name} must be a positive finite number of millimetres, got {value!r}")
    return v


def _finite_float(cls: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise GeometryError(f"{cls}: {name} must be a finite number, got {_short(value)}") from None
    if not math.isfinite(v):
        raise GeometryError(f"{cls}: {name} must be finite, got {value!r}")
    return v


def _positive_int(cls: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise GeometryError(f"{cls}: {name} must be a positive integer, got {_short(value)}")
    if value < 1:
        raise GeometryError(f"{cls}: {name} must be a positive integer, got {_short(value)}")
    cap = _max_count()
    if value > cap:
        raise GeometryError(f"{cls}: {name} must be at most {cap} (ctflow.limits max_count), got {_short(value)}")
    return int(value)


def _check_angle_count(cls: str, n: int) -> None:
    """A count of views allocates a tuple of n floats: bound it by the limits before building it."""
    from ..errors import LimitError
    from ..limits import check_bytes

    _positive_int(cls, "the number of angles", n)
    try:
        check_bytes(40 * n, f"{cls}: {n} projection angles")
    except LimitError as e:
        raise GeometryError(str(e)) from None


def _image_shape(cls: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        shape = tuple(value)
    except TypeError:
        raise GeometryError(f"{cls}: image_shape must be an int or a pair (H, W), got {value!r}") from None
    if len(shape) != 2:
        raise GeometryError(f"{cls}: image_shape must be an int or a pair (H, W), got {value!r}")
    return (_positive_int(cls, "image_shape[0]", shape[0]), _positive_int(cls, "image_shape[1]", shape[1]))


def _angles(cls: str, value: Any, full_circle: float) -> tuple[float, ...]:
    """Accept a count (uniform over [0, full_circle)), a sequence/array/tensor of radians, or a
    dict spec ``{count, start_deg, stop_deg}`` (stop excluded) / ``{degrees: [...]}``."""
    if isinstance(value, dict):
        value = _angles_from_spec(cls, value, full_circle)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = int(value)
        if n < 1:
            raise GeometryError(f"{cls}: a geometry needs at least one projection angle, got {n}")
        _check_angle_count(cls, n)
        return _uniform_angles(n, 0.0, math.degrees(full_circle))
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise GeometryError(f"{cls}: angles must be a count or a sequence of radians, got {_short(value)}") from None
    if arr.size == 0:
        raise GeometryError(f"{cls}: a geometry needs at least one projection angle, got an empty list")
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"{cls}: angles contain NaN or Inf")
    return tuple(float(a) for a in arr)


def _angles_from_spec(cls: str, spec: dict, full_circle: float) -> Any:
    if "degrees" in spec:
        try:
            return np.deg2rad(np.asarray(spec["degrees"], dtype=np.float64))
        except (TypeError, ValueError, OverflowError):
            raise GeometryError(f"{cls}: angles.degrees must be a list of numbers, got {_short(spec['degrees'])}") from None
    if "radians" in spec:
        return spec["radians"]
    unknown = set(spec) - {"count", "start_deg", "stop_deg"}
    if unknown or "count" not in spec:
        raise GeometryError(
            f"{cls}: an angle spec is {{count, start_deg, stop_deg}} (stop excluded), "
            f"{{degrees: [...]}} or {{radians: [...]}}; got keys {sorted(spec)}"
        )
    n = _positive_int(cls, "angles.count", spec["count"])
    _check_angle_count(cls, n)
    start = _finite_float(cls, "angles.start_deg", spec.get("start_deg", 0.0))
    stop = _finite_float(cls, "angles.stop_deg", spec.get("stop_deg", math.degrees(full_circle)))
    if stop <= start:
        raise GeometryError(f"{cls}: angles.stop_deg must be larger than start_deg, got {spec}")
    return _uniform_angles(n, start, stop)


def _uniform_angles(n: int, start_deg: float, stop_deg: float) -> tuple[float, ...]:
    """``n`` angles over [start, stop) in radians, computed in degrees first so that sparse
    subsets of a preset (every k-th view) are bit-identical to the smaller preset."""
    deg = start_deg + np.arange(n, dtype=np.float64) * ((stop_deg - start_deg) / n)
    return tuple(float(a) for a in np.deg2rad(deg))


def _angle_summary(angles: tuple[float, ...]) -> str:
    a = np.degrees(np.asarray(angles))
    if len(a) == 1:
        return f"1 angle at {a[0]:.4g}°"
    return f"{len(a)} angles in [{a.min():.4g}°, {a.max():.4g}°]"
