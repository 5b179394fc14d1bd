"""The CUDA code paths: operators (matrix adjointness, ASTRA-CUDA vs matrix), one solver of each family,
a few training steps, the torchrun device mapping. Tests marked ``cuda`` skip without a GPU
(``tools/gpu_check.sh`` runs them on a GPU machine); the unmarked ones check the same logic on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ctflow
from ctflow.operators import InexactAdjointWarning, RayTransform

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
GEOMETRIES = ["parallel-64-sparse30", "fan-64-sparse60"]


def _astra_cuda() -> bool:
    import astra

    return HAS_CUDA and bool(astra.use_cuda())


def _bundled():
    from ctflow.assets import bundled_sinogram
    from ctflow.io import read_image_h5, read_sinogram_h5

    scan = read_sinogram_h5(bundled_sinogram())
    return scan, torch.from_numpy(read_image_h5(bundled_sinogram(truth=True)).image)


# ---- CPU checks of the same logic ------------------------------------------------------------------
def test_rank_device_maps_cuda_to_local_rank(monkeypatch):
    from ctflow.cli.reconstruct import rank_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert rank_device("cuda") == "cuda" and rank_device("cpu") == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert rank_device("cuda") == "cuda:3"  # under torchrun: one GPU per rank, not all on cuda:0
    assert rank_device("cuda:1") == "cuda:1" and rank_device("cpu") == "cpu"  # explicit choices are kept


def test_differentiating_an_inexact_adjoint_warns_and_auto_says_why(monkeypatch):
    """What happens on CUDA tensors with ASTRA's GPU projector, with the exactness check forced off on the CPU."""
    A = RayTransform("parallel-28-sparse30", backend="auto", max_matrix_nnz=1)  # auto must decline the matrix
    assert A.backend_name == "astra" and A.auto_selected
    assert A.exact_adjoint("cpu") and not A.exact_adjoint("cuda")
    assert RayTransform("parallel-28-sparse30", backend="matrix", cache_dir=False).exact_adjoint("cuda")
    x = torch.rand(28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InexactAdjointWarning)
        A(x)  # no autograd: no warning
        A(x.requires_grad_(True)).sum().backward()  # CPU projectors are exact: no warning
    monkeypatch.setattr(A, "exact_adjoint", lambda device="cpu": False)
    with pytest.warns(InexactAdjointWarning, match=r"backend='auto' chose 'astra' because its system matrix would have"):
        A(x).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error", InexactAdjointWarning)
        A(x).sum().backward()  # once per operator


def test_load_prior_is_frozen_and_odeint_keeps_no_graph():
    from ctflow.priors import load_prior, odeint

    prior = load_prior("default")
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    x0 = torch.randn(2, 1, 64, 64, requires_grad=True)
    assert odeint(prior, x0, steps=2).grad_fn is None  # sampling: no graph over the steps
    out = odeint(prior, x0, steps=2, grad=True)  # asked for: differentiable with respect to the start
    out.sum().backward()
    assert x0.grad is not None and torch.isfinite(x0.grad).all()


# ---- on the GPU -------------------------------------------------------------------------------------
@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", GEOMETRIES)
def test_matrix_backend_is_the_exact_adjoint_on_cuda(name):
    A = RayTransform(name, backend="matrix")
    assert A.adjointness_test(device="cuda", dtype=torch.float32) < 1e-5
    assert A.adjointness_test(device="cuda", dtype=torch.float64) < 1e-12
    x = torch.rand(3, 1, *A.domain_shape, dtype=torch.float64)
    torch.testing.assert_close(A(x.cuda()).cpu(), A(x), rtol=1e-10, atol=1e-12)  # CUDA = CPU
    xc = x.cuda().requires_grad_(True)
    y = torch.rand(3, 1, *A.range_shape, dtype=torch.float64, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InexactAdjointWarning)
        (A(xc) * y).sum().backward()
    torch.testing.assert_close(xc.grad, A.adjoint(y))


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", GEOMETRIES)
def test_astra_cuda_agrees_with_the_matrix_and_warns_under_autograd(name):
    if not _astra_cuda():
        pytest.skip("this ASTRA build cannot use CUDA")
    M = RayTransform(name, backend="matrix")
    G = RayTransform(name, backend="astra")
    from ctflow.physics.phantoms import ellipses_image, shepp_logan_ellipses

    g = M.geometry
    x = ellipses_image(shepp_logan_ellipses(0.45 * g.image_shape[0] * g.pixel_size), g.image_shape[0], g.pixel_size).float()
    ym, yg = M(x.cuda()), G(x.cuda())
    assert yg.device.type == "cuda"
    assert float((yg - ym).norm() / ym.norm()) < 3e-2  # ray-driven GPU FP vs the CPU projector's matrix
    y = torch.rand(M.range_shape, device="cuda")
    bm, bg = M.adjoint(y), G.adjoint(y)
    assert float((bg - bm).norm() / bm.norm()) < 5e-2
    mismatch = G.adjointness_test(device="cuda")
    assert mismatch < 5e-2  # not exact (that is why differentiating it warns) but close
    with pytest.warns(InexactAdjointWarning):
        G(x.cuda().requires_grad_(True)).sum().backward()


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("method,options", [
    ("tv", {"iterations": 100}),                       # classical
    ("msflow", {"iterations": 3, "rho": 100.0}),        # latent
    ("cpigfm", {"steps": 10}),                          # guided
])
def test_one_solver_of_each_family_on_cuda(method, options):
    scan, truth = _bundled()
    op = RayTransform(scan.geometry)
    y = torch.from_numpy(scan.sinogram)
    solver = ctflow.get_solver(method, seed=0, **options)
    prior = "default" if solver.needs_prior else None
    cpu = solver(y, op, prior=prior)
    gpu = solver(y.cuda(), op, prior=prior)
    assert gpu.image.device.type == "cuda" and torch.isfinite(gpu.image).all()
    assert gpu.peak_memory_kind.startswith("cuda")
    p_cpu = cpu.metrics(truth, data_range=1.0)["psnr"]
    p_gpu = ctflow.metrics.psnr(gpu.image.cpu().numpy(), truth.numpy(), data_range=1.0)
    if method == "tv":  # deterministic: the same numbers up to float32 summation order
        torch.testing.assert_close(gpu.image.cpu(), cpu.image, rtol=1e-3, atol=1e-3)
    assert abs(p_gpu - p_cpu) < 2.0, (p_cpu, p_gpu)  # stochastic methods draw other noise on the GPU


