"""The install story: pyproject ranges, the CI pins and environment.yml agree; CI runs the README's command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
CORE = {"torch", "astra-toolbox", "odl", "pydicom", "h5py", "matplotlib"}  # + medmnist as an extra


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _ci_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "ci.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = list(r.specifier)
            assert spec.operator == "==", f"CI constraint {line!r} must be an exact pin"
            pins[_norm(r.name)] = spec.version
    return pins


def _environment() -> tuple[dict[str, SpecifierSet], dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda, pip_pins, pip_other = {}, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-"):
                    pip_other.append(line)
                    continue
                r = Requirement(line)
                pip_pins[_norm(r.name)] = str(r.specifier)
        else:
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep)
            conda[_norm(m.group(1))] = SpecifierSet(m.group(2).replace("=", "==") if re.match(r"^=\d", m.group(2)) else m.group(2))
    return conda, pip_pins, pip_other


def test_core_dependencies_declared_with_ranges():
    deps = {_norm(Requirement(d).name): Requirement(d) for d in _pyproject()["project"]["dependencies"]}
    assert CORE <= set(deps)
    for name, req in deps.items():
        assert not any(s.operator == "==" for s in req.specifier), f"pyproject pins {name} exactly; use a range"
    assert "medmnist" in {_norm(Requirement(d).name) for d in _pyproject()["project"]["optional-dependencies"]["medmnist"]}


def test_ci_pins_satisfy_pyproject_and_pin_cpu_torch():
    pins = _ci_pins()
    assert pins["torch"] == "2.13.0"  # the CPU build on these machines; an unpinned torch pulls CUDA
    for d in _pyproject()["project"]["dependencies"]:
        r = Requirement(d)
        assert _norm(r.name) in pins, f"{r.name} has no pin in requirements/ci.txt"
        assert r.specifier.contains(pins[_norm(r.name)]), f"pin {r.name}=={pins[_norm(r.name)]} violates {r}"


def test_environment_yml_agrees_with_pip_requirements():
    conda, pip_pins, pip_other = _environment()
    pins = _ci_pins()
    assert "-e ." in pip_other
    assert "python" in conda and conda["python"].contains("3.11")
    for d in _pyproject()["project"]["dependencies"]:
        name = _norm(Requirement(d).name)
        assert (name in conda) != (name in pip_pins), f"{name} must appear exactly once in environment.yml"
        if name in pip_pins:
            assert pip_pins[name] == f"=={pins[name]}", f"environment.yml pip pin of {name} differs from CI"
        else:
            assert conda[name].contains(pins[name]), f"environment.yml bound {conda[name]} excludes CI's {name} {pins[name]}"
    assert pip_pins["torch"] == "==2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    first = blocks[0].split("\n")
    assert "make demo" in first[0] or "make demo" in blocks[0]
    assert "make test" in blocks[0]
    assert re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert "-c requirements/ci.txt" in makefile  # the venv install uses the CPU pins


def test_test_extra_is_pinned_for_ci_and_listed_for_conda():
    conda, pip_pins, _ = _environment()
    pins = _ci_pins()
    test_deps = [Requirement(d) for d in _pyproject()["project"]["optional-dependencies"]["test"]]
    assert {"pytest", "nbclient", "nbformat", "ipykernel"} <= {_norm(r.name) for r in test_deps}
    for r in test_deps:
        name = _norm(r.name)
        assert name in pins and r.specifier.contains(pins[name]), f"test dependency {r} has no matching CI pin"
        assert name in conda or name in pip_pins, f"test dependency {name} missing from environment.yml"


def test_presets_are_package_data():
    cfg = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "*.yaml" in cfg["ctflow.geometry.preset_files"]
    assert len(list((ROOT / "ctflow" / "geometry" / "preset_files").glob("*.yaml"))) >= 30


# ---- the wheel: package data found with importlib.resources, installable offline -------------------
WHEEL_SOURCES = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "ctflow"]
#: package data every wheel must carry (paths inside the wheel)
WHEEL_DATA = [
    "ctflow/assets/priors/phantom-64/prior.json",
    "ctflow/assets/priors/phantom-64/prior.safetensors",
    "ctflow/assets/priors/phantom-64/README.md",
    "ctflow/assets/priors/phantom-28/prior.json",
    "ctflow/assets/priors/phantom-28/prior.safetensors",
    "ctflow/assets/sinograms/abdomen-64-sparse30.h5",
    "ctflow/assets/sinograms/abdomen-64-sparse30_truth.h5",
    "ctflow/geometry/preset_files/fan-512-clinical.yaml",
    "ctflow/geometry/preset_files/parallel-64-sparse30.yaml",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources (so the checkout gets no build/ folder), offline:
    no build isolation, no index — the build backend (setuptools) comes from the test environment."""
    pytest.importorskip("setuptools", minversion="77")
    src = tmp_path_factory.mktemp("src")
    for name in WHEEL_SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("ctflow-*.whl")
    return whl


