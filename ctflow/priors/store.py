"""Prior folders without pickle: ``prior.safetensors`` (EMA weights) + ``prior.json`` (architecture and
data card). Loading parses JSON and reads raw tensors: it cannot execute code. Shipped priors are
found by name (``default`` is an alias) among the package data (``ctflow/assets/priors/``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..files import atomic_path, write_text_atomic
from .unet import UNet, UNetConfig
from .velocity import NetworkPrior


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle), each a finite floating-point tensor, or DataError
    naming the file. The file's size (what loading allocates) is checked against :mod:`ctflow.limits`."""
    from safetensors.torch import load_file

    from ..errors import NonFiniteDataError
    from ..limits import check_bytes

    if not path.is_file():
        raise DataError("missing checkpoint file", str(path))
    check_bytes(path.stat().st_size, "the weights file", path)
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on corrupt headers
        raise DataError(f"not a readable safetensors file ({e})", str(path)) from None
    for name, t in tensors.items():
        if not t.is_floating_point():
            raise DataError(f"weight {name!r} has dtype {t.dtype}, not floating point", str(path))
        bad = t.numel() - int(torch.isfinite(t).sum())
        if bad:
            raise NonFiniteDataError(f"weight {name!r} contains {bad} NaN/Inf value(s) out of {t.numel()}", str(path))
    return tensors


def _read_json(folder: Path, name: str, missing: str) -> dict:
    """Parse ``folder/name`` boundedly (:func:`ctflow.schemas.read_mapping_file`); a missing or malformed
    file is a DataError (ConfigFileError) naming it."""
    from ..errors import ConfigFileError
    from ..schemas import read_mapping_file

    path = folder / name
    if not path.exists():
        raise DataError(missing, str(folder))
    data = read_mapping_file(path, what=name, error=ConfigFileError, allow_nonfinite=False)
    if not isinstance(data, dict):
        raise ConfigFileError(f"{name} must hold a JSON object, got {type(data).__name__}", str(path))
    return data


def load_state_dict_checked(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with an error that names the file and the mismatching keys/shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shapes = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or extra or shapes:
        detail = []
        if missing:
            detail.append(f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}")
        if extra:
            detail.append(f"unexpected {extra[:3]}{'…' if len(extra) > 3 else ''}")
        if shapes:
            k = shapes[0]
            detail.append(f"shape of {k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}")
        raise ConfigError(f"{source}: the weights do not match the model configuration ({'; '.join(detail)})")
    module.load_state_dict(tensors)


def save_prior(folder: str | os.PathLike, model: UNet, card: dict | None = None) -> Path:
    """Export inference weights: ``prior.safetensors`` + ``prior.json`` (config + data card)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "prior.safetensors") as tmp:
        _save_tensors(model.state_dict(), tmp)
    meta = {"format": "ctflow-prior/1", "architecture": "UNet", "unet": model.config.to_dict(), "card": card or {}}
    write_text_atomic(folder / "prior.json", json.dumps(meta, indent=1))
    return folder


def load_prior_folder(folder: str | os.PathLike) -> tuple[UNet, dict]:
    """Build the UNet described by ``prior.json`` and load ``prior.safetensors`` into it.

    ``prior.json`` is checked against :data:`ctflow.schemas.PRIOR_SCHEMA` (types and ranges) and the
    network's size against :mod:`ctflow.limits` before it is built; weights must be finite. Every
    failure is a :class:`~ctflow.errors.CTFlowError` naming the file.
    """
    from ..errors import ConfigFileError
    from ..limits import check_bytes
    from ..schemas import PRIOR_SCHEMA, validate_mapping

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("prior folder does not exist" if not folder.exists() else "is not a folder", str(folder))
    meta = _read_json(folder, "prior.json", "no prior.json here (a prior folder holds prior.json + prior.safetensors)")
    cfg_path = folder / "prior.json"
    if meta.get("architecture") != "UNet" or "unet" not in meta:
        raise ConfigFileError(f"unknown architecture {str(meta.get('architecture'))[:60]!r}", str(cfg_path))
    validate_mapping(meta, PRIOR_SCHEMA, "prior.json", error=ConfigFileError, path=cfg_path)
    try:
        config = UNetConfig.from_dict(meta["unet"])
        with torch.device("meta"):
            n_params = sum(p.numel() for p in UNet(config).parameters())
    except Exception as e:  # noqa: BLE001 (ConfigError, and whatever an odd architecture makes torch raise)
        raise ConfigFileError(f"invalid unet settings: {e}", str(cfg_path)) from None
    check_bytes(4 * n_params, f"the network described by prior.json ({n_params} parameters)", cfg_path)
    net = UNet(config)
    load_state_dict_checked(net, _load_tensors(folder / "prior.safetensors"), str(folder / "prior.safetensors"))
    net.eval()
    return net, meta


#: Names that point at a shipped prior folder (package data: ``ctflow/assets/priors/``).
PRIOR_ALIASES = {"default": "phantom-64"}


def prior_folder(name_or_path) -> Path:
    """The folder of a prior: ``name_or_path`` itself if it is a folder, else the shipped prior of that
    name (or alias, e.g. ``default``) among the package data (:func:`ctflow.assets.shipped_priors_dir`,
    found with ``importlib.resources``, so it works from a wheel as well as from a checkout)."""
    from ..assets import shipped_priors_dir

    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = shipped_priors_dir()
    names = sorted(d.name for d in shipped.iterdir() if (d / "prior.json").is_file()) if shipped.is_dir() else []
    name = PRIOR_ALIASES.get(str(name_or_path), str(name_or_path))
    if name not in names:
        alias = f" (= {name})" if name != str(name_or_path) else ""
        raise DataError(f"no prior folder or shipped prior named {str(name_or_path)!r}{alias}; shipped: {names or 'none yet'}")
    return shipped / name


def load_prior(name_or_path) -> NetworkPrior:
    """Load a prior folder (``prior.json`` + ``prior.safetensors``) or a shipped prior by name (``"default"``).

    Loading reads JSON and raw tensors only (no pickle): it cannot execute code.
    """

    net, meta = load_prior_folder(prior_folder(name_or_path))
    return NetworkPrior(net, meta)