@cuda
@pytest.mark.cuda
def test_a_few_training_steps_on_cuda(tmp_path):
    from ctflow.priors import load_prior
    from ctflow.priors.unet import UNetConfig
    from ctflow.training.train import TrainConfig, train

    model = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2))
    cfg = TrainConfig(data="phantoms", size=16, batch_size=8, steps=20, warmup=2, checkpoint_every=10, val_every=10,
                      sample_every=20, n_val=8)
    state = train(cfg, model, tmp_path / "run", device="cuda", progress=False, workers=0)
    assert state["finished"] and len(state["losses"]) == 20 and all(np.isfinite(v) for _, v in state["losses"])
    assert state["val_losses"] and (tmp_path / "run" / "samples" / "step-0000020.png").is_file()
    more = train(TrainConfig(**{**cfg.__dict__, "steps": 25}), model, tmp_path / "run", resume=True, device="cuda",
                 progress=False, workers=0)  # resume on the GPU (optimizer state back on the device)
    assert more["finished"] and more["step"] == 25
    assert load_prior(tmp_path / "run").image_size == 16


def _cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"
    return env


@cuda
@pytest.mark.cuda
def test_torchrun_reconstruct_puts_each_rank_on_its_own_gpu(tmp_path):
    """`ctflow reconstruct --device cuda` under torchrun: rank r uses cuda:r (LOCAL_RANK) and the files equal a
    one-process CPU run. With one GPU this runs one rank; with two or more, two."""
    from ctflow.io import read_image_h5, write_sinogram_h5

    n = min(2, torch.cuda.device_count())
    scan, _ = _bundled()
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        write_sinogram_h5(inputs / f"s{i}.h5", scan.sinogram * (1 + 0.1 * i), scan.geometry)
    args = ["reconstruct", str(inputs), "--method", "tv", "--set", "iterations=50", "--format", "h5"]
    from ctflow.cli import main

    assert main([*args, "--out", str(tmp_path / "cpu")]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    probe = ("import os, torch; from ctflow.cli.reconstruct import rank_device; d = rank_device('cuda'); "
             "torch.cuda.set_device(torch.device(d)); print(os.environ['LOCAL_RANK'], d, torch.cuda.current_device())")
    r = subprocess.run([str(torchrun), "--standalone", f"--nproc_per_node={n}", "-m", "ctflow.cli", *args,
                        "--device", "cuda", "--out", str(tmp_path / "gpu")],
                       env=_cli_env(), capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    for i in range(4):
        a = read_image_h5(tmp_path / "cpu" / f"s{i}_tv.h5").image
        b = read_image_h5(tmp_path / "gpu" / f"s{i}_tv.h5").image
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)
    for rank in range(n):
        env = _cli_env() | {"LOCAL_RANK": str(rank)}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(rank), f"cuda:{rank}", str(rank)]


@cuda
@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs for data-parallel training")
def test_torchrun_training_uses_one_gpu_per_rank(tmp_path):
    """`torchrun --nproc_per_node=2 … train-prior --device cuda`: nccl, cuda:LOCAL_RANK, the same weights as one
    process with the whole batch (to float32 summation order)."""
    from safetensors.torch import load_file

    def cli(out):
        return ["train-prior", "--data", "phantoms", "--size", "16", "--base-channels", "8", "--channel-mults", "1,2",
                "--batch-size", "8", "--steps", "6", "--checkpoint-every", "6", "--val-every", "6", "--sample-every",
                "1000", "--n-val", "8", "--warmup", "2", "--out", str(out), "--no-progress", "--device", "cuda"]

    from ctflow.cli import main

    assert main(cli(tmp_path / "one")) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ctflow.cli", *cli(tmp_path / "two")],
                       env=_cli_env(), capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(tmp_path / "one" / "prior.safetensors")), load_file(str(tmp_path / "two" / "prior.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)
