"""Weights I/O without pickle: safetensors for tensors, JSON for everything else.

A *training checkpoint* is a folder ``step-0000500/`` holding ``model.safetensors``,
``ema.safetensors``, ``optimizer.safetensors`` (AdamW moments, flattened by parameter index) and
``state.json`` (configs, step, loss history). It is written into a hidden temp folder and renamed
into place, then ``latest.json`` (pointing at it) is replaced atomically, so a kill at any moment
leaves the previous checkpoint intact. A *prior* (what solvers load) is ``prior.safetensors`` (EMA
weights) + ``prior.json`` (architecture, training summary). Loading parses JSON and reads raw
tensors: it cannot execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from ..files import write_text_atomic
from ..errors import DataError
from ..errors import ConfigError
from .unet import UNet, UNetConfig

LATEST = "latest.json"


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


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW state as flat tensors ``{"{i}.{name}": tensor}`` plus the JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{name}"] = val
            else:
                scalars[f"{idx}.{name}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    for key, val in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_checkpoint(
    folder: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    keep: int = 2,
) -> Path:
    """Write ``folder/step-{step:07d}/`` atomically and point ``latest.json`` at it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:07d}"
    tmp = folder / f".tmp-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        _save_tensors(model.state_dict(), tmp / "model.safetensors")
        _save_tensors(ema.state_dict(), tmp / "ema.safetensors")
        opt_t, opt_meta = optimizer_tensors(optimizer)
        _save_tensors(opt_t, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": opt_meta}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_text_atomic(folder / LATEST, json.dumps({"step": step, "path": final.name}))
    old = sorted(p for p in folder.glob("step-*") if p.is_dir() and p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points at, or None if there is none yet."""
    p = Path(folder) / LATEST
    if not p.is_file():
        return None
    try:
        ck = Path(folder) / json.loads(p.read_text())["path"]
    except (ValueError, KeyError) as e:
        raise DataError(f"corrupt checkpoint pointer ({e})", str(p)) from None
    if not ck.is_dir():
        raise DataError(f"points at {ck.name}, which does not exist", str(p))
    return ck


def load_training_checkpoint(path: str | os.PathLike) -> tuple[dict, dict, dict, dict]:
    """``(model_tensors, ema_tensors, optimizer_tensors, state)`` of a checkpoint folder."""
    path = Path(path)
    state = _read_json(path, "state.json", "missing state.json")
    return (
        _load_tensors(path / "model.safetensors"),
        _load_tensors(path / "ema.safetensors"),
        _load_tensors(path / "optimizer.safetensors"),
        state,
    )


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
    from ..files import atomic_path

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


def export_checkpoint(source: str | os.PathLike, out: str | os.PathLike, card: dict | None = None) -> Path:
    """Export the EMA weights of a training checkpoint as a prior folder (for using a run mid-way).

    ``source`` is a run folder (its ``checkpoints/latest.json`` is followed), a ``checkpoints/``
    folder, or one ``step-…`` checkpoint folder. The card records the step and the last losses.
    """
    src = Path(source)
    if (src / "state.json").is_file():
        ck = src
    else:
        ck = latest_checkpoint(src / "checkpoints" if (src / "checkpoints").is_dir() else src)
        if ck is None:
            raise DataError("no checkpoint found (expected checkpoints/latest.json)", str(src))
    _, ema_t, _, state = load_training_checkpoint(ck)
    net = UNet(UNetConfig.from_dict(state["model"]))
    load_state_dict_checked(net, ema_t, str(ck / "ema.safetensors"))
    vals = state.get("val_losses") or []
    auto = {
        "training": state.get("train"),
        "steps": int(state["step"]),
        "final_train_loss": state["losses"][-1][1] if state.get("losses") else None,
        "final_val_loss": vals[-1][1] if vals else None,
        "exported_from": ck.name,
    }
    return save_prior(out, net, auto | (card or {}))
