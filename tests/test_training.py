"""Prior training: learning, checkpoints (safetensors + JSON only), resume after SIGKILL, DDP equivalence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ctflow.errors import DataError
from ctflow.priors import ConfigError, UNet, UNetConfig, load_prior
from ctflow.priors.store import load_prior_folder, save_prior
from ctflow.training.checkpoint import latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from ctflow.training.train import TrainConfig, fm_loss, lr_at

TINY = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2))
ROOT = Path(__file__).resolve().parents[1]


def _cli(out: Path, steps: int = 60, extra: list[str] | None = None, batch: int = 4) -> list[str]:
    return [
        "train-prior", "--data", "phantoms", "--size", "16", "--base-channels", "8", "--channel-mults", "1,2",
        "--batch-size", str(batch), "--steps", str(steps), "--checkpoint-every", "10", "--val-every", "20",
        "--sample-every", "1000", "--n-val", "8", "--warmup", "5", "--out", str(out), "--no-progress", "--threads", "1",
        *(extra or []),
    ]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = UNet(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    x1 = torch.rand(8, 1, 16, 16, generator=g)
    x0 = torch.randn(8, 1, 16, 16, generator=g)
    t = torch.rand(8, generator=g)
    first = float(fm_loss(net, x1, x0, t).detach())
    for _ in range(40):
        opt.zero_grad()
        fm_loss(net, x1, x0, t).backward()
        opt.step()
    assert float(fm_loss(net, x1, x0, t).detach()) < 0.5 * first


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=110, min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-4) and lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 60) == pytest.approx(0.55e-3) and lr_at(cfg, 110) == pytest.approx(1e-4)


def test_checkpoint_round_trip_and_no_pickle(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net, ema = UNet(TINY), UNet(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.rand(2, 1, 16, 16), torch.rand(2)).sum().backward()
    opt.step()
    ck = save_training_checkpoint(tmp_path, 7, net, ema, opt, {"losses": [[7, 0.5]], "val_losses": []})
    assert latest_checkpoint(tmp_path) == ck
    assert {p.suffix for p in ck.iterdir()} == {".safetensors", ".json"}  # nothing pickled
    m, e, o, st = load_training_checkpoint(ck)
    assert st["step"] == 7 and all(torch.equal(m[k], v) for k, v in net.state_dict().items())
    opt2 = torch.optim.AdamW(UNet(TINY).parameters(), lr=1e-3)
    from ctflow.training.checkpoint import load_optimizer_tensors

    load_optimizer_tensors(opt2, o, st["optimizer"])
    a, b = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])
    # the exported prior loads without torch.load / pickle, and computes the same velocity
    save_prior(tmp_path / "prior", net, {"note": "test"})
    import pickle

    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle used"))
    prior = load_prior(tmp_path / "prior")
    x, t = torch.rand(2, 1, 16, 16), torch.tensor([0.2, 0.7])
    torch.testing.assert_close(prior(x, t), net(x, t))
    assert prior.meta["card"] == {"note": "test"}


def test_mismatched_weights_and_bad_files(tmp_path):
    save_prior(tmp_path / "p", UNet(TINY))
    meta = json.loads((tmp_path / "p" / "prior.json").read_text())
    meta["unet"]["base_channels"] = 16
    (tmp_path / "p" / "prior.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"prior\.safetensors: the weights do not match.*shape of"):
        load_prior_folder(tmp_path / "p")
    (tmp_path / "p" / "prior.safetensors").write_bytes(b"garbage")
    meta["unet"]["base_channels"] = 8
    (tmp_path / "p" / "prior.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not a readable safetensors"):
        load_prior_folder(tmp_path / "p")
    with pytest.raises(DataError, match="no prior folder or shipped prior named 'nope'"):
        load_prior("nope")
    with pytest.raises(ConfigError, match="t_sampling"):
        TrainConfig(t_sampling="beta")


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "prior.safetensors"))


def test_resume_after_sigkill_continues_bit_for_bit(tmp_path):
    from ctflow.cli import main

    ref = tmp_path / "ref"
    torch.set_num_threads(1)
    try:
        assert main(_cli(ref)) == 0
    finally:
        torch.set_num_threads(2)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ctflow.cli", *_cli(run)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        ck = run / "checkpoints" / "latest.json"
        if ck.is_file() and json.loads(ck.read_text())["step"] >= 20:
            proc.send_signal(signal.SIGKILL)
            killed_at = json.loads(ck.read_text())["step"]
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_at is not None and killed_at < 60, "the run finished before it could be killed"
    assert not (run / "prior.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "ctflow.cli", *_cli(run, extra=["--resume"])], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    st = load_training_checkpoint(latest_checkpoint(run / "checkpoints"))[3]
    steps = [s for s, _ in st["losses"]]
    assert steps == list(range(1, 61))  # continued, no silent restart, nothing repeated
    ref_st = load_training_checkpoint(latest_checkpoint(ref / "checkpoints"))[3]
    assert st["losses"] == ref_st["losses"]
    a, b = _weights(ref), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-for-bit on the same machine
    # a checkpoint exports as a prior folder with the EMA weights (the final export equals the last checkpoint)
    assert main(["export-prior", str(run), "--out", str(tmp_path / "exported")]) == 0
    exp = load_prior(tmp_path / "exported")
    assert exp.meta["card"]["steps"] == 60 and exp.meta["card"]["exported_from"] == "step-0000060"
    c = _weights(run)
    assert all(torch.equal(exp.net.state_dict()[k], c[k]) for k in c)


def test_resume_refuses_a_different_model(tmp_path):
    from ctflow.cli import main

    assert main(_cli(tmp_path, steps=10)) == 0
    assert main(_cli(tmp_path, steps=20, extra=["--resume", "--base-channels", "16"])) == 2


def test_ddp_two_processes_match_one_process_with_the_doubled_batch(tmp_path):
    from ctflow.cli import main

    torch.set_num_threads(1)
    try:
        assert main(_cli(tmp_path / "one", steps=6, batch=8)) == 0
    finally:
        torch.set_num_threads(2)
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ctflow.cli", *_cli(tmp_path / "two", steps=6, batch=8)],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(a[k], UNet(TINY).state_dict()[k]) for k in a)  # it did train


@pytest.mark.parametrize("name,size", [("phantom-28", 28), ("phantom-64", 64), ("default", 64)])
def test_shipped_priors_load_offline_and_denoise(name, size):
    from ctflow.data.abdomen import AbdomenPhantomDataset

    prior = load_prior(name)
    assert prior.image_size == size and prior.meta["card"]["training"]["data"] == "phantoms"
    held = AbdomenPhantomDataset(16, size=size, seed=424242, kind="mixed", ellipse_fraction=0.2)
    x1 = torch.stack([held[i][0] for i in range(16)])
    x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in (0.5, 0.9):
            den = prior.denoise(t * x1 + (1 - t) * x0, t)
            err = float(((den - x1) ** 2).mean().sqrt())
            baseline = float(((x1.mean(0, keepdim=True) - x1) ** 2).mean().sqrt())
            assert err < 0.6 * baseline  # trained weights: far better than the best constant image
    with pytest.raises(DataError, match="no prior folder or shipped prior named 'phantom-99'.*phantom-28.*phantom-64"):
        load_prior("phantom-99")


def test_time_budget_stops_with_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    """A run cut by --time-budget and resumed equals one uninterrupted run; the batches built by a
    DataLoader worker (default) equal those built on the training thread (--workers 0)."""
    from ctflow.cli import main

    torch.set_num_threads(1)
    try:
        assert main(_cli(tmp_path / "ref", steps=30, extra=["--workers", "0"])) == 0
        assert main(_cli(tmp_path / "cut", steps=30, extra=["--time-budget", "1e-7"])) == 0  # stops after step 1
        st = load_training_checkpoint(latest_checkpoint(tmp_path / "cut" / "checkpoints"))[3]
        assert st["step"] < 30 and not (tmp_path / "cut" / "prior.json").exists()
        assert main(_cli(tmp_path / "cut", steps=30, extra=["--resume"])) == 0
    finally:
        torch.set_num_threads(2)
    ref = load_training_checkpoint(latest_checkpoint(tmp_path / "ref" / "checkpoints"))[3]
    cut = load_training_checkpoint(latest_checkpoint(tmp_path / "cut" / "checkpoints"))[3]
    assert [s for s, _ in cut["losses"]] == list(range(1, 31))
    assert cut["losses"] == ref["losses"]
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_starts_at_the_priors_weights(tmp_path):
    from ctflow.training.train import train

    torch.manual_seed(123)
    src = UNet(TINY)
    save_prior(tmp_path / "src", src)
    cfg = TrainConfig(size=16, batch_size=2, steps=1, lr=1e-9, warmup=1, checkpoint_every=1, val_every=1,
                      sample_every=100, n_val=2, init_from=str(tmp_path / "src"))
    torch.set_num_threads(1)
    try:
        train(cfg, TINY, tmp_path / "run", progress=False, workers=0)
    finally:
        torch.set_num_threads(2)
    m = load_training_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))[0]
    ref = src.state_dict()
    assert all(torch.allclose(m[k], ref[k], atol=1e-6) for k in ref)  # one step at lr 1e-9 barely moves
    fresh = UNet(TINY).state_dict()  # and a random start would be far from it
    assert max(float((fresh[k] - ref[k]).abs().max()) for k in ref if ref[k].dtype.is_floating_point) > 0.05
    other = UNetConfig(image_size=16, base_channels=16, channel_mults=(1, 2))
    with pytest.raises(ConfigError, match="init_from"):
        train(cfg, other, tmp_path / "bad", progress=False, workers=0)
