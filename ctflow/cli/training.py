"""``ctflow data | train-prior | export-prior | sample``: datasets, prior training and sampling."""

from __future__ import annotations

import argparse


def _cmd_data_medmnist(args: argparse.Namespace) -> int:
    from ..data.medmnist import download_medmnist, locate_medmnist

    if args.download:
        download_medmnist(args.flag, args.size, args.root, base_url=args.base_url)
    loc = locate_medmnist(args.flag, args.size, args.root, base_url=args.base_url)
    state = "verified" if loc.md5_ok else ("present, MD5 MISMATCH" if loc.exists else "missing")
    md5 = " or ".join(loc.md5) if isinstance(loc.md5, (tuple, list)) else str(loc.md5)
    print(f"{args.flag} {args.size}px: {loc.path} [{state}]\n  url: {loc.url}\n  md5: {md5}")
    if not loc.exists:
        print(f"  get it with: ctflow data medmnist --flag {args.flag} --size {args.size} --download")
    return 0 if loc.md5_ok else 1


def _cmd_data_phantoms(args: argparse.Namespace) -> int:
    from ..data.abdomen import write_phantom_npz

    path = write_phantom_npz(args.out, args.n_train, args.n_val, args.n_test, size=args.size, seed=args.seed, kind=args.kind)
    print(f"wrote {path} ({args.n_train}/{args.n_val}/{args.n_test} {args.kind} phantoms at {args.size}px, MedMNIST layout)")
    return 0


