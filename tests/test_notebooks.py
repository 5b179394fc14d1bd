"""The study notebooks: stored without outputs, each with a tagged parameter cell, and each executed
end to end (nbclient, a fresh kernel) with a quick setting injected after its parameter cell, the way
papermill does. A cell error fails the test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_execute", ROOT / "notebooks" / "execute.py")
notebook_execute = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_execute)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_regularization_terms", "03_fbp_and_baselines", "04_temporal_resolution",
            "05_fast_samplers", "06_uncertainty"]

# Quick settings: 28² prior, 2 images, a handful of iterations — every cell runs, the numbers mean little.
QUICK = {
    "01_quickstart": {"PRIOR": "phantom-28", "MSFLOW": {"rho": 100.0, "box": (0.0, 1.0), "blend": 0.5, "iterations": 3}},
    "02_regularization_terms": {"PRIOR": "phantom-28", "N_IMAGES": 2, "ITERATIONS": 3, "STEPS": 8,
                                "WEIGHTS": {"radial_weight": [0.3, 3.0], "tv_weight": [0.5]}},
    "03_fbp_and_baselines": {"PRIOR": "phantom-28", "N_IMAGES": 2, "ANGLES": [8, 30], "NOISE_LEVELS": [0.01, 0.03],
                             "QUICK_OPTIONS": True},
    "04_temporal_resolution": {"PRIOR": "phantom-28", "N_IMAGES": 2, "STEPS": [4, 8], "DFLOW_ITERATIONS": 1,
                               "MSFLOW_ITERATIONS": 3, "MEMORY": True},
    "05_fast_samplers": {"PRIOR": "phantom-28", "N_IMAGES": 2, "NFES": [5, 10]},
    "06_uncertainty": {"PRIOR": "phantom-28", "N_IMAGES": 2, "N_SAMPLES": 4,
                       "METHODS": {"C-ΠGFM (10 NFE)": ("cpigfm", {"steps": 10}), "ΠGFM (20 NFE)": ("pigfm", {"steps": 20})}},
}


def _parameter_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def test_parameter_injection_goes_right_after_the_parameter_cell():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    i = _parameter_cell(nb)
    notebook_execute.inject_parameters(nb, {"N_IMAGES": 3, "EVAL_SET": "x.npz"})
    assert nb.cells[i + 1].source.splitlines()[1:] == ["N_IMAGES = 3", "EVAL_SET = 'x.npz'"]
    nb.cells[i].metadata["tags"] = []
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters'"):
        notebook_execute.inject_parameters(nb, {})


def test_every_study_notebook_is_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"
    params = nb.cells[_parameter_cell(nb)].source
    for name in QUICK[path.stem]:  # the quick setting only overrides parameters the notebook declares
        assert f"\n{name} = " in "\n" + params, f"{path.name}: parameter {name} not in the parameter cell"
    assert "OUT_DIR = " in params


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_with_quick_setting(path, tmp_path):
    values = QUICK[path.stem] | {"OUT_DIR": str(tmp_path / "out")}
    setup = "import torch, matplotlib\ntorch.set_num_threads(1)\nmatplotlib.use('Agg')"
    nb = notebook_execute.execute(path, values, cwd=tmp_path, timeout=600, setup=setup)  # raises on a cell error
    figures = list((tmp_path / "out").glob("*.png"))
    assert figures, f"{path.name} wrote no figure to OUT_DIR"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, json.dumps(errors)[:2000]
