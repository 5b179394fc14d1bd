"""``ctflow tune``: seeded, resumable optuna studies that write presets; search spaces beside the options."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("optuna")

from ctflow.cli import main  # noqa: E402
from ctflow.solvers import SOLVERS  # noqa: E402
from ctflow.solvers.presets import load_preset  # noqa: E402
from ctflow.studies import evaluation, quality  # noqa: E402
from ctflow.studies.tune import TUNE_SEED, TuneTask, parse_noise, search_space, tune  # noqa: E402


def test_tuning_seed_disjoint_from_training_and_evaluation():
    assert TUNE_SEED not in (0, 7919, quality.EVAL_SEED, evaluation.HELD_OUT_SEED)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_method_declares_a_valid_search_space(name):
    space, fixed = search_space(name)
    assert space, f"{name} declares no search space"
    fields = {f.name for f in dataclasses.fields(SOLVERS[name].Options)}
    assert set(space) <= fields and set(fixed) <= fields
    for k, spec in space.items():
        assert spec[0] in ("float", "logfloat", "int", "choice"), (name, k)
    # the corners of the space are valid options
    lo = {k: (v[1][0] if v[0] == "choice" else v[1]) for k, v in space.items()}
    hi = {k: (v[1][-1] if v[0] == "choice" else v[2]) for k, v in space.items()}
    SOLVERS[name](**(fixed | lo))
    SOLVERS[name](**(fixed | hi))


def test_tune_writes_a_preset_and_resumes(tmp_path):
    task = TuneTask(method="tv", geometry="parallel-28-sparse8", noise="gaussian:0.02", trials=3, n_images=2,
                    overrides={"iterations": 20})
    pre = tune(task, tmp_path, progress=False, log=lambda s: None)
    path = tmp_path / f"{pre['name']}.yaml"
    loaded = load_preset(path)
    assert loaded["method"] == "tv" and loaded["tuning"]["trials"] == 3 and loaded["options"]["iterations"] == 20
    assert loaded["geometry"]["n_angles"] == 8 and loaded["noise"]["sigma_rel"] > 0 and loaded["prior"] is None
    assert "4242" in loaded["tuning"]["tuning_set"] and loaded["tuning"]["noise_std"] == "estimated"
    assert (tmp_path / "tune.db").is_file()
    again = tune(dataclasses.replace(task, trials=4), tmp_path, progress=False, log=lambda s: None)
    assert again["tuning"]["trials"] == 4  # one more trial, the first three reused
    assert again["score"]["psnr"] >= pre["score"]["psnr"]


def test_cli_tune_and_errors(tmp_path, capsys):
    assert main(["tune", "--method", "fbp", "--geometry", "parallel-28-sparse8", "--noise", "poisson:1e4",
                 "--trials", "2", "--n-images", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    assert list(tmp_path.glob("fbp--none--parallel-28-sparse8--poisson-10000.yaml"))
    assert main(["tune", "--out", str(tmp_path)]) == 2  # neither --method nor --all
    assert "give --method" in capsys.readouterr().err
    with pytest.raises(Exception, match="gaussian:REL"):
        parse_noise("uniform:3")
