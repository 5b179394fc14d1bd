"""The install story: pyproject ranges, the CI pins and environment.yml agree; CI runs the README's command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
