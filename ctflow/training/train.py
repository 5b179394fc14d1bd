r"""Flow-matching training: :math:`\min_θ E\,\|v_θ(x_t, t) - (x_1 - x_0)\|^2`, :math:`x_t = t x_1 + (1-t) x_0`.

Images are in [0, 1] (the window the data come in); :math:`x_0 \sim N(0, I)`. AdamW with linear
warm-up and cosine decay, EMA weights, gradient clipping, uniform or logit-normal t.

**Determinism and resuming.** The data indices, the noise :math:`x_0` and the times t of global step
``s`` are functions of ``(seed, s)`` only (a generator seeded per step), so a run resumed from a
checkpoint sees exactly the batches an uninterrupted run would; with model, EMA and AdamW state
restored it continues bit-for-bit on the same machine.

**Filling the time.** Batches are built off the training thread by a DataLoader worker process
(``workers=1``; each item is the whole batch of one step, so the order does not depend on the worker
count); ``init_from`` starts the network and its EMA from a shipped prior instead of random weights;
``time_budget`` stops cleanly (checkpoint written) after that many seconds, and ``--resume``
continues from there. The CLI adds ``--threads`` so that a long run can share the machine.

**Data parallel.** Under ``torchrun --nproc_per_node=N`` (gloo on CPU, nccl on GPU) each rank takes
its slice of the same global batch and DDP averages the gradients, so N processes with batch B/N
each match one process with batch B. Only rank 0 writes checkpoints, samples and logs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..priors.ode import odeint
from ..priors.unet import UNet, UNetConfig, config_from_dict
from ..priors.velocity import VelocityModel
from .checkpoint import (
    latest_checkpoint,
    load_optimizer_tensors,
    load_state_dict_checked,
    load_training_checkpoint,
    save_prior,
    save_training_checkpoint,
)
from .data import ImageSource, StepBatches, sample_times, step_noise


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint)."""

    data: str = "phantoms"  # "phantoms", "organcmnist"/"organamnist"/"organsmnist", or a MedMNIST-layout .npz
    size: int = 64
    batch_size: int = 16
    steps: int = 20000
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 500
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    t_sampling: str = "uniform"  # or "logit-normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500
    sample_every: int = 2000
    val_every: int = 500
    n_val: int = 128
    ellipse_fraction: float = 0.2  # phantoms only: share of random-ellipse images
    phantom_kind: str = "mixed"  # phantoms only: axial / coronal / mixed
    phantom_version: int = 1  # phantoms only: 1 piecewise-smooth, 2 CT-realistic (ctflow.data.abdomen.texture)
    init_from: str | None = None  # a prior (name or folder) whose weights start the run
    medmnist_root: str | None = None

    def __post_init__(self):
        if self.t_sampling not in ("uniform", "logit-normal"):
            raise ConfigError(f"t_sampling must be 'uniform' or 'logit-normal', got {self.t_sampling!r}")
        for name in ("batch_size", "steps", "checkpoint_every", "size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.phantom_version not in (1, 2):
            raise ConfigError(f"TrainConfig.phantom_version must be 1 or 2, got {self.phantom_version!r}")
        if not (0.0 <= self.ema_decay < 1.0) or self.lr <= 0:
            raise ConfigError("TrainConfig: need 0 ≤ ema_decay < 1 and lr > 0")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return config_from_dict(cls, d)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr_ratio · lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def fm_loss(net, x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    tb = t.reshape(-1, 1, 1, 1)
    xt = tb * x1 + (1 - tb) * x0
    return F.mse_loss(net(xt, t), x1 - x0)


@torch.no_grad()
def validation_loss(net, val: torch.Tensor, cfg: TrainConfig) -> float:
    """Flow-matching loss on the held-out images with fixed noise and times (comparable across steps)."""
    g = torch.Generator().manual_seed(12345)
    x0 = torch.randn(val.shape, generator=g).to(val.device)  # drawn on the CPU: the same numbers on every device
    t = sample_times(val.shape[0], cfg, g).to(val.device)
    return float(sum(fm_loss(net, val[i : i + 64], x0[i : i + 64], t[i : i + 64]) * len(val[i : i + 64]) for i in range(0, len(val), 64)) / len(val))


@torch.no_grad()
def write_sample_grid(net, path: Path, cfg: TrainConfig, real: torch.Tensor, n: int = 16, steps: int = 50) -> None:
    """PNG: ``n`` prior samples (Heun, ``steps`` steps) above ``n`` training images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    n = min(n, real.shape[0])
    g = torch.Generator().manual_seed(0)
    x = odeint(VelocityModel(net), torch.randn(n, 1, cfg.size, cfg.size, generator=g), steps=steps, method="heun")
    rows = [x.clamp(0, 1), real[:n]]
    fig, axes = plt.subplots(2, n, figsize=(n * 0.9, 2.1))
    for r, imgs in enumerate(rows):
        for i in range(n):
            axes[r, i].imshow(imgs[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r, i].axis("off")
    axes[0, 0].set_title("samples", fontsize=7, loc="left")
    axes[1, 0].set_title("data", fontsize=7, loc="left")
    fig.tight_layout(pad=0.1)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _budget_spent(t0: float, budget: float, world: int, dev: torch.device) -> bool:
    """Whether ``budget`` seconds have passed since ``t0``; under DDP any rank's clock decides for all,
    so every rank stops at the same step."""
    spent = time.perf_counter() - t0 >= budget
    if world > 1:
        flag = torch.tensor([float(spent)], device=dev)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        spent = bool(flag.item())
    return spent


def train(
    cfg: TrainConfig,
    model_cfg: UNetConfig,
    out: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    workers: int = 1,
    time_budget: float | None = None,
) -> dict:
    """Train (or resume) and return the final state dict (step, losses, val losses, finished).

    ``out`` receives ``checkpoints/`` (training state), ``samples/`` (PNG grids), ``log.jsonl`` and,
    at the end, the exported prior (``prior.safetensors`` + ``prior.json``). ``workers`` DataLoader
    processes build the batches (0: on the training thread). ``time_budget`` (seconds): stop after
    the first step past it, write a checkpoint, and return with ``finished=False`` (no prior export).
    """
    if time_budget is not None and not (math.isfinite(time_budget) and time_budget > 0):
        raise ConfigError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    if model_cfg.image_size != cfg.size or model_cfg.in_channels != 1:
        raise ConfigError(f"model image_size {model_cfg.image_size} does not match the data size {cfg.size}")
    rank, world = _dist_info()
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    out = Path(out)
    ck_dir = out / "checkpoints"
    dev = torch.device(device)
    net = UNet(model_cfg).to(dev)
    if cfg.init_from is not None and not (resume and latest_checkpoint(ck_dir) is not None):
        from ..priors.store import load_prior_folder, prior_folder

        init_net, _ = load_prior_folder(prior_folder(cfg.init_from))
        if init_net.config.to_dict() != model_cfg.to_dict():
            raise ConfigError(f"init_from {cfg.init_from!r} has model config {init_net.config.to_dict()}, not {model_cfg.to_dict()}")
        net.load_state_dict(init_net.state_dict())
    ema = UNet(model_cfg).to(dev)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    state: dict[str, Any] = {"losses": [], "val_losses": []}
    start = 0
    last = latest_checkpoint(ck_dir) if resume else None
    if resume and last is None and rank == 0:
        print(f"no checkpoint in {ck_dir}; starting from step 0")
    if last is not None:
        m, e, o, st = load_training_checkpoint(last)
        saved = {"train": st.get("train"), "model": st.get("model")}
        if saved["model"] != model_cfg.to_dict():
            raise ConfigError(f"{last}: the checkpoint was trained with model config {saved['model']}, not {model_cfg.to_dict()}")
        defaults = dataclasses.asdict(TrainConfig())  # fields added since the checkpoint take their defaults
        if defaults | saved["train"] != dataclasses.asdict(cfg) | {"steps": saved["train"]["steps"]}:
            raise ConfigError(f"{last}: the checkpoint's training config differs from this run's (only --steps may change)")
        load_state_dict_checked(net, m, str(last / "model.safetensors"))
        load_state_dict_checked(ema, e, str(last / "ema.safetensors"))
        load_optimizer_tensors(opt, o, st["optimizer"])
        start = int(st["step"])
        state = {"losses": st["losses"], "val_losses": st["val_losses"]}
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    data = ImageSource(cfg)
    local = cfg.batch_size // world
    shape = (cfg.batch_size, 1, cfg.size, cfg.size)
    log = out / "log.jsonl"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress or rank != 0, desc="train")
    batches = torch.utils.data.DataLoader(
        StepBatches(data, start, cfg.steps, cfg.batch_size, rank * local, local),
        batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    t0 = time.perf_counter()
    finished = True
    for step, x1 in zip(bar, batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        lo = rank * local
        x1 = x1.to(dev)
        x0, t = step_noise(cfg, step, shape)
        loss = fm_loss(model, x1, x0[lo : lo + local].to(dev), t[lo : lo + local].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1.0 - cfg.ema_decay)
            for be, b in zip(ema.buffers(), net.buffers()):
                be.copy_(b)
        lval = loss.detach()
        if world > 1:
            torch.distributed.all_reduce(lval)
            lval /= world
        state["losses"].append([step + 1, float(lval)])
        done = step + 1
        # one decision per step, taken before the checkpoint, so a budget stop always has its checkpoint
        stop = time_budget is not None and done < cfg.steps and _budget_spent(t0, time_budget, world, dev)
        if rank == 0:
            bar.set_postfix(loss=f"{float(lval):.4f}", lr=f"{lr_at(cfg, step):.2e}")
            if done % cfg.val_every == 0 or done == cfg.steps:
                ema.eval()
                state["val_losses"].append([done, validation_loss(ema, data.val.to(dev), cfg)])
            if done % cfg.sample_every == 0 or done == cfg.steps:
                write_sample_grid(ema.cpu(), out / "samples" / f"step-{done:07d}.png", cfg, data.val)
                ema.to(dev)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
                save_training_checkpoint(
                    ck_dir, done, net, ema, opt,
                    {"train": dataclasses.asdict(cfg), "model": model_cfg.to_dict(), **state},
                )
                with open(log, "a") as f:
                    f.write(json.dumps({"step": done, "loss": float(lval), "val": state["val_losses"][-1:] or None,
                                        "seconds": round(time.perf_counter() - t0, 2)}) + "\n")
        if stop:
            finished = False
            if rank == 0:
                print(f"time budget of {time_budget:.0f} s reached at step {done}; resume with --resume")
            break
    bar.close()
    if not finished:
        return {"step": done, "finished": False, **state}
    if rank == 0:
        card = {
            "training": dataclasses.asdict(cfg),
            "steps": cfg.steps,
            "final_train_loss": state["losses"][-1][1] if state["losses"] else None,
            "final_val_loss": state["val_losses"][-1][1] if state["val_losses"] else None,
        }
        save_prior(out, ema.cpu(), card)
    return {"step": cfg.steps, "finished": True, **state}