def _cmd_train_prior(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..priors.unet import UNetConfig
    from ..training.train import TrainConfig, train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if world > 1 and not torch.distributed.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    cfg = TrainConfig(
        data=args.data, size=args.size, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        warmup=args.warmup, ema_decay=args.ema, grad_clip=args.grad_clip, t_sampling=args.t_sampling,
        seed=args.seed, checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        val_every=args.val_every, n_val=args.n_val, ellipse_fraction=args.ellipse_fraction,
        medmnist_root=args.medmnist_root, phantom_version=args.phantom_version, init_from=args.init_from,
    )
    if args.init_from is not None:  # the architecture is the prior's
        from ..priors import prior_folder
        from ..priors.store import load_prior_folder

        model = load_prior_folder(prior_folder(args.init_from))[0].config
    else:
        mults = tuple(int(m) for m in args.channel_mults.split(","))
        attn = tuple(int(r) for r in args.attention.split(",")) if args.attention else ()
        model = UNetConfig(image_size=args.size, base_channels=args.base_channels, channel_mults=mults,
                           num_res_blocks=args.num_res_blocks, attention_resolutions=attn)
    torch.set_num_threads(args.threads) if args.threads else None
    result = train(cfg, model, args.out, resume=args.resume, device=device, progress=not args.no_progress,
                   workers=args.workers, time_budget=args.time_budget * 3600 if args.time_budget else None)
    if world > 1:
        torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        val = result["val_losses"][-1][1] if result["val_losses"] else float("nan")
        if not result["finished"]:
            print(f"stopped at step {result['step']} (time budget); continue with the same command and --resume")
            return 0
        print(f"trained to step {result['step']}: last loss {result['losses'][-1][1]:.4f}, val loss {val:.4f} -> {args.out}")
    return 0


def _cmd_export_prior(args: argparse.Namespace) -> int:
    from ..training.checkpoint import export_checkpoint

    path = export_checkpoint(args.run, args.out)
    print(f"wrote {path}/prior.json + prior.safetensors")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from ..io import write_png_preview
    from ..priors import load_prior
    from ..priors.ode import odeint

    prior = load_prior(args.prior)
    s = prior.net.config.image_size
    x0 = torch.randn(args.n, 1, s, s, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        x = odeint(prior, x0, steps=args.steps, method=args.method, progress=True).clamp(0, 1)
    cols = int(args.n**0.5 + 0.999)
    rows = (args.n + cols - 1) // cols
    grid = torch.zeros(rows * s, cols * s)
    for i in range(args.n):
        r, c = divmod(i, cols)
        grid[r * s : (r + 1) * s, c * s : (c + 1) * s] = x[i, 0]
    write_png_preview(args.out, grid.numpy(), window=(0.5, 1.0), title=f"{args.n} samples, {args.method} {args.steps} steps")
    print(f"wrote {args.out}")
    return 0


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="datasets: MedMNIST files, procedural phantom datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    m = dsub.add_parser("medmnist", help="locate/verify (or --download) a MedMNIST npz file")
    m.add_argument("--flag", default="organcmnist", choices=["organcmnist", "organamnist", "organsmnist"])
    m.add_argument("--size", type=int, default=28, choices=[28, 64, 128, 224])
    m.add_argument("--root", default=None, help="folder (default $MEDMNIST_ROOT or ~/.medmnist)")
    m.add_argument("--download", action="store_true", help="download it (needs internet)")
    m.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    m.set_defaults(func=_cmd_data_medmnist)
    ph = dsub.add_parser("phantoms", help="write procedural abdomen phantoms as an npz in the MedMNIST layout")
    ph.add_argument("out", help="output .npz")
    ph.add_argument("--size", type=int, default=64)
    ph.add_argument("--n-train", type=int, default=1000)
    ph.add_argument("--n-val", type=int, default=100)
    ph.add_argument("--n-test", type=int, default=100)
    ph.add_argument("--kind", default="coronal", choices=["axial", "coronal", "mixed"])
    ph.add_argument("--seed", type=int, default=0)
    ph.set_defaults(func=_cmd_data_phantoms)
    t = sub.add_parser("train-prior", help="train a flow-matching prior (resumable; torchrun for data parallel)")
    t.add_argument("--data", default="phantoms", help="phantoms | organcmnist | organamnist | organsmnist | a MedMNIST-layout .npz")
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--out", required=True, help="run folder (checkpoints/, samples/, log.jsonl, final prior)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch-size", type=int, default=16, help="global batch (split across torchrun processes)")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup", type=int, default=500)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--t-sampling", default="uniform", choices=["uniform", "logit-normal"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--sample-every", type=int, default=2000)
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--n-val", type=int, default=128)
    t.add_argument("--ellipse-fraction", type=float, default=0.2)
    t.add_argument("--medmnist-root", default=None)
    t.add_argument("--phantom-version", type=int, default=2, choices=[1, 2], help="phantoms only: 1 piecewise-smooth, 2 CT-realistic")
    t.add_argument("--init-from", default=None, metavar="PRIOR", help="start from a prior's weights (name or folder); the architecture is the prior's")
    t.add_argument("--workers", type=int, default=1, help="DataLoader processes that build batches off the training thread (0: none)")
    t.add_argument("--time-budget", type=float, default=None, metavar="HOURS", help="stop cleanly with a checkpoint after this many hours (--resume continues)")
    t.add_argument("--base-channels", type=int, default=32)
    t.add_argument("--channel-mults", default="1,2,4")
    t.add_argument("--num-res-blocks", type=int, default=1)
    t.add_argument("--attention", default="", help="resolutions with self-attention, e.g. 16")
    t.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train_prior)
    ex = sub.add_parser("export-prior", help="export a training checkpoint's EMA weights as a prior folder")
    ex.add_argument("run", help="training run folder (or a checkpoints/ or step-… folder)")
    ex.add_argument("--out", required=True, help="prior folder to write (prior.json + prior.safetensors)")
    ex.set_defaults(func=_cmd_export_prior)
    sp = sub.add_parser("sample", help="draw samples from a prior into a PNG grid")
    sp.add_argument("--prior", required=True, help="prior folder (prior.json + prior.safetensors) or a shipped name")
    sp.add_argument("-n", type=int, default=16)
    sp.add_argument("--steps", type=int, default=50)
    sp.add_argument("--method", default="heun", choices=["euler", "midpoint", "heun", "rk4"])
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default="samples.png")
    sp.set_defaults(func=_cmd_sample)
