"""Geometries from mappings and files: :func:`geometry_from_dict`, :func:`load_geometry` (preset name, YAML or
JSON file) and :func:`list_geometries`. The presets are YAML files in ``ctflow/geometry/preset_files/``."""

from __future__ import annotations

import dataclasses
import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Union

from ..errors import GeometryError
from .fan import FanBeamGeometry
from .parallel import ParallelBeamGeometry

_PRESET_PACKAGE = "ctflow.geometry.preset_files"


Geometry = Union[ParallelBeamGeometry, FanBeamGeometry]
_TYPES: dict[str, type] = {"parallel": ParallelBeamGeometry, "fan": FanBeamGeometry}


def geometry_from_dict(d: dict, name: str | None = None) -> Geometry:
    """Build a geometry from :meth:`to_dict` output or a preset file's mapping.

    ``angles`` may be explicit radians, ``{count, start_deg, stop_deg}`` or ``{degrees: [...]}``.
    Unknown keys are errors (a typo must not silently fall back to a default).
    """
    if not isinstance(d, dict):
        raise GeometryError(f"a geometry description must be a mapping, got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in _TYPES:
        raise GeometryError(f"geometry 'type' must be one of {sorted(_TYPES)}, got {kind!r}")
    d.pop("description", None)
    cls = _TYPES[kind]
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - allowed
    if unknown:
        raise GeometryError(f"unknown {kind} geometry field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
    if missing:
        raise GeometryError(f"{kind} geometry is missing required field(s) {sorted(missing)}")
    if name is not None and d.get("name") is None:
        d["name"] = name
    return cls(**d)


def _preset_dir():
    return resources.files(_PRESET_PACKAGE)


def _preset_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _read_mapping(text: str, source: str) -> dict:
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
            raise GeometryError(f"geometry file {p} does not exist")
        return geometry_from_dict(_read_mapping(p.read_text(encoding="utf-8"), str(p)), name=p.stem)
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
