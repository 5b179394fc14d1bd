"""Schemas (JSON Schema, checked with ``jsonschema``) for the mappings ctflow reads from files, and the
bounded parser that reads them.

* :func:`read_mapping_file` / :func:`parse_mapping` read YAML or JSON **safely and boundedly**: the text
  must be UTF-8 and at most ``max_text_bytes``; nesting deeper than ``max_nesting`` or more than
  ``max_config_nodes`` values (e.g. a YAML alias bomb) are refused before anything walks them; YAML
  tags that construct objects are refused by ``yaml.safe_load``.
* :func:`validate_mapping` checks a parsed mapping against a schema and raises an error that names the
  source and the offending field (``pixel_size: -1 is less than or equal to the minimum of 0``). The
  extra keyword ``"finite": true`` refuses NaN and ±Inf (JSON Schema's ranges let NaN through).
* :data:`GEOMETRY_SCHEMA` (geometry files and the geometry stored in HDF5 files), :data:`PRIOR_SCHEMA`
  (``prior.json``); solver presets can use :func:`validate_mapping` with their own schema.

Limits come from :mod:`ctflow.limits`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigFileError, DataError, LimitError
from .limits import current

__all__ = [
    "GEOMETRY_SCHEMA",
    "PRIOR_SCHEMA",
    "UNET_SCHEMA",
    "check_structure",
    "parse_mapping",
    "read_mapping_file",
    "validate_mapping",
]

# ------------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------------
_MAX_INT = 2**31 - 1
_NUM = {"type": "number", "finite": True}
_POS = {"type": "number", "exclusiveMinimum": 0, "finite": True}
_NULL = {"type": "null"}


def _int(lo: int = 1, hi: int = _MAX_INT) -> dict:
    return {"type": "integer", "minimum": lo, "maximum": hi}


#: A geometry mapping as written by ``Geometry.to_dict()`` / ``save()`` or a preset file.
GEOMETRY_SCHEMA: dict = {
    "type": "object",
    "required": ["type", "image_shape", "angles"],
    "properties": {
        "type": {"enum": ["parallel", "fan"]},
        "name": {"type": ["string", "null"], "maxLength": 4096},
        "description": {"type": ["string", "null"]},
        "image_shape": {
            "anyOf": [
                _int(1, 65536),
                {"type": "array", "items": _int(1, 65536), "minItems": 2, "maxItems": 2},
            ]
        },
        "angles": {
            "anyOf": [
                _int(1, _MAX_INT),
                {"type": "array", "items": _NUM, "minItems": 1},
                {
                    "type": "object",
                    "properties": {
                        "count": _int(1, _MAX_INT),
                        "start_deg": _NUM,
                        "stop_deg": _NUM,
                        "degrees": {"type": "array", "items": _NUM, "minItems": 1},
                        "radians": {"type": "array", "items": _NUM, "minItems": 1},
                    },
                    "additionalProperties": False,
                    "anyOf": [{"required": ["count"]}, {"required": ["degrees"]}, {"required": ["radians"]}],
                },
            ]
        },
        "n_detectors": {"anyOf": [_int(1, _MAX_INT), _NULL]},
        "pixel_size": _POS,
        "detector_spacing": {"anyOf": [_POS, _NULL]},
        "detector_offset": _NUM,
        "source_to_isocenter": _POS,
        "source_to_detector": _POS,
        "detector_shape": {"enum": ["flat", "curved"]},
    },
    "additionalProperties": False,
}

#: The ``unet`` block of ``prior.json`` (:class:`ctflow.priors.unet.UNetConfig`).
UNET_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "image_size": _int(1, 4096),
        "in_channels": _int(1, 64),
        "base_channels": _int(1, 4096),
        "channel_mults": {"type": "array", "items": _int(1, 64), "minItems": 1, "maxItems": 12},
        "num_res_blocks": _int(1, 64),
        "attention_resolutions": {"type": "array", "items": _int(1, 4096), "maxItems": 12},
        "groups": _int(1, 4096),
        "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "finite": True},
    },
    "additionalProperties": False,
}

#: ``prior.json`` of a prior folder.
PRIOR_SCHEMA: dict = {
    "type": "object",
    "required": ["architecture", "unet"],
    "properties": {
        "format": {"type": "string"},
        "architecture": {"const": "UNet"},
        "unet": UNET_SCHEMA,
        "card": {"type": "object"},
    },
    "additionalProperties": False,
}


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
_VALIDATORS: dict[int, Any] = {}


def _validator(schema: dict):
    key = id(schema)
    v = _VALIDATORS.get(key)
    if v is None or v.schema is not schema:
        from jsonschema import Draft202012Validator, ValidationError, validators

        def finite(validator, value, instance, schema_):
            if value and isinstance(instance, float) and not math.isfinite(instance):
                yield ValidationError(f"{instance!r} is not a finite number")

        cls = validators.extend(Draft202012Validator, {"finite": finite})
        v = _VALIDATORS[key] = cls(schema)
    return v


def _where(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def check_structure(data: Any, source: str, path: str | None = None) -> None:
    """Refuse nesting deeper than ``max_nesting``, more than ``max_config_nodes`` values, and anything
    that is not plain JSON data (mapping keys must be strings). Iterative: never a RecursionError."""
    lim = current()
    stack = [(data, 0)]
    nodes = 0
    while stack:
        obj, depth = stack.pop()
        nodes += 1
        if nodes > lim.max_config_nodes:
            raise LimitError(
                f"{source} holds more than max_config_nodes = {lim.max_config_nodes} values (CTFLOW_MAX_CONFIG_NODES); "
                "a YAML alias bomb or not a configuration file", path)
        if depth > lim.max_nesting:
            raise LimitError(f"{source} is nested more than max_nesting = {lim.max_nesting} levels deep "
                             "(CTFLOW_MAX_NESTING)", path)
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, str):
                    raise DataError(f"{source}: mapping keys must be strings, got {type(k).__name__} {k!r:.60}", path)
                stack.append((v, depth + 1))
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)
        elif obj is not None and not isinstance(obj, (str, int, float, bool)):
            raise DataError(f"{source}: unsupported value of type {type(obj).__name__} (plain YAML/JSON data only)",
                            path)


def validate_mapping(data: Any, schema: dict, source: str, *, error: type[Exception] = ConfigFileError,
                     path: str | os.PathLike | None = None) -> Any:
    """Check ``data`` against the JSON Schema ``schema``; return ``data`` or raise ``error``.

    The message names ``source`` (a file name or a description such as ``"prior.json in /x"``) and the
    field at fault. ``error`` is called as ``error(message, path)`` when it is a
    :class:`~ctflow.errors.DataError` subclass (so ``.path`` is set), else ``error(message)``.
    """
    p = None if path is None else str(path)

    def fail(msg: str):
        if isinstance(error, type) and issubclass(error, DataError):
            return error(msg, p)
        return error(f"{p}: {msg}" if p else msg)

    try:
        check_structure(data, source, p)
    except DataError as e:
        raise fail(str(e).removeprefix(f"{p}: ") if p else str(e)) from None
    from jsonschema.exceptions import best_match

    errors = list(itertools.islice(_validator(schema).iter_errors(data), 50))
    if errors:
        err = best_match(errors)
        # anyOf/oneOf: say what the value was instead of listing every alternative
        msg = err.message
        if err.validator in ("anyOf", "oneOf") and err.context:
            inner = best_match(err.context)
            msg = f"{inner.message} (and no other allowed form matches)"
        msg = re.sub(r"\d{21,}", lambda m: f"<a {len(m.group())}-digit number>", msg)
        if len(msg) > 300:
            msg = msg[:300] + "…"
        raise fail(f"{source}: field {_where(err)}: {msg}")
    return data


# ------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} is not allowed")


def parse_mapping(text: str | bytes, source: str, *, path: str | os.PathLike | None = None, fmt: str = "yaml",
                  error: type[Exception] = ConfigFileError, allow_nonfinite: bool = True) -> Any:
    """Parse YAML (``fmt="yaml"``, which also reads JSON) or strict JSON text, bounded by the limits.

    Raises ``error`` (message naming ``source``) for undecodable bytes, syntax errors, too much text,
    too deep nesting or too many values. The result is checked by :func:`check_structure`.
    """
    p = None if path is None else str(path)

    def fail(msg: str):
        if isinstance(error, type) and issubclass(error, DataError):
            return error(msg, p)
        return error(f"{p}: {msg}" if p else msg)

    lim = current()
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > lim.max_text_bytes:
        raise fail(f"{source} is {len(raw)} bytes, more than the limit max_text_bytes = {lim.max_text_bytes} "
                   "(CTFLOW_MAX_TEXT_BYTES)")
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"{source} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    # a cheap depth bound before any recursive parser sees the text
    depth = _bracket_depth(s)
    if depth > lim.max_nesting:
        raise fail(f"{source} is nested more than max_nesting = {lim.max_nesting} levels deep (CTFLOW_MAX_NESTING)")
    try:
        if fmt == "json":
            kw = {} if allow_nonfinite else {"parse_constant": _reject_constant}
            data = json.loads(s, **kw)
        else:
            import yaml

            # the pure-Python SafeLoader: its recursion ends in a RecursionError, never a C stack overflow
            data = yaml.load(s, Loader=yaml.SafeLoader)
    except RecursionError:
        raise fail(f"{source} is nested too deeply to parse") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError
        raise fail(f"{source} is not valid JSON: {e}") from None
    except Exception as e:  # noqa: BLE001 (yaml.YAMLError and the scanner's odd failures)
        text_e = str(e).replace("\n", " ")
        raise fail(f"{source} is not valid YAML/JSON: {text_e[:400]}") from None
    try:
        check_structure(data, source, p)
    except DataError as e:
        raise fail(str(e).removeprefix(f"{p}: ") if p else str(e)) from None
    return data


def _bracket_depth(s: str) -> int:
    """Upper bound of the flow nesting depth ([ and { count; block YAML nests by indentation, which
    yaml parses without deep recursion for realistic files and :func:`check_structure` bounds)."""
    depth = best = 0
    for ch in s:
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return best


def read_mapping_file(path: str | os.PathLike, *, what: str = "file", schema: dict | None = None,
                      error: type[Exception] = ConfigFileError, allow_nonfinite: bool = True) -> Any:
    """Read a YAML/JSON file (JSON if the suffix is ``.json``) boundedly and validate it against ``schema``.

    Every failure (missing, unreadable, too large, not UTF-8, syntax, structure, schema) is ``error``
    naming the file.
    """
    p = Path(path)

    def fail(msg: str):
        if isinstance(error, type) and issubclass(error, DataError):
            return error(msg, str(p))
        return error(f"{p}: {msg}")

    lim = current()
    try:
        with open(p, "rb") as fh:
            raw = fh.read(lim.max_text_bytes + 1)
    except FileNotFoundError:
        raise fail(f"{what} does not exist") from None
    except IsADirectoryError:
        raise fail(f"{what} is a folder, not a file") from None
    except OSError as e:
        raise fail(f"cannot read the {what}: {e.strerror or e}") from None
    fmt = "json" if p.suffix.lower() == ".json" else "yaml"
    data = parse_mapping(raw, what, path=p, fmt=fmt, error=error, allow_nonfinite=allow_nonfinite)
    if schema is not None:
        validate_mapping(data, schema, what, error=error, path=p)
    return data

