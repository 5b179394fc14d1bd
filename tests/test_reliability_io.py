"""Reliability of the I/O boundary beyond random mutations: the HDF5 file that makes libhdf5 spin, declared
sizes against the limits, NaN/Inf refused, atomic DICOM-CT-PD folders with a manifest, stale temp files,
and the batch CLI that survives any bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

import ctflow
from ctflow.cli import main
from ctflow.errors import CTFlowError, DataError, LimitError, NonFiniteError, TimeLimitError
from ctflow.files import atomic_path, remove_stale_temps
from ctflow.io import (
    read_any,
    read_dicom_ctpd,
    read_dicom_image,
    read_sinogram_h5,
    write_dicom_ctpd,
    write_dicom_image,
    write_sinogram_h5,
)
from ctflow.limits import current, limits

ROOT = Path(__file__).resolve().parents[1]
G = ctflow.ParallelBeamGeometry(12, 8)
FAN = ctflow.FanBeamGeometry(image_shape=12, angles=6, source_to_isocenter=60.0, source_to_detector=110.0)


def _sino(path: Path, seed: int = 0) -> Path:
    return write_sinogram_h5(path, np.random.default_rng(seed).random(G.sinogram_shape, dtype=np.float32), G)


def _zero_gcol_object(path: Path) -> Path:
    """Zero the header of the second object of the file's global heap (index 0, size 0): libhdf5 then loops
    forever when it reads the string attributes (the spin reported in issue 14)."""
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"GCOL")
    first_size = int.from_bytes(raw[pos + 24 : pos + 32], "little")
    obj2 = pos + 16 + 16 + (first_size + 7) // 8 * 8
    raw[obj2 : obj2 + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    return path


def _overflow_geometry(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        g = json.loads(f.attrs["ctflow_geometry"])
        g["n_detectors"] = 10**400
        f.attrs["ctflow_geometry"] = json.dumps(g)
    return path


# ---- HDF5 ------------------------------------------------------------------------------------
def test_hdf5_global_heap_spin_is_refused_before_libhdf5_reads_it(tmp_path):
    bad = _zero_gcol_object(_sino(tmp_path / "spin.h5"))
    code = ("import sys; from ctflow.io import read_sinogram_h5\n"
            "try:\n    read_sinogram_h5(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - t0 < 100
    assert r.stdout.startswith("DataError") and "global heap" in r.stdout and str(bad) in r.stdout, r.stdout + r.stderr


def test_hdf5_huge_declared_sizes_and_overflowing_geometry(tmp_path):
    p = _overflow_geometry(_sino(tmp_path / "overflow.h5"))
    with pytest.raises(DataError, match=r"n_detectors.*digit number") as e:
        read_sinogram_h5(p)
    assert str(p) in str(e.value)
    q = _sino(tmp_path / "huge.h5")
    with h5py.File(q, "r+") as f:  # 10^9 views declared in a file of a few KB
        del f["exchange/data"], f["exchange/theta"]
        f.create_dataset("exchange/data", shape=(10**9, G.n_detectors), dtype="f4", chunks=(64, G.n_detectors))
        g = json.loads(f.attrs["ctflow_geometry"])
        g["angles"] = 10**9
        f.attrs["ctflow_geometry"] = json.dumps(g)
    with pytest.raises(CTFlowError, match="limit") as e:
        read_sinogram_h5(q)
    assert str(q) in str(e.value)


def test_limits_are_configurable_and_named(tmp_path, monkeypatch):
    p = _sino(tmp_path / "s.h5")
    with limits(max_array_bytes=256), pytest.raises(LimitError, match="max_array_bytes") as e:
        read_sinogram_h5(p)
    assert e.value.path == str(p) and "CTFLOW_MAX_ARRAY_BYTES" in str(e.value)
    monkeypatch.setenv("CTFLOW_MAX_ARRAY_BYTES", "1K")
    assert current().max_array_bytes == 1024
    with pytest.raises(LimitError):
        read_sinogram_h5(p)
    monkeypatch.delenv("CTFLOW_MAX_ARRAY_BYTES")
    assert read_sinogram_h5(p).sinogram.shape == G.sinogram_shape
    with pytest.raises(ctflow.errors.ConfigError):
        ctflow.limits.configure(max_array_bytes="lots")


def test_npz_bomb_and_npy_header_are_checked_before_allocating(tmp_path):
    from ctflow.io.arrays import NpzFile

    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, train_images=np.zeros((96, 512, 512), np.uint8), val_images=np.zeros((2, 8, 8), np.uint8))
    assert bomb.stat().st_size < 100_000
    with NpzFile(bomb) as z, pytest.raises(LimitError, match="max_compression"):
        z.read("train_images")
    npy = tmp_path / "huge.npy"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2), np.float32))
    header["shape"] = (10**9, 1000)
    with open(npy, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(bytes(64))
    with pytest.raises(LimitError, match="max_array_bytes") as e:
        read_any(npy)
    assert str(npy) in str(e.value)


# ---- non-finite data ---------------------------------------------------------------------------
def test_nan_and_infinite_rescale_are_refused(tmp_path):
    p = write_dicom_image(tmp_path / "a.dcm", np.zeros((8, 8)), 1.0)
    ds = pydicom.dcmread(p)
    ds["RescaleSlope"].value = "Infinity"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(NonFiniteError, match="RescaleSlope") as e:
        read_dicom_image(p)
    assert str(p) in str(e.value) and isinstance(e.value, DataError)
    np.save(tmp_path / "n.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(NonFiniteError, match="NaN"):
        read_any(tmp_path / "n.npy")


def test_pickled_arrays_are_never_loaded(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickle"):
        read_any(tmp_path / "o.npy")


# ---- atomic multi-file writes ------------------------------------------------------------------
def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_ctpd_folder_is_written_atomically(tmp_path, monkeypatch):
    y = np.random.default_rng(0).random(FAN.sinogram_shape)
    calls = []
    real = pydicom.Dataset.save_as

    def fail_third(self, filename, **kw):
        calls.append(filename)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, filename, **kw)

    monkeypatch.setattr(pydicom.Dataset, "save_as", fail_third)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_ctpd(tmp_path / "scan", y, FAN)
    assert _entries(tmp_path) == []  # no partial folder, no temp folder
    monkeypatch.undo()
    paths = write_dicom_ctpd(tmp_path / "scan", y, FAN)
    assert _entries(tmp_path) == ["scan"] and len(paths) == FAN.n_angles
    # rewriting replaces the folder as a whole (no stale views of the old scan)
    paths = write_dicom_ctpd(tmp_path / "scan", y[::2], FAN.subsample_views(2))
    assert _entries(tmp_path / "scan") == [p.name for p in paths] and len(paths) == 3
    # a folder with other files in it is not replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="other file"):
        write_dicom_ctpd(tmp_path / "mine", y, FAN)
    assert _entries(tmp_path / "mine") == ["notes.txt"]


def test_partial_or_mixed_ctpd_folder_is_an_error(tmp_path):
    y = np.random.default_rng(0).random(FAN.sinogram_shape)
    paths = write_dicom_ctpd(tmp_path / "scan", y, FAN)
    cut = tmp_path / "cut"
    cut.mkdir()
    for p in paths[:3]:
        shutil.copy(p, cut / p.name)
    with pytest.raises(DataError, match="incomplete scan.*6 views but 3 are missing") as e:
        read_dicom_ctpd(cut, image_shape=12)
    assert str(cut) in str(e.value)
    with pytest.warns(UserWarning, match="incomplete scan"):
        assert read_dicom_ctpd(cut, on_error="skip", image_shape=12).sinogram.shape == (3, FAN.n_detectors)
    other = write_dicom_ctpd(tmp_path / "other", y + 1, FAN)
    shutil.copy(other[2], paths[2])
    with pytest.raises(DataError, match="another scan"):
        read_dicom_ctpd(tmp_path / "scan", image_shape=12)
    # a view whose pixels changed after writing
    paths = write_dicom_ctpd(tmp_path / "scan", y, FAN)
    ds = pydicom.dcmread(paths[1])
    b = bytearray(ds.PixelData)
    b[0] ^= 1
    ds.PixelData = bytes(b)
    ds.save_as(paths[1], enforce_file_format=True)
    with pytest.raises(DataError, match="checksum") as e:
        read_dicom_ctpd(tmp_path / "scan", image_shape=12)
    assert paths[1].name in str(e.value)


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".s.{dead.pid}-0123456789ab.tmp.h5"
    live = tmp_path / f".s.{os.getpid()}-0123456789ab.tmp.h5"
    for p in (stale, live):
        p.write_bytes(b"partial")
        os.utime(p, (time.time() - 60, time.time() - 60))
    _sino(tmp_path / "s.h5")
    assert not stale.exists() and live.exists()
    assert remove_stale_temps(tmp_path / "s.h5") == []
    live.unlink()
    # an interrupted write (any exception, KeyboardInterrupt included) leaves nothing
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.h5") as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert _entries(tmp_path) == ["s.h5"]


# ---- the batch CLI ---------------------------------------------------------------------------------
def test_batch_reports_every_bad_input_by_name_and_goes_on(tmp_path, capsys):
    batch = tmp_path / "in"
    batch.mkdir()
    _sino(batch / "a_good.h5", 1)
    _overflow_geometry(_sino(batch / "b_overflow.h5"))
    _zero_gcol_object(_sino(batch / "c_spin.h5"))
    bad = _sino(batch / "d_nan.h5")
    with h5py.File(bad, "r+") as f:
        f["exchange/data"][0, 0] = np.nan
    (batch / "e_text.h5").write_text("not hdf5")
    _sino(batch / "f_good.h5", 2)
    out = tmp_path / "out"
    assert main(["reconstruct", str(batch), "--method", "fbp", "--out", str(out), "--time-limit", "120"]) == 1
    err = capsys.readouterr().err
    for name in ("b_overflow.h5", "c_spin.h5", "d_nan.h5", "e_text.h5"):
        assert f"skipped {batch / name}" in err
    assert "Traceback" not in err and "4 of 6 input(s) failed" in err
    assert _entries(out) == ["a_good_fbp.h5", "f_good_fbp.h5"]


def test_batch_time_limit_and_unexpected_exceptions(tmp_path, capsys, monkeypatch):
    import ctflow.io as cio
    from ctflow import solvers

    batch = tmp_path / "in"
    batch.mkdir()
    for name in ("a", "b", "c"):
        _sino(batch / f"{name}.h5")
    real_read = cio.read_any

    def slow_or_broken_read(path, **kw):
        if Path(path).name == "a.h5":
            time.sleep(60)  # a reader that never comes back (the worker is killed)
        return real_read(path, **kw)

    monkeypatch.setattr(cio, "read_any", slow_or_broken_read)

    def reconstruct(*a, **kw):  # the CLI reconstructs every input through ctflow.reconstruct
        raise ZeroDivisionError("a solver bug")

    monkeypatch.setattr(solvers, "reconstruct", reconstruct)
    t0 = time.monotonic()
    rc = main(["reconstruct", str(batch), "--method", "fbp", "--out", str(tmp_path / "o"), "--time-limit", "3"])
    assert rc == 1 and time.monotonic() - t0 < 50
    err = capsys.readouterr().err
    assert f"skipped {batch / 'a.h5'}" in err and "longer than 3 s" in err
    assert f"skipped {batch / 'b.h5'}" in err and "ZeroDivisionError: a solver bug" in err
    assert "3 of 3 input(s) failed" in err
    # a single input: the same problems are ctflow errors naming the file (exit status 2, no traceback)
    assert main(["reconstruct", str(batch / "b.h5"), "--method", "fbp", "--out", str(tmp_path / "x.h5")]) == 2
    assert "b.h5" in capsys.readouterr().err
    with pytest.raises(TimeLimitError):
        from ctflow.cli.reconstruct import read_isolated

        read_isolated(batch / "a.h5", timeout=1)
