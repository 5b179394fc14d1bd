"""Property-based tests (hypothesis) of the schema-validated configuration files: random geometry files
and prior.json files are either valid (finite, positive sizes) or refused with a ctflow error that names
the file; never a TypeError/AttributeError/RecursionError/OverflowError, never NaN accepted."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctflow.errors import ConfigError, CTFlowError, DataError, GeometryError, GeometryFileError
from ctflow.geometry import FanBeamGeometry, ParallelBeamGeometry, load_geometry
from ctflow.limits import limits
from ctflow.schemas import GEOMETRY_SCHEMA, parse_mapping, validate_mapping

_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-(10**3), 10**3) | st.sampled_from([0, -1, 2**31, 10**400, -(10**400)])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                      max_leaves=12)
positive = st.floats(min_value=1e-3, max_value=1e4) | values
geometry_docs = st.fixed_dictionaries(
    {"type": st.sampled_from(["parallel", "fan"]) | values},
    optional={
        "image_shape": st.integers(1, 64) | st.lists(st.integers(-2, 64), max_size=3) | values,
        "angles": st.integers(-2, 64) | st.lists(st.floats(allow_nan=True), max_size=5)
        | st.fixed_dictionaries({"count": st.integers(-1, 10**10) | values},
                                optional={"start_deg": values | st.floats(), "stop_deg": values | st.floats()})
        | values,
        "n_detectors": st.integers(-1, 200) | st.just(10**400) | values,
        "pixel_size": positive,
        "detector_spacing": positive,
        "detector_offset": st.floats(allow_nan=True, allow_infinity=True) | values,
        "source_to_isocenter": st.floats(min_value=-10, max_value=1e6) | values,
        "source_to_detector": st.floats(min_value=-10, max_value=1e6) | values,
        "detector_shape": st.sampled_from(["flat", "curved"]) | values,
        "name": st.text(max_size=10) | values,
        "extra_field": values,
    },
)


def _write(doc, path: Path) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(doc))
    else:
        path.write_text(yaml.safe_dump(doc))


def _finite_geometry(g) -> None:
    assert isinstance(g, (ParallelBeamGeometry, FanBeamGeometry))
    assert all(math.isfinite(a) for a in g.angles)
    for name in ("pixel_size", "detector_spacing", "source_to_isocenter", "source_to_detector"):
        v = getattr(g, name, 1.0)
        assert math.isfinite(v) and v > 0, (name, v)
    assert math.isfinite(g.detector_offset) and g.n_detectors >= 1


@_SETTINGS
@given(doc=geometry_docs, suffix=st.sampled_from([".yaml", ".json"]))
def test_random_geometry_files_are_valid_or_refused_naming_the_file(doc, suffix):
    folder = Path(tempfile.mkdtemp(prefix="ctflow-geom-"))
    try:
        path = folder / f"g{suffix}"
        try:
            _write(doc, path)
        except (ValueError, TypeError, RecursionError, OverflowError):
            return  # not serialisable: nothing to read
        with warnings.catch_warnings(), limits(max_array_bytes="16M"):
            warnings.simplefilter("ignore")
            try:
                g = load_geometry(path)
            except CTFlowError as e:
                assert isinstance(e, GeometryError) and str(path) in str(e), repr(e)
                return
        _finite_geometry(g)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@_SETTINGS
@given(unet=st.dictionaries(
    st.sampled_from(["image_size", "in_channels", "base_channels", "channel_mults", "num_res_blocks",
                     "attention_resolutions", "groups", "dropout", "bogus"]),
    st.integers(-2, 5000) | st.lists(st.integers(-1, 9), max_size=4) | values, max_size=8),
    top=st.one_of(st.just(None), values))
def test_random_prior_json_is_refused_naming_the_file(unet, top):
    from ctflow.priors.store import load_prior_folder

    folder = Path(tempfile.mkdtemp(prefix="ctflow-prior-"))
    try:
        meta = top if top is not None else {"format": "ctflow-prior/1", "architecture": "UNet", "unet": unet}
        try:
            (folder / "prior.json").write_text(json.dumps(meta))
        except (ValueError, TypeError, RecursionError, OverflowError):
            return
        (folder / "prior.safetensors").write_bytes(b"not weights")  # whatever the config, loading must fail cleanly
        with warnings.catch_warnings(), limits(max_array_bytes="16M"):
            warnings.simplefilter("ignore")
            with pytest.raises(CTFlowError) as info:
                load_prior_folder(folder)
        assert str(folder) in str(info.value), repr(info.value)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_schema_helper_for_other_config_files(tmp_path):
    """validate_mapping / parse_mapping: the helpers solver presets can use."""
    schema = {"type": "object", "properties": {"iterations": {"type": "integer", "minimum": 1},
                                               "rho": {"type": "number", "exclusiveMinimum": 0, "finite": True}},
              "additionalProperties": False}
    assert validate_mapping({"iterations": 3, "rho": 0.5}, schema, "preset x") == {"iterations": 3, "rho": 0.5}
    with pytest.raises(ConfigError, match=r"preset.yaml: preset: field rho: nan is not a finite number"):
        validate_mapping({"rho": float("nan")}, schema, "preset", path=tmp_path / "preset.yaml")
    with pytest.raises(ConfigError, match="field iterations: 0 is less than the minimum of 1"):
        validate_mapping({"iterations": 0}, schema, "preset")
    with pytest.raises(DataError, match="not UTF-8"):
        parse_mapping(b"a: \xff", "preset", path=tmp_path / "p.yaml")
    with pytest.raises(DataError, match="nested more than"):
        parse_mapping("a: " + "[" * 500 + "]" * 500, "preset", path=tmp_path / "p.yaml")
    with pytest.raises(DataError, match="max_config_nodes"):
        parse_mapping("a: &a [" + ",".join(["1"] * 10) + "]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join(["*" + chr(97 + i)] * 10) + "]\n" for i in range(7)),
            "preset", path=tmp_path / "p.yaml")
    assert validate_mapping({"type": "parallel", "image_shape": 8, "angles": 4},
                            GEOMETRY_SCHEMA, "g")["angles"] == 4


@pytest.mark.parametrize("text, pattern", [
    ("type: parallel\nimage_shape: 8\nangles: 4\nn_detectors: 1" + "0" * 400 + "\n", "n_detectors.*digit number.*maximum"),
    ("type: parallel\nimage_shape: 8\nangles: 4\npixel_size: .nan\n", "pixel_size: nan is not a finite number"),
    ("type: parallel\nimage_shape: 8\nangles: 1000000000000\n", "angles"),
    ("type: fan\nimage_shape: 8\nangles: {count: 2000000000}\nsource_to_isocenter: 60\nsource_to_detector: 110\n",
     "limit"),
    ("type: parallel\nimage_shape: 8\nangles: 4\ndetector_offset: 1.0e+308\npixel_size: 1.0e+300\n", "geometry"),
    (b"type: parallel\nname: \xff\n", "not UTF-8"),
    ("a: " + "[" * 100000 + "]" * 100000, "nested"),
    ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
])
def test_bad_geometry_files_name_the_file(tmp_path, text, pattern):
    p = tmp_path / "g.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with limits(max_array_bytes="16M"), pytest.raises(GeometryFileError, match=pattern) as info:
        load_geometry(p)
    assert info.value.path == str(p) and str(p) in str(info.value)