def test_wheel_contains_priors_presets_scan_and_license(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    missing = [n for n in WHEEL_DATA if n not in names]
    assert not missing, f"the wheel lacks package data: {missing}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert len([n for n in names if n.startswith("ctflow/geometry/preset_files/")]) >= 30
    # every data file inside the package directory ships (priors, geometry and solver presets, the scan, …)
    data = [q.relative_to(ROOT).as_posix() for q in (ROOT / "ctflow").rglob("*")
            if q.is_file() and q.suffix not in (".py", ".pyc") and "__pycache__" not in q.parts]
    assert not [d for d in data if d not in names], "package data missing from the wheel"
    assert "License-Expression: GPL-3.0-or-later" in meta
    assert not any(n.startswith(("tests/", "data/", "training/", "tools/")) for n in names)
    size = wheel.stat().st_size
    assert 5e6 < size < 40e6, f"wheel size {size / 1e6:.1f} MB"  # the two priors are ~14 MB


def test_license_file_is_gpl3():
    text = (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert _pyproject()["project"]["license"] == "GPL-3.0-or-later"


def test_shipped_data_are_found_through_importlib_resources():
    from ctflow.assets import bundled_sinogram, shipped_priors_dir
    from ctflow.priors.store import prior_folder

    assert shipped_priors_dir() == ROOT / "ctflow" / "assets" / "priors"
    assert prior_folder("default") == shipped_priors_dir() / "phantom-64"
    assert bundled_sinogram().is_file() and bundled_sinogram(truth=True).is_file()
    src = (ROOT / "ctflow" / "priors" / "store.py").read_text() + (ROOT / "ctflow" / "demo.py").read_text()
    assert '"data"' not in src and "parents[" not in src  # no repository-relative data paths left


@pytest.mark.slow
def test_wheel_installs_offline_and_runs_load_prior_and_demo(wheel, tmp_path):
    """Install the wheel into a throwaway venv that sees the test environment's packages (torch, ASTRA, …)
    but not the checkout, then run load_prior("default") and `ctflow demo --quick` from elsewhere."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    purelib = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # a plain path entry (not a site dir): the test environment's packages without its editable ctflow
    (Path(purelib) / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-index", "--no-deps", "-q",
                        str(wheel)], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = (
        "import ctflow, pathlib; from ctflow.priors import load_prior; import sys\n"
        f"assert pathlib.Path(ctflow.__file__).resolve().is_relative_to(pathlib.Path({str(venv)!r}).resolve()), ctflow.__file__\n"
        "p = load_prior('default'); assert p.image_size == 64\n"
        "assert not any(q.requires_grad for q in p.parameters())\n"
        "from ctflow.assets import bundled_sinogram; print(bundled_sinogram())\n"
    )
    r = subprocess.run([str(vpy), "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(venv.resolve()) in str(Path(r.stdout.strip()).resolve())
    out = tmp_path / "demo"
    r = subprocess.run([str(venv / "bin" / "ctflow"), "demo", "--quick", "--out", str(out)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (out / "demo.png").is_file() and (out / "metrics.json").is_file()


def _readme_outside_generated_block() -> str:
    """The README without the block `tools/benchmark_readme.py` splices in (generated from docs/results/)."""
    text = (ROOT / "README.md").read_text()
    return re.sub(r"<!-- ctflow-benchmark:begin -->.*?<!-- ctflow-benchmark:end -->", "", text, flags=re.DOTALL)


def test_readme_points_only_into_the_repository():
    text = _readme_outside_generated_block()
    assert not re.search(r"(?<![\w.])(/tmp/|/home/|/root/|/work/|/opt/|\.\./)", text), "a path outside the repository"
    assert "data/priors" not in text and "data/sinograms" not in text  # the shipped data are package data
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):  # every relative link and image exists
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"
    assert not re.search(r"^- (PASS|MISS)\b|Target checks", text, re.MULTILINE)  # no internal target-check lines
