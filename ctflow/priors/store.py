"""Prior folders without pickle: ``prior.safetensors`` (EMA weights) + ``prior.json`` (architecture and
data card). Loading parses JSON and reads raw tensors: it cannot execute code. Shipped priors are
found by name (``default`` is an alias) in ``data/priors/``.
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
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError("missing checkpoint file", str(path))
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on corrupt headers
        raise DataError(f"not a readable safetensors file ({e})", str(path)) from None


def _read_json(folder: Path, name: str, missing: str) -> dict:
    """Parse ``folder/name``; a missing or malformed file is a DataError naming the folder."""
    try:
        return json.loads((folder / name).read_text())
    except FileNotFoundError:
        raise DataError(missing, str(folder)) from None
    except ValueError as e:
        raise DataError(f"{name} is not valid JSON ({e})", str(folder)) from None


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
    """Build the UNet described by ``prior.json`` and load ``prior.safetensors`` into it."""
    folder = Path(folder)
    meta = _read_json(folder, "prior.json", "no prior.json here (a prior folder holds prior.json + prior.safetensors)")
    if meta.get("architecture") != "UNet" or "unet" not in meta:
        raise ConfigError(f"{folder}/prior.json: unknown architecture {meta.get('architecture')!r}")
    net = UNet(UNetConfig.from_dict(meta["unet"]))
    load_state_dict_checked(net, _load_tensors(folder / "prior.safetensors"), str(folder / "prior.safetensors"))
    net.eval()
    return net, meta


#: Names that point at a shipped prior folder in ``data/priors/``.
PRIOR_ALIASES = {"default": "phantom-64"}


def prior_folder(name_or_path) -> Path:
    """The folder of a prior: ``name_or_path`` itself if it is a folder, else the shipped prior of that
    name (or alias, e.g. ``default``) in ``data/priors/``."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = Path(__file__).resolve().parents[2] / "data" / "priors"
    names = sorted(d.name for d in shipped.iterdir() if (d / "prior.json").is_file()) if shipped.is_dir() else []
    name = PRIOR_ALIASES.get(str(name_or_path), str(name_or_path))
    if name not in names:
        alias = f" (= {name})" if name != str(name_or_path) else ""
        raise DataError(f"no prior folder or shipped prior named {str(name_or_path)!r}{alias}; shipped: {names or 'none yet'}")
    return shipped / name


def load_prior(name_or_path) -> NetworkPrior:
    """Load a prior folder (``prior.json`` + ``prior.safetensors``) or a prior shipped in ``data/priors/``.

    Loading reads JSON and raw tensors only (no pickle): it cannot execute code.
    """

    net, meta = load_prior_folder(prior_folder(name_or_path))
    return NetworkPrior(net, meta)
