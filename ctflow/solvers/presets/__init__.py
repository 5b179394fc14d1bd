"""Tuned option presets: the YAML files in this folder, their format, and the lookup ``reconstruct`` uses.

A preset is what ``ctflow tune`` (:mod:`ctflow.studies.tune`) writes: the best options a seeded optuna
study found for one method, prior, geometry and noise setting, with how it was found::

    format: ctflow-preset/1
    name: msflow--phantom-64--parallel-64-sparse30--gaussian-0.01
    method: msflow
    options: {rho: 41.2, blend: 0.53, box: [0.0, 1.0], ...}
    prior: {name: phantom-64, hash: 1f0c...}          # null for the classical methods
    geometry: {name: parallel-64-sparse30, kind: parallel, image_size: 64, n_angles: 30}
    noise: {kind: gaussian, level: 0.01, sigma_rel: 0.0113}   # sigma_rel: estimated σ / max|y| (median)
    score: {psnr: 29.8, ssim: 0.81, objective: mean PSNR (dB) on the tuning set}
    tuning: {trials: 16, sampler: TPE, seed: 0, tuning_set: ..., n_images: 4, noise_std: estimated}
    ctflow_version: 0.1.0

:func:`find_preset` picks, among the presets of a method, the nearest one for a (prior, geometry,
estimated σ): the same prior (by weights hash, else by name) and the same geometry kind and image size
are preferred, then the smallest ``|log2(views ratio)| + |log2(σ ratio)|``. A preset tuned for other
weights than the prior in use (e.g. after a retrain) is still used, with a :class:`PresetWarning`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from pathlib import Path

from ...errors import ConfigError

__all__ = [
    "PRESET_DIR",
    "Preset",
    "PresetWarning",
    "find_preset",
    "list_presets",
    "load_preset",
    "preset_name",
    "prior_hash",
    "save_preset",
]

PRESET_DIR = Path(__file__).resolve().parent
FORMAT = "ctflow-preset/1"


class PresetWarning(UserWarning):
    """A preset was used for a setting it was not tuned for (another prior's weights, geometry kind, …)."""


_NUM = {"type": "number", "finite": True}
PRESET_SCHEMA = {
    "type": "object",
    "required": ["format", "name", "method", "options", "geometry", "noise"],
    "properties": {
        "format": {"const": FORMAT},
        "name": {"type": "string", "maxLength": 300},
        "method": {"type": "string", "maxLength": 64},
        "options": {"type": "object"},
        "prior": {"type": ["object", "null"], "properties": {"name": {"type": ["string", "null"]},
                                                               "hash": {"type": ["string", "null"]}}},
        "geometry": {"type": "object", "required": ["n_angles"],
                     "properties": {"name": {"type": ["string", "null"]}, "kind": {"type": "string"},
                                    "image_size": {"type": "integer", "minimum": 1},
                                    "n_angles": {"type": "integer", "minimum": 1}}},
        "noise": {"type": "object", "required": ["sigma_rel"],
                  "properties": {"kind": {"type": "string"}, "level": _NUM,
                                 "sigma_rel": {"type": "number", "finite": True, "exclusiveMinimum": 0}}},
        "score": {"type": "object"},
        "tuning": {"type": "object"},
        "ctflow_version": {"type": "string"},
    },
}


class Preset(dict):
    """A preset mapping (see the module docstring) with its file ``path``."""

    path: Path | None = None

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def method(self) -> str:
        return self["method"]

    def solver_options(self) -> dict:
        """The options, with YAML lists turned back into the tuples solvers take (``box``, ``rho``)."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in self["options"].items()}

    def summary(self) -> dict:
        return {"name": self["name"], "file": str(self.path) if self.path else None,
                "geometry": self["geometry"].get("name"), "noise": dict(self["noise"]),
                "prior": (self.get("prior") or {}).get("name"), "score": self.get("score")}


def preset_name(method: str, prior: str | None, geometry: str, noise_kind: str, noise_level: float) -> str:
    return f"{method}--{prior or 'none'}--{geometry}--{noise_kind}-{noise_level:g}"


def load_preset(path_or_name) -> Preset:
    """Read a preset file (bounded, schema-checked) or a shipped preset by name (file stem)."""
    p = Path(path_or_name)
    if not p.is_file():
        cand = PRESET_DIR / f"{path_or_name}.yaml"
        if not cand.is_file():
            raise ConfigError(f"no preset file or shipped preset named {str(path_or_name)!r}; "
                              f"shipped: {[q.stem for q in sorted(PRESET_DIR.glob('*.yaml'))] or 'none'}")
        p = cand
    try:
        from ...schemas import read_mapping_file

        data = read_mapping_file(p, what="solver preset", schema=PRESET_SCHEMA, error=ConfigError)
    except ImportError:  # pragma: no cover - older trees without ctflow.schemas
        import yaml

        data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{p}: not a ctflow preset (format {FORMAT!r} expected)")
    pre = Preset(data)
    pre.path = p
    return pre


def list_presets(folder: str | os.PathLike | None = None) -> list[Preset]:
    """Every preset in ``folder`` (default: the shipped ones), sorted by name."""
    d = Path(folder) if folder is not None else PRESET_DIR
    return [load_preset(p) for p in sorted(d.glob("*.yaml"))]


def save_preset(preset: dict, path: str | os.PathLike) -> Path:
    """Write ``preset`` as YAML atomically."""
    import yaml

    from ...files import write_text_atomic

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if hasattr(v, "item"):
            return v.item()
        return v

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, yaml.safe_dump(plain(dict(preset)), sort_keys=False, allow_unicode=True))
    return p


# ---- identity of a prior -----------------------------------------------------------------------------
def prior_hash(prior) -> str | None:
    """First 16 hex digits of the SHA-256 of a prior's weights file (``prior.safetensors``) for a prior
    name or folder; for a loaded prior, of its parameters (name, dtype, shape, bytes; sorted). None for
    callables without parameters."""
    if prior is None:
        return None
    if isinstance(prior, (str, os.PathLike)):
        from ...priors import prior_folder

        f = Path(prior_folder(prior)) / "prior.safetensors"
        st = f.stat()
        return _file_hash(str(f), st.st_mtime_ns, st.st_size)
    src = getattr(prior, "_ctflow_weights_hash", None)
    if src:
        return src
    mod = getattr(prior, "net", prior)
    if not hasattr(mod, "state_dict"):
        return None
    h = hashlib.sha256()
    for k, v in sorted(mod.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _file_hash(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def prior_name(prior) -> str | None:
    if prior is None:
        return None
    if isinstance(prior, (str, os.PathLike)):
        from ...priors.store import PRIOR_ALIASES

        return PRIOR_ALIASES.get(str(prior), Path(str(prior)).name)
    card = (getattr(prior, "meta", None) or {}).get("card", {})
    return card.get("name")


# ---- lookup -------------------------------------------------------------------------------------------
def _geometry_info(geometry) -> dict:
    shape = getattr(geometry, "image_shape", None)
    size = int(shape[0]) if shape is not None and len(set(shape)) == 1 else None
    kind = "fan" if "Fan" in type(geometry).__name__ else "parallel"
    return {"name": getattr(geometry, "name", None), "kind": kind, "image_size": size,
            "n_angles": int(geometry.n_angles)}


def find_preset(method: str, geometry, sigma_rel: float, prior=None, folder=None,
                presets: list[Preset] | None = None) -> tuple[Preset | None, list[str]]:
    """The nearest preset of ``method`` for ``geometry`` (a geometry object) and the relative noise level
    ``sigma_rel`` (σ / max|y|), tuned for ``prior`` (a name, folder or loaded prior; None for classical
    methods). Returns ``(preset or None, notes)``: the notes say how the match differs (for a warning)."""
    cands = [p for p in (presets if presets is not None else list_presets(folder)) if p["method"] == method]
    if not cands:
        return None, [f"no preset for method {method!r}"]
    g = _geometry_info(geometry)
    want_hash = prior_hash(prior) if prior is not None else None
    want_name = prior_name(prior)

    def key(p):
        pg, pn, pp = p["geometry"], p["noise"], p.get("prior") or {}
        prior_pen = 0
        if prior is not None:
            if want_hash and pp.get("hash") == want_hash:
                prior_pen = 0
            elif want_name and pp.get("name") == want_name:
                prior_pen = 1
            else:
                prior_pen = 2
        geo_pen = (pg.get("kind", "parallel") != g["kind"]) + (pg.get("image_size") not in (None, g["image_size"]))
        dist = abs(math.log2(pg["n_angles"] / g["n_angles"])) + abs(math.log2(pn["sigma_rel"] / max(sigma_rel, 1e-12)))
        return (prior_pen, geo_pen, dist, p["name"])

    best = min(cands, key=key)
    prior_pen, geo_pen, dist, _ = key(best)
    notes = []
    if prior is not None and prior_pen == 1:
        notes.append(f"preset {best['name']} was tuned for other weights of prior {want_name!r} "
                     f"(hash {(best.get('prior') or {}).get('hash')} vs {want_hash}); re-tune with `ctflow tune`")
    elif prior is not None and prior_pen == 2:
        notes.append(f"preset {best['name']} was tuned for prior {(best.get('prior') or {}).get('name')!r}, "
                     f"not this one; re-tune with `ctflow tune`")
    if geo_pen:
        notes.append(f"preset {best['name']} was tuned for a {best['geometry'].get('kind')} geometry of "
                     f"{best['geometry'].get('image_size')}² images, not {g['kind']} {g['image_size']}²")
    return best, notes


def use_preset(method: str, geometry, y, prior=None, preset="auto", noise_std=None):
    """The preset ``reconstruct`` applies: ``preset`` "auto" (nearest shipped), a name/path, or a
    :class:`Preset`. Warns (:class:`PresetWarning`) when the match is approximate. Returns the preset or None."""
    if preset is None or preset is False:
        return None
    if isinstance(preset, Preset):
        return preset
    if preset != "auto":
        return load_preset(preset)
    import torch

    from ..noise_estimate import estimate_noise_std

    t = torch.as_tensor(y).detach().double()
    t = t.reshape(-1, *t.shape[-2:])
    peak = t.abs().amax((-2, -1)).clamp_min(1e-12)
    if noise_std is not None:
        sig = torch.as_tensor(noise_std, dtype=torch.float64).reshape(-1).expand(t.shape[0])
    else:
        sig = estimate_noise_std(t)
    sigma_rel = float((sig / peak).median())
    pre, notes = find_preset(method, geometry, sigma_rel, prior=prior)
    for n in notes:
        if pre is not None:
            warnings.warn(n, PresetWarning, stacklevel=3)
    if pre is not None:
        path = pre.path
        pre = Preset(pre)
        pre.path = path
        pre["_match"] = {"sigma_rel": sigma_rel, "notes": notes}
    return pre
