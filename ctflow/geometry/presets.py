"""Geometries from mappings and files: :func:`geometry_from_dict`, :func:`load_geometry` (preset name, YAML or
JSON file) and :func:`list_geometries`. The presets are YAML files in ``ctflow/geometry/preset_files/``."""

from __future__ import annotations

import dataclasses
import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Union

from ..errors import GeometryError, GeometryFileError
from .fan import FanBeamGeometry
from .parallel import ParallelBeamGeometry
from .validation import _short

_PRESET_PACKAGE = "ctflow.geometry.preset_files"


Geometry = Union[ParallelBeamGeometry, FanBeamGeometry]
_TYPES: dict[str, type] = {"parallel": ParallelBeamGeometry, "fan": FanBeamGeometry}


def _structure(d: dict) -> tuple[type, dict]:
    """The geometry class and the keyword arguments of a mapping; GeometryError for a wrong type,
    unknown or missing fields."""
    if not isinstance(d, dict):
        raise GeometryError(f"a geometry description must be a mapping, got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("type", None)
    if not isinstance(kind, str) or kind not in _TYPES:
        raise GeometryError(f"geometry 'type' must be one of {sorted(_TYPES)}, got {_short(kind)}")
    d.pop("description", None)
    cls = _TYPES[kind]
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = {k for k in d if not isinstance(k, str) or k not in allowed}
    if unknown:
        names = sorted(_short(k) if not isinstance(k, str) else k for k in unknown)
        raise GeometryError(f"unknown {kind} geometry field(s) {names}; allowed: {sorted(allowed)}")
    missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
    if missing:
        raise GeometryError(f"{kind} geometry is missing required field(s) {sorted(missing)}")
    return cls, d


def geometry_from_dict(d: dict, name: str | None = None) -> Geometry:
    """Build a geometry from :meth:`to_dict` output or a preset file's mapping.

    ``angles`` may be explicit radians, ``{count, start_deg, stop_deg}`` or ``{degrees: [...]}``.
    Unknown keys are errors (a typo must not silently fall back to a default).
    """
    cls, d = _structure(d)
    if name is not None and d.get("name") is None:
        d["name"] = name
    try:
        return cls(**d)
    except GeometryError:
        raise
    except (TypeError, ValueError, ArithmeticError, RecursionError) as e:
        # values the field checks pass but the derived quantities cannot handle (e.g. an offset of
        # 1e308 mm overflows the default detector count)
        raise GeometryError(f"invalid {cls.kind} geometry: {type(e).__name__}: {e}") from None


def geometry_from_mapping(d: object, source: str, path: str | os.PathLike, *,
                          error: type[GeometryError] = GeometryFileError, name: str | None = None) -> Geometry:
    """A geometry from an untrusted parsed mapping (a geometry file, the JSON stored in a data file):
    structure, then :data:`ctflow.schemas.GEOMETRY_SCHEMA` (types and ranges), then the classes' own
    checks. Every failure is ``error`` naming ``path`` (and ``source``, e.g. ``"geometry file"``)."""
    from ..schemas import GEOMETRY_SCHEMA, validate_mapping

    p = str(path)
    if not isinstance(d, dict):
        raise error(f"{source} does not describe a geometry (expected a mapping with a 'type' key, got "
                    f"{type(d).__name__})", p)
    try:
        _structure(d)
        validate_mapping(d, GEOMETRY_SCHEMA, source, error=error, path=p)
        return geometry_from_dict(d, name=name)
    except error:
        raise
    except GeometryError as e:
        raise error(f"{source}: {e}", p) from None


def _preset_dir():
    return resources.files(_PRESET_PACKAGE)


def _preset_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _read_mapping(text: str, source: str) -> dict:
    """Parse a shipped preset (trusted text)."""
    import yaml

    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GeometryError(f"{source} is not valid YAML/JSON: {e}") from None
    if not isinstance(d, dict):
        raise GeometryError(f"{source} does not describe a geometry (expected a mapping with a 'type' key)")
    return d


def load_geometry(name_or_path: str | os.PathLike | Geometry) -> Geometry:
    """Load a geometry by preset name (``"parallel-64-sparse30"``) or from a YAML/JSON file.

    Presets ship with ctflow (``ctflow geometries`` lists them). A geometry object is returned as is.
    """
    if isinstance(name_or_path, (ParallelBeamGeometry, FanBeamGeometry)):
        return name_or_path
    s = os.fspath(name_or_path)
    p = Path(s)
    if p.suffix.lower() in (".yaml", ".yml", ".json") or p.exists():
        if not p.is_file():
            raise GeometryFileError("geometry file does not exist" if not p.exists() else "geometry file is not a file",
                                    str(p))
        from ..schemas import read_mapping_file

        data = read_mapping_file(p, what="geometry file", error=GeometryFileError)
        return geometry_from_mapping(data, "geometry file", p, name=p.stem)
    names = _preset_names()
    if s not in names:
        close = difflib.get_close_matches(s, names, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise GeometryError(f"unknown geometry {s!r}.{hint} Run `ctflow geometries` to list the presets, or pass a .yaml/.json path.")
    text = (_preset_dir() / f"{s}.yaml").read_text(encoding="utf-8")
    return geometry_from_dict(_read_mapping(text, f"preset {s}"), name=s)


def list_geometries() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` of the shipped presets."""
    out = []
    for n in _preset_names():
        d = _read_mapping((_preset_dir() / f"{n}.yaml").read_text(encoding="utf-8"), n)
        out.append((n, str(d.get("description", ""))))
    return out
