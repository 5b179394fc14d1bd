"""Weights I/O without pickle: safetensors for tensors, JSON for everything else.

A *training checkpoint* is a folder ``step-0000500/`` holding ``model.safetensors``,
``ema.safetensors``, ``optimizer.safetensors`` (AdamW moments, flattened by parameter index) and
``state.json`` (configs, step, loss history). It is written into a hidden temp folder and renamed
into place, then ``latest.json`` (pointing at it) is replaced atomically, so a kill at any moment
leaves the previous checkpoint intact. A *prior* (what solvers load) is written by :mod:`ctflow.priors.store`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..files import write_text_atomic
from ..priors.store import _load_tensors, _read_json, _save_tensors, load_state_dict_checked, save_prior
from ..priors.unet import UNet, UNetConfig

LATEST = "latest.json"


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
