"""HDF5 sinogram/reconstruction files: round trips, plain (LoDoPaB-style) files, atomic writes and
every error a bad file can raise."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ctflow import load_geometry
from ctflow.errors import DataError, GeometryError, NonFiniteError, ShapeError
from ctflow.io.hdf5 import (
    ImageFile,
    SinogramFile,
    read_image_h5,
    read_sinogram_h5,
    write_image_h5,
    write_sinogram_h5,
)

PRESETS = ["parallel-64-sparse30", "fan-64-sparse60"]


def _sino(geom, n=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = geom.sinogram_shape if n is None else (n, *geom.sinogram_shape)
    return rng.standard_normal(shape).astype(np.float32)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_sinogram_round_trip(tmp_path, preset):
    g = load_geometry(preset)
    y = _sino(g)
    out = write_sinogram_h5(tmp_path / "s.h5", y, g)
    assert out == tmp_path / "s.h5"
    r = read_sinogram_h5(out)
    assert isinstance(r, SinogramFile)
    assert r.geometry == g and type(r.geometry) is type(g)
    assert r.sinogram.dtype == np.float32 and np.array_equal(r.sinogram, y)
    assert r.noise == {} and r.path == out
    assert r.attrs["kind"] == "sinogram" and r.attrs["ctflow_version"]
    assert "T" in r.attrs["created"]
    with h5py.File(out, "r") as f:
        assert f["exchange/data"].dtype == np.float32
        theta = f["exchange/theta"][()]
        assert theta.dtype == np.float64
        np.testing.assert_array_equal(theta, np.degrees(np.asarray(g.angles)))
        assert json.loads(f.attrs["ctflow_geometry"]) == g.to_dict()
    assert _files(tmp_path) == ["s.h5"]  # no temp files left


@pytest.mark.parametrize("preset", PRESETS)
def test_sinogram_stack_round_trip_chunked_and_compressed(tmp_path, preset):
    g = load_geometry(preset)
    y = _sino(g, n=3)
    write_sinogram_h5(tmp_path / "s.h5", y, preset)  # preset name accepted too
    with h5py.File(tmp_path / "s.h5", "r") as f:
        ds = f["exchange/data"]
        assert ds.shape == (3, *g.sinogram_shape)
        assert ds.compression == "gzip"
        assert ds.chunks == (1, *g.sinogram_shape)  # one sinogram per chunk
    r = read_sinogram_h5(tmp_path / "s.h5")
    assert np.array_equal(r.sinogram, y) and r.geometry == g


def test_single_sinogram_is_one_chunk_and_compression_can_be_off(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    write_sinogram_h5(tmp_path / "a.h5", _sino(g), g)
    write_sinogram_h5(tmp_path / "b.h5", _sino(g), g, compression=None)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["exchange/data"].chunks == g.sinogram_shape and f["exchange/data"].compression == "gzip"
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert f["exchange/data"].compression is None


def test_noise_metadata_and_extra_attrs_round_trip(tmp_path):
    from ctflow.physics.noise import GaussianNoise

    g = load_geometry("parallel-64-sparse30")
    noise = {"model": "poisson", "I0": 1e4, "mu_scale": np.float64(0.02), "seed": 7, "tags": ["a", "b"]}
    write_sinogram_h5(tmp_path / "s.h5", _sino(g), g, noise=noise, attrs={"patient": "P001", "dose": 0.25})
    r = read_sinogram_h5(tmp_path / "s.h5")
    assert r.noise == {"model": "poisson", "I0": 1e4, "mu_scale": 0.02, "seed": 7, "tags": ["a", "b"]}
    assert r.attrs["patient"] == "P001" and r.attrs["dose"] == 0.25
    # a noise model object is stored as its fields plus its class name
    write_sinogram_h5(tmp_path / "m.h5", _sino(g), g, noise=GaussianNoise(sigma=0.1))
    assert read_sinogram_h5(tmp_path / "m.h5").noise["model"] == "GaussianNoise"


def test_torch_input_is_accepted(tmp_path):
    import torch

    g = load_geometry("parallel-64-sparse30")
    y = _sino(g)
    write_sinogram_h5(tmp_path / "s.h5", torch.from_numpy(y), g)
    assert np.array_equal(read_sinogram_h5(tmp_path / "s.h5").sinogram, y)


@pytest.mark.parametrize("n", [None, 2])
def test_image_round_trip(tmp_path, n):
    g = load_geometry("fan-64-sparse60")
    rng = np.random.default_rng(1)
    img = rng.random((64, 64) if n is None else (n, 64, 64)).astype(np.float32)
    params = {"filter": "ram-lak", "steps": np.int64(50), "lam": 0.5}
    write_image_h5(tmp_path / "r.h5", img, geometry=g, method="fbp", params=params)
    r = read_image_h5(tmp_path / "r.h5")
    assert isinstance(r, ImageFile)
    assert np.array_equal(r.image, img) and r.image.dtype == np.float32
    assert r.method == "fbp" and r.params == {"filter": "ram-lak", "steps": 50, "lam": 0.5}
    assert r.geometry == g and r.pixel_size == g.pixel_size
    assert r.attrs["kind"] == "reconstruction" and r.attrs["ctflow_version"]
    with h5py.File(tmp_path / "r.h5", "r") as f:
        ds = f["reconstruction/data"]
        assert ds.compression == "gzip"
        assert ds.chunks == ((64, 64) if n is None else (1, 64, 64))


def test_image_without_geometry(tmp_path):
    img = np.ones((5, 7), np.float32)
    write_image_h5(tmp_path / "r.h5", img, method="unet", pixel_size=0.5)
    r = read_image_h5(tmp_path / "r.h5")
    assert r.geometry is None and r.params == {} and r.pixel_size == 0.5 and r.method == "unet"
    write_image_h5(tmp_path / "q.h5", img, method="unet")
    assert read_image_h5(tmp_path / "q.h5").pixel_size is None


# --------------------------------------------------------------------------------------------
# plain (LoDoPaB-style) files
# --------------------------------------------------------------------------------------------
def test_lodopab_style_plain_file_with_supplied_geometry(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    y = _sino(g, n=4)
    p = tmp_path / "observation_train_000.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=y)
    with pytest.raises(DataError, match="no ctflow geometry.*geometry="):
        read_sinogram_h5(p)
    for geom in (g, "parallel-64-sparse30"):
        r = read_sinogram_h5(p, geometry=geom)
        assert np.array_equal(r.sinogram, y) and r.geometry == g and r.noise == {}
    # a geometry file path works too
    gfile = g.save(tmp_path / "geom.yaml")
    assert read_sinogram_h5(p, geometry=gfile).geometry == g
    # and a wrong geometry is caught by the shape check
    with pytest.raises(DataError, match="30 angles.*geometry has 60"):
        read_sinogram_h5(p, geometry="parallel-64-sparse60")


def test_dataset_argument_picks_a_dataset(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    y = _sino(g)
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("scans/sino", data=y.astype(np.float64))
        f.create_dataset("other", data=np.zeros(3))
    with pytest.raises(DataError, match="/scans/sino"):  # default names absent: lists what is there
        read_sinogram_h5(p, geometry=g)
    r = read_sinogram_h5(p, geometry=g, dataset="scans/sino")
    assert r.sinogram.dtype == np.float32 and np.array_equal(r.sinogram, y)
    with pytest.raises(DataError, match="no dataset 'nope'.*datasets present: .*/other"):
        read_sinogram_h5(p, geometry=g, dataset="nope")
    gt = tmp_path / "ground_truth.hdf5"
    with h5py.File(gt, "w") as f:
        f.create_dataset("data", data=np.zeros((2, 8, 8), np.float32))
    assert read_image_h5(gt, dataset="data").image.shape == (2, 8, 8)


def test_supplied_geometry_overrides_stored_one_with_a_warning(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)
    other = g.replace(detector_offset=0.25)
    with pytest.warns(UserWarning, match="differs"):
        assert read_sinogram_h5(tmp_path / "s.h5", geometry=other).geometry == other


# --------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    p = tmp_path / "nope.h5"
    with pytest.raises(DataError, match="file not found") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value) and e.value.path == str(p)
    with pytest.raises(DataError, match="nope.h5"):
        read_image_h5(p)
    with pytest.raises(DataError, match="not a file"):
        read_sinogram_h5(tmp_path)


def test_not_an_hdf5_file(tmp_path):
    p = tmp_path / "fake.h5"
    p.write_bytes(b"this is not HDF5" * 100)
    with pytest.raises(DataError, match="not an HDF5 file") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_image_h5(p)


def test_truncated_hdf5_file(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    p = write_sinogram_h5(tmp_path / "s.h5", _sino(g, n=3), g)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # what a non-atomic writer could leave
    with pytest.raises(DataError, match="cannot open the HDF5 file.*truncated") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)


def test_damaged_content_is_a_data_error(tmp_path, monkeypatch):
    g = load_geometry("parallel-64-sparse30")
    p = write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)

    def broken_read(self, *a, **kw):
        raise OSError("Can't synchronously read data (ran off end of input buffer while decoding)")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", broken_read)
    with pytest.raises(DataError, match="ran off end") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)


def test_no_expected_dataset_lists_what_is_there(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images/ct", data=np.zeros((2, 3)))
        f.create_dataset("labels", data=np.zeros(2, dtype=np.int64))
    with pytest.raises(DataError) as e:
        read_sinogram_h5(p, geometry="parallel-64-sparse30")
    msg = str(e.value)
    assert str(p) in msg and "/exchange/data" in msg and "/images/ct" in msg and "/labels" in msg
    with pytest.raises(DataError, match="/reconstruction/data.*/images/ct"):
        read_image_h5(p)


def test_wrong_reader_gets_a_hint(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    write_image_h5(tmp_path / "r.h5", np.zeros((64, 64)), geometry=g, method="fbp")
    write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)
    with pytest.raises(DataError, match="read_image_h5"):
        read_sinogram_h5(tmp_path / "r.h5")
    with pytest.raises(DataError, match="read_sinogram_h5"):
        read_image_h5(tmp_path / "s.h5")


def _rewrite(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.filterwarnings("ignore::ctflow.errors.DetectorCoverageWarning")
def test_angle_and_detector_count_mismatch(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    p = write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)
    other = load_geometry("parallel-64-sparse60")
    _rewrite(p, lambda f: f.attrs.__setitem__("ctflow_geometry", other.to_json()))
    with pytest.raises(DataError, match=r"has 30 angles .* geometry has 60") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)
    narrow = g.replace(n_detectors=80)
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"92 detector elements .* geometry has 80"):
        read_sinogram_h5(p, geometry=narrow)


def test_theta_disagreeing_with_geometry(tmp_path):
    g = load_geometry("fan-64-sparse60")
    p = write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)

    def nudge(f):
        th = f["exchange/theta"][()]
        th[7] += 1e-6
        f["exchange/theta"][...] = th

    _rewrite(p, nudge)
    with pytest.raises(DataError, match=r"theta disagrees.*angle 7") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)
    # a round-off well below the tolerance passes
    _rewrite(p, lambda f: f["exchange/theta"].__setitem__(Ellipsis, np.degrees(np.asarray(g.angles)) + 1e-12))
    assert read_sinogram_h5(p).geometry == g

    # and a theta of the wrong length is named too
    def shorten(f):
        del f["exchange/theta"]
        f["exchange/theta"] = np.zeros(5)

    _rewrite(p, shorten)
    with pytest.raises(DataError, match="theta has 5 angles but the geometry has 60"):
        read_sinogram_h5(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_in_file(tmp_path, bad):
    g = load_geometry("parallel-64-sparse30")
    y = _sino(g, n=2)
    y[0, 3, 4] = bad
    y[1, 0, 0] = -np.inf
    p = tmp_path / "nan.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=y)
    with pytest.raises(DataError, match="contains 2 NaN/Inf") as e:
        read_sinogram_h5(p, geometry=g)
    assert str(p) in str(e.value)
    with pytest.raises(DataError, match="contains 2 NaN/Inf"):
        read_image_h5(p, dataset="data")


def test_corrupt_geometry_and_noise_attributes(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    p = write_sinogram_h5(tmp_path / "s.h5", _sino(g), g)
    _rewrite(p, lambda f: f.attrs.__setitem__("ctflow_geometry", '{"type": "parallel", "image_sh'))
    with pytest.raises(DataError, match="corrupt ctflow_geometry") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)
    _rewrite(p, lambda f: f.attrs.__setitem__("ctflow_geometry", json.dumps({"type": "cone"})))
    with pytest.raises(DataError, match="corrupt ctflow_geometry"):
        read_sinogram_h5(p)
    # the caller can still read the data by supplying the geometry
    assert read_sinogram_h5(p, geometry=g).geometry == g
    _rewrite(p, lambda f: f.attrs.__setitem__("ctflow_noise", "not json"))
    with pytest.raises(DataError, match="corrupt ctflow_noise"):
        read_sinogram_h5(p, geometry=g)
    q = write_image_h5(tmp_path / "r.h5", np.zeros((64, 64)), geometry=g, method="fbp")
    _rewrite(q, lambda f: f.attrs.__setitem__("ctflow_geometry", "[[["))
    with pytest.raises(DataError, match="corrupt ctflow_geometry"):
        read_image_h5(q)
    _rewrite(q, lambda f: (f.attrs.__setitem__("ctflow_geometry", g.to_json()), f.attrs.__setitem__("params", "[1")))
    with pytest.raises(DataError, match="corrupt params"):
        read_image_h5(q)


def test_image_shape_disagreeing_with_stored_geometry(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    q = write_image_h5(tmp_path / "r.h5", np.zeros((64, 64)), geometry=g, method="fbp")
    _rewrite(q, lambda f: f.attrs.__setitem__("ctflow_geometry", load_geometry("parallel-28-sparse30").to_json()))
    with pytest.raises(DataError, match=r"image_shape is \(28, 28\)"):
        read_image_h5(q)


# --------------------------------------------------------------------------------------------
# writer validation and atomicity
# --------------------------------------------------------------------------------------------
def test_writer_validates_shape_and_finiteness(tmp_path):
    g = load_geometry("parallel-64-sparse30")
    with pytest.raises(ShapeError, match="29 angles.*geometry has 30"):
        write_sinogram_h5(tmp_path / "s.h5", np.zeros((29, 92)), g)
    with pytest.raises(ShapeError, match="91 detector elements.*geometry has 92"):
        write_sinogram_h5(tmp_path / "s.h5", np.zeros((2, 30, 91)), g)
    with pytest.raises(ShapeError, match="shape"):
        write_sinogram_h5(tmp_path / "s.h5", np.zeros(30 * 92), g)
    y = _sino(g)
    y[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="1 NaN/Inf"):
        write_sinogram_h5(tmp_path / "s.h5", y, g)
    with pytest.raises(ShapeError, match="image_shape"):
        write_image_h5(tmp_path / "r.h5", np.zeros((32, 32)), geometry=g, method="fbp")
    with pytest.raises(ShapeError):
        write_image_h5(tmp_path / "r.h5", np.zeros(5), method="fbp")
    with pytest.raises(NonFiniteError):
        write_image_h5(tmp_path / "r.h5", np.full((4, 4), np.inf), method="fbp")
    with pytest.raises(GeometryError, match="pixel_size"):
        write_image_h5(tmp_path / "r.h5", np.zeros((64, 64)), geometry=g, method="fbp", pixel_size=2.0)
    with pytest.raises(DataError, match="reserved"):
        write_sinogram_h5(tmp_path / "s.h5", _sino(g), g, attrs={"kind": "x"})
    with pytest.raises(DataError, match="params"):
        write_image_h5(tmp_path / "r.h5", np.zeros((4, 4)), method="fbp", params={"f": object()})
    assert _files(tmp_path) == []  # nothing written by any failed call


def _fail_after_create(monkeypatch):
    """Make h5py create the dataset (bytes hit the disk) and then fail, as a crash mid-write would.
    Returns the list of files that were being written when the crash happened."""
    real = h5py.Group.create_dataset
    written = []

    def create_then_fail(self, *a, **kw):
        real(self, *a, **kw)
        self.file.flush()
        written.append(Path(self.file.filename))
        assert written[-1].stat().st_size > 0
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(h5py.Group, "create_dataset", create_then_fail)
    return written


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    g = load_geometry("parallel-64-sparse30")
    written = _fail_after_create(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        write_sinogram_h5(tmp_path / "s.h5", _sino(g, n=3), g)
    with pytest.raises(OSError, match="simulated crash"):
        write_image_h5(tmp_path / "r.h5", np.zeros((64, 64)), method="fbp")
    assert len(written) == 2 and all(w.parent == tmp_path and w.name.startswith(".") for w in written)
    assert _files(tmp_path) == []  # no truncated target, no temp file


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    g = load_geometry("parallel-64-sparse30")
    y = _sino(g)
    p = write_sinogram_h5(tmp_path / "s.h5", y, g)
    q = write_image_h5(tmp_path / "r.h5", np.ones((64, 64)), geometry=g, method="fbp")
    before = p.read_bytes(), q.read_bytes()

    _fail_after_create(monkeypatch)
    with pytest.raises(OSError):
        write_sinogram_h5(p, _sino(g, seed=5), g)
    with pytest.raises(OSError):
        write_image_h5(q, np.zeros((64, 64)), geometry=g, method="fbp")
    monkeypatch.undo()

    class Exploding:  # conversion to an array fails part-way
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("conversion failed")

    with pytest.raises((RuntimeError, ShapeError)):
        write_sinogram_h5(p, Exploding(), g)

    assert (p.read_bytes(), q.read_bytes()) == before
    assert _files(tmp_path) == ["r.h5", "s.h5"]
    assert np.array_equal(read_sinogram_h5(p).sinogram, y)
