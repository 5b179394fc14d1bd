"""Mutation fuzzer for ctflow's readers: ``make fuzz`` / ``python tools/fuzz.py --cases 10000``.

Builds small valid seed files for every reader (DICOM image and series, DICOM-CT-PD, HDF5 sinogram and
image, ``.npy``, the npz loaders of train-prior, benchmark and MedMNIST, geometry YAML and JSON, prior
folders: prior.json and weights), mutates them (bit flips, truncation, zeroed blocks, random bytes,
"interesting" integers over length fields, huge declared sizes, NaN/Inf injection, wrong types in
JSON/YAML, non-UTF-8 bytes, deep nesting, alias bombs, code-execution payloads, partial folders) and
calls the reader on each case in a worker process that is killed on a hang. Every outcome is one of:

* ``clean``: the reader returned, and what it returned is finite with positive finite sizes;
* ``ctflow error``: a :class:`ctflow.errors.CTFlowError` whose message names the case's file;
* ``other exception``, ``hang`` (no answer within ``--timeout``), ``memory`` (the worker's peak RSS
  grew by more than the configured ``max_array_bytes`` + 16 MiB, or a MemoryError/kill), ``non-finite
  as valid`` (NaN/Inf or a non-positive size returned without error), ``unnamed`` (a ctflow error that
  does not name the file) and ``crash`` (the worker died).

The first examples of every bad outcome are printed after the table (``--report FILE`` writes them
all as JSON). The tests (tests/test_reliability_*.py) import the seed and mutation code from here.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

READERS = (
    "dicom_image", "dicom_series", "dicom_ctpd", "h5_sinogram", "h5_image", "npy",
    "npz_train", "npz_benchmark", "npz_medmnist", "geometry_yaml", "geometry_json", "prior_json", "prior_weights",
)  # fmt: skip
OUTCOMES = ("clean", "ctflow error", "other exception", "hang", "memory", "non-finite as valid", "unnamed", "crash")
CANARY = "CANARY_EXECUTED"  # a payload that runs code creates this file in the case folder


# =================================================================================================
# seeds
# =================================================================================================
def _fan():
    import ctflow

    return ctflow.FanBeamGeometry(image_shape=12, angles=6, source_to_isocenter=60.0, source_to_detector=110.0,
                                  pixel_size=1.0)


def _parallel():
    import ctflow

    return ctflow.ParallelBeamGeometry(image_shape=12, angles=8, pixel_size=1.0)


def make_seeds(root: str | os.PathLike) -> dict[str, list[Path]]:
    """Valid input files/folders for every reader under ``root``: ``{reader: [seed paths]}``."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import RLELossless

    from ctflow.io import write_dicom_ctpd, write_dicom_image, write_dicom_series, write_image_h5, write_sinogram_h5

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    seeds: dict[str, list[Path]] = {r: [] for r in READERS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp, gf = _parallel(), _fan()
        # HDF5
        write_sinogram_h5(root / "sino.h5", rng.random(gp.sinogram_shape, dtype=np.float32), gp,
                          noise={"model": "gaussian", "relative_sigma": 0.01})
        write_sinogram_h5(root / "sino_fan_stack.h5", rng.random((2, *gf.sinogram_shape), dtype=np.float32), gf,
                          compression=None)
        seeds["h5_sinogram"] += [root / "sino.h5", root / "sino_fan_stack.h5"]
        write_image_h5(root / "img.h5", rng.random((12, 12), dtype=np.float32), geometry=gp, method="fbp",
                       params={"filter": "hann"})
        write_image_h5(root / "img_plain.h5", rng.random((2, 10, 10), dtype=np.float32), method="x", pixel_size=0.5,
                       compression=None)
        seeds["h5_image"] += [root / "img.h5", root / "img_plain.h5"]
        # npy
        np.save(root / "img.npy", rng.random((12, 12), dtype=np.float32))
        np.save(root / "stack.npy", rng.integers(0, 255, (2, 8, 8), dtype=np.uint8))
        seeds["npy"] += [root / "img.npy", root / "stack.npy"]
        # DICOM images
        write_dicom_image(root / "ct.dcm", rng.integers(-1000, 2000, (12, 12)).astype(float), (0.7, 0.7))
        ds = pydicom.dcmread(root / "ct.dcm")
        ds.compress(RLELossless)
        ds.save_as(root / "ct_rle.dcm", enforce_file_format=True)
        shutil.copy(get_testdata_file("CT_small.dcm"), root / "CT_small.dcm")
        seeds["dicom_image"] += [root / "ct.dcm", root / "ct_rle.dcm", root / "CT_small.dcm"]
        write_dicom_series(root / "series", rng.integers(-1000, 2000, (3, 10, 10)).astype(float), 0.8)
        seeds["dicom_series"].append(root / "series")
        # DICOM-CT-PD
        write_dicom_ctpd(root / "ctpd", rng.random(gf.sinogram_shape) * 3, gf, noise={"model": "poisson", "I0": 1e4})
        write_dicom_ctpd(root / "ctpd_other", rng.random(gf.sinogram_shape) * 3, gf)  # to mix views of two scans
        seeds["dicom_ctpd"].append(root / "ctpd")
        # npz (MedMNIST layout)
        arrays = {f"{s}_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in
                  (("train", 6), ("val", 3), ("test", 4))}
        arrays.update({f"{s}_labels": rng.integers(0, 11, (n, 1), dtype=np.uint8) for s, n in
                       (("train", 6), ("val", 3), ("test", 4))})
        np.savez_compressed(root / "medmnist_c.npz", **arrays)
        np.savez(root / "medmnist_u.npz", **arrays)
        for r in ("npz_train", "npz_benchmark", "npz_medmnist"):
            seeds[r] += [root / "medmnist_c.npz", root / "medmnist_u.npz"]
        # geometry files
        for g, stem in ((gp, "parallel"), (gf, "fan")):
            g.save(root / f"{stem}.yaml")
            g.save(root / f"{stem}.json")
            seeds["geometry_yaml"].append(root / f"{stem}.yaml")
            seeds["geometry_json"].append(root / f"{stem}.json")
        (root / "spec.yaml").write_text("type: fan\nimage_shape: [12, 12]\nangles: {count: 6, start_deg: 0, stop_deg: 360}\n"
                                        "source_to_isocenter: 60\nsource_to_detector: 110\ndetector_shape: curved\n")
        seeds["geometry_yaml"].append(root / "spec.yaml")
        # prior folder
        import torch

        from ctflow.priors.store import save_prior
        from ctflow.priors.unet import UNet, UNetConfig

        torch.manual_seed(0)
        save_prior(root / "prior", UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), groups=4)),
                   card={"note": "fuzz seed"})
        seeds["prior_json"].append(root / "prior")
        seeds["prior_weights"].append(root / "prior")
    return seeds


# =================================================================================================
# byte-level mutations
# =================================================================================================
_INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 2**40, 2**62, 2**63 - 1, 2**64 - 1)


def _bitflip(b: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)


def _byteset(b: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)


def _interesting(b: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        size = rng.choice((1, 2, 4, 8))
        if len(b) <= size:
            return
        v = rng.choice(_INTERESTING) if rng.random() < 0.8 else rng.getrandbits(8 * size)
        v &= (1 << (8 * size)) - 1
        i = rng.randrange(len(b) - size)
        b[i : i + size] = v.to_bytes(size, rng.choice(("little", "big")))


def _truncate(b: bytearray, rng: random.Random) -> None:
    del b[rng.randrange(len(b)) :]


def _zero_block(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b))
    n = rng.choice((16, 64, 256, 1024, 4096))
    b[i : i + n] = bytes(len(b[i : i + n]))


def _random_block(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b))
    n = rng.randint(1, 512)
    b[i : i + n] = rng.randbytes(len(b[i : i + n]))


def _insert(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b) + 1)
    b[i:i] = rng.randbytes(rng.randint(1, 64)) if rng.random() < 0.5 else b"\xff\xfe\x80\xc3\x28\x00"


def _delete(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b))
    del b[i : i + rng.randint(1, 256)]


def _splice(b: bytearray, rng: random.Random) -> None:
    i, j = rng.randrange(len(b)), rng.randrange(len(b))
    n = rng.randint(1, 256)
    b[j : j + n] = b[i : i + n]


BYTE_MUTATORS = {
    "bitflip": _bitflip, "byteset": _byteset, "interesting-int": _interesting, "truncate": _truncate,
    "zero-block": _zero_block, "random-block": _random_block, "insert": _insert, "delete": _delete, "splice": _splice,
}  # fmt: skip


def mutate_bytes(data: bytes, rng: random.Random, name: str | None = None) -> tuple[bytes, str]:
    """Apply one (or, one time in four, two to four) byte mutations; returns ``(bytes, description)``."""
    b = bytearray(data) or bytearray(b"\x00")
    names = [name] if name else [rng.choice(sorted(BYTE_MUTATORS)) for _ in range(1 if rng.random() < 0.75 else rng.randint(2, 4))]
    for n in names:
        if b:
            BYTE_MUTATORS[n](b, rng)
    return bytes(b), "+".join(names)


# =================================================================================================
# mapping (JSON/YAML) mutations
# =================================================================================================
def _deep(depth: int, leaf=1):
    x = leaf
    for _ in range(depth):
        x = [x]
    return x


def _odd_value(rng: random.Random):
    pool = [None, True, False, "x", "", "NaN", -1, 0, 1, -1.5, 0.0, 1e-300, 1e308, float("nan"), float("inf"),
            float("-inf"), 10**400, -(10**400), 2**31, 2**63, [], {}, [1, 2, 3], ["a"], {"a": 1}, [[1, 2], [3]],
            "\u202e\U0001f600", "a" * 5000, _deep(80), _deep(3000), list(range(rng.randint(0, 2000)))]
    return rng.choice(pool)  # built afresh on every call


def mutate_mapping(d, rng: random.Random):
    """Random structural edits of a parsed JSON/YAML document (copied); returns ``(doc, description)``."""
    d = copy.deepcopy(d)
    ops = []
    if rng.random() < 0.08:
        return _odd_value(rng), "top-level-replaced"

    def containers(x, out, depth=0):
        if depth > 20:
            return out
        if isinstance(x, dict):
            out.append(x)
            for v in x.values():
                containers(v, out, depth + 1)
        elif isinstance(x, list) and len(x) < 50:
            out.append(x)
            for v in x:
                containers(v, out, depth + 1)
        return out

    for _ in range(rng.randint(1, 3)):
        cs = containers(d, [])
        if not cs:
            break
        c = rng.choice(cs)
        keys = list(c.keys()) if isinstance(c, dict) else list(range(len(c)))
        op = rng.choice(("replace", "replace", "replace", "delete", "add", "rename", "scale"))
        if not keys and op in ("replace", "delete", "rename", "scale"):
            op = "add"
        if op == "replace":
            k = rng.choice(keys)
            c[k] = _odd_value(rng)
        elif op == "delete":
            k = rng.choice(keys)
            del c[k]
        elif op == "add":
            if isinstance(c, dict):
                c[rng.choice(("extra", "angels", "n_detectors", "pixel_size", "unet", "card", "1"))] = _odd_value(rng)
            else:
                c.append(_odd_value(rng))
        elif op == "rename" and isinstance(c, dict):
            k = rng.choice(keys)
            c[k + "_"] = c.pop(k)
        elif op == "scale":
            k = rng.choice(keys)
            if isinstance(c[k], (int, float)) and not isinstance(c[k], bool):
                c[k] = c[k] * rng.choice((-1, 0, 1e9, 1e300, 10**12, 10**400 if isinstance(c[k], int) else 1e-320))
            else:
                c[k] = _odd_value(rng)
        ops.append(op)
    return d, "mapping:" + ",".join(ops)


def _dump(doc, fmt: str) -> bytes:
    import yaml

    try:
        if fmt == "json":
            return json.dumps(doc).encode()
        return yaml.safe_dump(doc).encode()
    except (ValueError, TypeError, RecursionError, OverflowError):
        try:
            return repr(doc).encode()
        except RecursionError:
            return b"a: " + b"[" * 3000 + b"]" * 3000


def _text_attack(rng: random.Random, fmt: str, case: Path) -> tuple[bytes, str]:
    canary = case / CANARY
    attacks = {
        "deep-brackets": b"a: " + b"[" * 100000 + b"]" * 100000 if fmt == "yaml" else b"[" * 100000 + b"]" * 100000,
        "deep-block": "".join("  " * i + "- \n" for i in range(3000)).encode(),
        "alias-bomb": ("a: &a [" + ",".join(["1"] * 10) + "]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join(["*" + chr(97 + i)] * 10) + "]\n" for i in range(9))).encode(),
        "python-tag": f"!!python/object/apply:os.system ['touch {canary}']\n".encode(),
        "python-name": f"type: !!python/name:os.system\nx: !!python/object/apply:builtins.open ['{canary}', 'w']\n".encode(),
        "non-utf8": b"type: parallel\nimage_shape: 12\nangles: 8\nname: \xff\xfe\xc3\x28\n",
        "empty": b"",
        "nul": b"\x00" * 64,
        "huge-int": b'{"type": "parallel", "image_shape": 12, "angles": 8, "n_detectors": 1' + b"0" * 400 + b"}",
        "huge-float": b'{"type": "parallel", "image_shape": 12, "angles": 8, "pixel_size": 1e400}',
        "nan-token": b'{"type": "parallel", "image_shape": 12, "angles": 8, "pixel_size": NaN, "detector_offset": Infinity}',
        "bom": b"\xef\xbb\xbf" + b'{"type": "parallel", "image_shape": 12, "angles": 8}',
        "utf16": '{"type": "parallel", "image_shape": 12, "angles": 8}'.encode("utf-16"),
        "many-angles": b'{"type": "parallel", "image_shape": 12, "angles": 1000000000}',
        "angle-spec-bomb": b"type: fan\nimage_shape: 12\nangles: {count: 2000000000}\nsource_to_isocenter: 60\nsource_to_detector: 110\n",
    }
    name = rng.choice(sorted(attacks))
    return attacks[name], f"text:{name}"


# =================================================================================================
# format-aware mutations
# =================================================================================================
def _h5_rewrite(src: Path, dst: Path, rng: random.Random) -> str:
    """Copy an HDF5 seed and break it at the structure level (attributes, datasets) with h5py."""
    import h5py

    shutil.copy(src, dst)
    choice = rng.choice(("geom-json", "geom-json", "geom-type", "noise-json", "nan-data", "inf-data", "huge-shape",
                         "dtype", "theta", "external", "attr-kinds", "params-json", "pixel-size", "kind-attr"))
    with h5py.File(dst, "r+") as f:
        data_name = "exchange/data" if "exchange" in f else "reconstruction/data"
        if choice in ("geom-json", "geom-type") and "ctflow_geometry" in f.attrs:
            g = json.loads(f.attrs["ctflow_geometry"])
            if choice == "geom-json":
                doc, how = mutate_mapping(g, rng)
                f.attrs["ctflow_geometry"] = _dump(doc, "json").decode("utf-8", "replace")
                return f"h5:geom-json:{how}"
            g[rng.choice(("n_detectors", "angles", "pixel_size", "image_shape"))] = rng.choice(
                (10**400, 10**9, 1e300, -1, float("nan"), "12", [12, 12, 12], {"count": 10**10}))
            f.attrs["ctflow_geometry"] = json.dumps(g)
            return "h5:geom-type"
        if choice in ("noise-json", "params-json"):
            key = "ctflow_noise" if choice == "noise-json" else "params"
            f.attrs[key] = rng.choice(('{"sigma": NaN}', "[1, 2]", "{", "null", '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
                                       '"text"', "1e999"))
            return f"h5:{choice}"
        ds = f[data_name]
        if choice in ("nan-data", "inf-data"):
            a = ds[()]
            a.reshape(-1)[rng.randrange(a.size)] = np.nan if choice == "nan-data" else -np.inf
            ds[...] = a
            return f"h5:{choice}"
        if choice == "huge-shape":
            shape = list(ds.shape)
            axis = rng.randrange(len(shape))
            shape[axis] = rng.choice((10**9, 2**31 - 1, 10**6, 2**40))
            del f[data_name]
            f.create_dataset(data_name, shape=tuple(shape), dtype="f4", chunks=tuple(min(s, 64) for s in shape))
            if "ctflow_geometry" in f.attrs and data_name.startswith("exchange"):
                g = json.loads(f.attrs["ctflow_geometry"])
                if axis == len(shape) - 2:
                    g["angles"] = shape[axis] if shape[axis] < 2**31 else 10**9
                elif axis == len(shape) - 1:
                    g["n_detectors"] = shape[axis]
                f.attrs["ctflow_geometry"] = json.dumps(g)
                if "exchange/theta" in f:
                    del f["exchange/theta"]
            return f"h5:huge-shape:{shape}"
        if choice == "dtype":
            a = ds[()]
            del f[data_name]
            kind = rng.choice(("S8", "c8", "compound", "f2", "i8", "bool"))
            if kind == "compound":
                f.create_dataset(data_name, shape=a.shape, dtype=np.dtype([("a", "f4"), ("b", "i4")]))
            elif kind == "S8":
                f.create_dataset(data_name, data=a.astype("S8"))
            else:
                f.create_dataset(data_name, data=a.astype(kind))
            return f"h5:dtype:{kind}"
        if choice == "theta" and "exchange/theta" in f:
            th = f["exchange/theta"][()]
            del f["exchange/theta"]
            v = rng.choice(("nan", "str", "huge", "2d"))
            if v == "nan":
                th[0] = np.nan
                f.create_dataset("exchange/theta", data=th)
            elif v == "str":
                f.create_dataset("exchange/theta", data=np.array([b"a"] * len(th)))
            elif v == "huge":
                f.create_dataset("exchange/theta", shape=(2**33,), dtype="f8", chunks=(1024,))
            else:
                f.create_dataset("exchange/theta", data=np.stack([th, th]))
            return f"h5:theta:{v}"
        if choice == "external":
            shape, dtype = ds.shape, ds.dtype
            del f[data_name]
            target = dst.parent / "external.bin"
            target.write_bytes(np.ones(shape, dtype).tobytes())
            f.create_dataset(data_name, shape=shape, dtype=dtype, external=[(str(target), 0, h5py.h5f.UNLIMITED)])
            return "h5:external"
        if choice == "attr-kinds":
            key = rng.choice(("ctflow_geometry", "kind", "method", "created", "ctflow_noise"))
            f.attrs[key] = rng.choice((np.arange(5), 3, np.float64(np.nan), np.zeros((3, 3)), b"\xff\xfe"))
            return f"h5:attr-kinds:{key}"
        if choice == "pixel-size":
            f.attrs["pixel_size_mm"] = rng.choice((np.nan, -1.0, 0.0, np.inf, "x", np.arange(3.0)))
            return "h5:pixel-size"
        f.attrs["kind"] = rng.choice(("reconstruction", "sinogram", "", "x" * 1000))
        return "h5:kind"


def _npy_header(shape, descr: str = "<f4", fortran: bool = False, version=(1, 0)) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode("latin1")
    hlen = len(header) + 1
    pad = (64 - (10 + hlen) % 64) % 64 if version == (1, 0) else (64 - (12 + hlen) % 64) % 64
    header = header + b" " * pad + b"\n"
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(header)) + header


def _pickle_payload(case: Path) -> bytes:
    """A pickle that creates the canary file when unpickled (it must never be)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(case / CANARY), "w"))

    return pickle.dumps([Payload()], protocol=2)


def _npy_attack(rng: random.Random, case: Path, base: np.ndarray) -> tuple[bytes, str]:
    kind = rng.choice(("huge-shape", "object-pickle", "complex", "void", "unicode", "nan", "inf", "fortran",
                       "v2-header", "v3-header", "short-data", "bad-header-literal", "negative-shape", "0d", "1d"))
    data = np.ascontiguousarray(base).astype("<f4")
    if kind == "huge-shape":
        shape = rng.choice(((10**9, 1000), (2**40,), (65536, 65536, 64), (2**31, 2**31)))
        return _npy_header(shape) + data.tobytes(), f"npy:{kind}"
    if kind == "object-pickle":
        return _npy_header((1,), "|O") + _pickle_payload(case), f"npy:{kind}"
    if kind == "complex":
        return _npy_header(data.shape, "<c8") + data.astype("<c8").tobytes(), f"npy:{kind}"
    if kind == "void":
        return _npy_header(data.shape, "|V4") + data.tobytes(), f"npy:{kind}"
    if kind == "unicode":
        return _npy_header(data.shape, "<U1") + data.tobytes(), f"npy:{kind}"
    if kind in ("nan", "inf"):
        d = data.copy()
        d.reshape(-1)[rng.randrange(d.size)] = np.nan if kind == "nan" else np.inf
        return _npy_header(d.shape) + d.tobytes(), f"npy:{kind}"
    if kind == "fortran":
        return _npy_header(data.shape, fortran=True) + data.tobytes(), f"npy:{kind}"
    if kind in ("v2-header", "v3-header"):
        return _npy_header(data.shape, version=(2, 0) if kind == "v2-header" else (3, 0)) + data.tobytes(), f"npy:{kind}"
    if kind == "short-data":
        return _npy_header(data.shape) + data.tobytes()[: rng.randrange(data.nbytes)], f"npy:{kind}"
    if kind == "bad-header-literal":
        h = _npy_header(data.shape).replace(b"'shape'", b"'shape': __import__('os').system('touch " +
                                            str(case / CANARY).encode() + b"'), 'x'")
        return h + data.tobytes(), f"npy:{kind}"
    if kind == "negative-shape":
        return _npy_header((-1, 12)) + data.tobytes(), f"npy:{kind}"
    if kind == "0d":
        return _npy_header(()) + data.tobytes()[:4], f"npy:{kind}"
    return _npy_header((data.size,)) + data.tobytes(), f"npy:{kind}"


_BOMB_CACHE: dict[tuple, bytes] = {}


def _zip_with(members: dict[str, bytes], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED, compresslevel=9) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def _zip_bomb(members: dict[str, bytes], name: str, shape, dtype: str = "|u1") -> bytes:
    """``members`` with ``name`` replaced by a deflated .npy of zeros of ``shape`` (all sizes consistent:
    a genuine decompression bomb). Cached: building it compresses the whole array once."""
    key = (tuple(sorted(members)), name, tuple(shape), dtype)
    if key not in _BOMB_CACHE:
        out = dict(members)
        out[name] = _npy_header(shape, dtype) + bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        _BOMB_CACHE[key] = _zip_with(out)
    return _BOMB_CACHE[key]


def _npz_attack(rng: random.Random, case: Path, seed: Path, reader: str) -> tuple[bytes, str]:
    with zipfile.ZipFile(seed) as z:
        members = {n: z.read(n) for n in z.namelist()}
    key = rng.choice(sorted(members))
    kind = rng.choice(("huge-header", "object-pickle", "bomb", "nan-float", "wrong-ndim", "missing-key", "wrong-dtype",
                       "crc", "member-size", "mismatched-len", "bomb-small", "unsupported-method"))
    if kind == "huge-header":
        members[key] = _npy_header(rng.choice(((10**9, 28, 28), (2**31, 2**31), (6, 28, 10**8)))) + members[key][128:]
    elif kind == "object-pickle":
        members[key] = _npy_header((1,), "|O") + _pickle_payload(case)
    elif kind in ("bomb", "bomb-small"):
        shape = (320, 512, 512) if kind == "bomb" else (96, 512, 512)
        name = rng.choice(("train_images.npy", "val_images.npy", "test_images.npy"))
        return _zip_bomb(members, name, shape), f"npz:{kind}:{name}"
    elif kind == "nan-float":
        a = np.random.default_rng(1).random((6, 28, 28)).astype("<f4") * 255
        a[0, 0, rng.randrange(28)] = rng.choice((np.nan, np.inf))
        members[key] = _npy_header(a.shape) + a.tobytes()
    elif kind == "wrong-ndim":
        a = np.zeros(rng.choice(((6, 28), (6, 28, 28, 2, 2), (28,), (0, 28, 28), (6, 0, 0))), np.uint8)
        members[key] = _npy_header(a.shape, "|u1") + a.tobytes()
    elif kind == "missing-key":
        del members[key]
    elif kind == "wrong-dtype":
        a = np.zeros((6, 28, 28), rng.choice(("<c8", "<U2", "|V1", "<M8[s]")))
        members[key] = _npy_header(a.shape, a.dtype.str) + a.tobytes()
    elif kind == "mismatched-len":
        a = np.zeros((rng.randint(1, 9), 28, 28), np.uint8)
        members[key] = _npy_header(a.shape, "|u1") + a.tobytes()
    data = bytearray(_zip_with(members, compress=rng.random() < 0.5))
    if kind == "crc":
        i = data.find(b"PK\x03\x04")
        if i >= 0:
            j = i + 30 + rng.randrange(64)
            if j < len(data):
                data[j] ^= 0x5A
    elif kind == "member-size":
        i = data.find(b"PK\x01\x02")
        if i >= 0:
            off = i + rng.choice((20, 24))
            data[off : off + 4] = struct.pack("<L", rng.choice((0, 1, 0xFFFFFFFF, 2**31)))
    elif kind == "unsupported-method":
        for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            i = data.find(sig)
            if i >= 0:
                data[i + off : i + off + 2] = struct.pack("<H", rng.choice((99, 14, 12, 9)))
    return bytes(data), f"npz:{kind}"


def _dicom_edit(src: Path, dst: Path, rng: random.Random) -> str:
    """Edit one element of a DICOM seed with pydicom (falls back to a byte mutation when pydicom refuses
    the edit itself)."""
    try:
        return _dicom_edit_unsafe(src, dst, rng)
    except Exception as e:  # noqa: BLE001
        data, how = mutate_bytes(src.read_bytes(), rng)
        dst.write_bytes(data)
        return f"dicom:edit refused ({type(e).__name__})->{how}"


def _dicom_edit_unsafe(src: Path, dst: Path, rng: random.Random) -> str:
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(src)
    kind = rng.choice(("rows", "frames", "bits", "slope", "intercept", "spacing", "thickness", "position",
                       "float-pixels", "transfer-syntax", "photometric", "deep-sequence", "samples", "no-pixels",
                       "modality", "pixel-rep"))
    val = None
    if kind == "rows":
        val = rng.choice((0, 1, 65535, 40000))
        setattr(ds, rng.choice(("Rows", "Columns")), val)
    elif kind == "frames":
        val = rng.choice(("100000", "-3", "abc", "0", "2147483647", "1e9"))
        ds.NumberOfFrames = val
    elif kind == "bits":
        val = rng.choice((1, 7, 12, 32, 64, 0))
        ds.BitsAllocated = val
    elif kind in ("slope", "intercept"):
        val = rng.choice(("Infinity", "NaN", "-inf", "1e400", "abc", "1e308", "0", "-0"))
        ds["RescaleSlope" if kind == "slope" else "RescaleIntercept"].value = val
    elif kind == "spacing":
        val = rng.choice((["0", "0"], ["NaN", "1"], ["-1", "1"], ["1"], ["abc", "def"], ["1e400", "1"], ["inf", "inf"]))
        ds["PixelSpacing"].value = val
    elif kind == "thickness":
        val = rng.choice(("NaN", "-1", "0", "inf", "x"))
        ds["SliceThickness"].value = val
    elif kind == "position":
        val = rng.choice((["NaN", "0", "0"], ["inf", "1", "2"], ["1", "2"], ["a", "b", "c"]))
        ds["ImagePositionPatient"].value = val
    elif kind == "float-pixels":
        a = np.random.default_rng(2).random((int(ds.Rows), int(ds.Columns))).astype("<f4")
        a.reshape(-1)[rng.randrange(a.size)] = rng.choice((np.nan, np.inf, -np.inf))
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        del ds.PixelData
        ds.BitsAllocated = 32
        for k in ("BitsStored", "HighBit", "PixelRepresentation"):
            if k in ds:
                delattr(ds, k)
        ds.FloatPixelData = a.tobytes()
        val = "NaN/Inf"
    elif kind == "transfer-syntax":
        val = rng.choice((pydicom.uid.JPEGBaseline8Bit, pydicom.uid.RLELossless, pydicom.uid.JPEG2000,
                          pydicom.uid.DeflatedExplicitVRLittleEndian, "1.2.3.4.5"))
        ds.file_meta.TransferSyntaxUID = val
    elif kind == "photometric":
        val = rng.choice(("RGB", "YBR_FULL", "PALETTE COLOR", "XYZ"))
        ds.PhotometricInterpretation = val
    elif kind == "deep-sequence":
        depth = rng.choice((20, 200))
        item = Dataset()
        item.PatientID = "x"
        for _ in range(depth):
            outer = Dataset()
            outer.ReferencedImageSequence = Sequence([item])
            item = outer
        ds.ReferencedImageSequence = item.ReferencedImageSequence
        val = depth
    elif kind == "samples":
        val = rng.choice((0, 3, 65535))
        ds.SamplesPerPixel = val
    elif kind == "no-pixels":
        del ds.PixelData
    elif kind == "modality":
        ds.Modality = "MR"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    elif kind == "pixel-rep":
        val = rng.choice((2, 65535))
        ds.PixelRepresentation = val
    try:
        ds.save_as(dst, enforce_file_format=False)
    except Exception:  # noqa: BLE001 (pydicom refuses some edits at write time: fall back to bytes)
        data, how = mutate_bytes(src.read_bytes(), rng)
        dst.write_bytes(data)
        return f"dicom:{kind}(unsaveable)->{how}"
    return f"dicom:{kind}={str(val)[:20]}"


def _ctpd_edit(folder: Path, rng: random.Random, other: Path) -> str:
    """Break a DICOM-CT-PD folder: drop/duplicate/mix views, edit geometry tags, mutate bytes."""
    try:
        return _ctpd_edit_unsafe(folder, rng, other)
    except Exception as e:  # noqa: BLE001 (pydicom refused the edit: mutate bytes instead)
        f = rng.choice(sorted(folder.iterdir()))
        data, how = mutate_bytes(f.read_bytes(), rng)
        f.write_bytes(data)
        return f"ctpd:edit refused ({type(e).__name__})->{how}"


def _ctpd_edit_unsafe(folder: Path, rng: random.Random, other: Path) -> str:
    import pydicom

    files = sorted(folder.iterdir())
    kind = rng.choice(("drop-views", "drop-views", "extra-view", "mix-scan", "tag", "tag", "tag", "slope", "bytes",
                       "bytes", "junk-file", "pixels-edited"))
    if kind == "drop-views":
        keep = rng.randint(1, len(files) - 1)
        for f in rng.sample(files, len(files) - keep):
            f.unlink()
        return f"ctpd:drop-views(keep {keep})"
    if kind == "extra-view":
        shutil.copy(files[0], folder / "view_99999.dcm")
        return "ctpd:duplicate-view"
    if kind == "mix-scan":
        f = rng.choice(files)
        shutil.copy(other / f.name, f)
        return "ctpd:mix-scan"
    if kind == "junk-file":
        (folder / rng.choice(("notes.txt", "a.dcm", "zz"))).write_bytes(rng.randbytes(rng.randint(0, 300)))
        return "ctpd:junk-file"
    f = rng.choice(files)
    if kind == "bytes":
        data, how = mutate_bytes(f.read_bytes(), rng)
        f.write_bytes(data)
        return f"ctpd:bytes:{how}"
    ds = pydicom.dcmread(f)
    if kind == "pixels-edited":
        b = bytearray(ds.PixelData)
        b[rng.randrange(len(b))] ^= 1
        ds.PixelData = bytes(b)
    elif kind == "slope":
        ds["RescaleSlope"].value = rng.choice(("Infinity", "NaN", "1e308", "abc"))
    else:
        group, offset, vr = rng.choice(((0x7029, 0x10, "US"), (0x7029, 0x11, "US"), (0x7029, 0x02, "FD"),
                                        (0x7029, 0x0B, "CS"), (0x7031, 0x01, "FD"), (0x7031, 0x03, "FD"),
                                        (0x7031, 0x31, "FD"), (0x7031, 0x33, "FD"), (0x7033, 0x13, "US"),
                                        (0x7035, 0x05, "UL"), (0x7035, 0x06, "UL")))
        creator = "CTFLOW" if group == 0x7035 else "DICOM-CT-PD"
        block = ds.private_block(group, creator)
        if vr == "US":
            v = rng.choice((0, 1, 65535))
        elif vr == "UL":
            v = rng.choice((0, 1, 2**32 - 1, 7))
        elif vr == "CS":
            v = rng.choice(("ROUND", "", "FLAT", "CYLINDRICAL"))
        else:
            v = rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e308, -1e308, 1e-300))
        if offset in block:
            block[offset].value = [v, v] if (group, offset) == (0x7031, 0x33) else v
        else:
            block.add_new(offset, vr, v)
    ds.save_as(f, enforce_file_format=True)
    return f"ctpd:{kind}"


def _prior_edit(folder: Path, rng: random.Random, reader: str, case: Path) -> str:
    import torch
    from safetensors.torch import load_file, save_file

    if reader == "prior_json":
        p = folder / "prior.json"
        r = rng.random()
        if r < 0.15:
            data, how = mutate_bytes(p.read_bytes(), rng)
            p.write_bytes(data)
            return f"prior.json:bytes:{how}"
        if r < 0.25:
            data, how = _text_attack(rng, "json", case)
            p.write_bytes(data)
            return f"prior.json:{how}"
        meta = json.loads(p.read_text())
        if rng.random() < 0.5:
            meta["unet"][rng.choice(sorted(meta["unet"]))] = rng.choice(
                (10**6, 4096, 10**400, -1, 0, "8", 8.5, [8], None, True, float("nan"), [10**6], [1] * 40))
            how = "unet-field"
        else:
            meta, how = mutate_mapping(meta, rng)
        p.write_bytes(_dump(meta, "json"))
        return f"prior.json:{how}"
    w = folder / "prior.safetensors"
    r = rng.random()
    if r < 0.45:
        data, how = mutate_bytes(w.read_bytes(), rng)
        w.write_bytes(data)
        return f"weights:bytes:{how}"
    tensors = load_file(str(w))
    kind = rng.choice(("nan", "inf", "int", "shape", "missing", "pickle", "header-size"))
    if kind in ("nan", "inf"):
        k = rng.choice(sorted(tensors))
        t = tensors[k].clone()
        t.view(-1)[rng.randrange(t.numel())] = float("nan") if kind == "nan" else float("inf")
        tensors[k] = t
    elif kind == "int":
        k = rng.choice(sorted(tensors))
        tensors[k] = tensors[k].to(torch.int32)
    elif kind == "shape":
        k = rng.choice(sorted(tensors))
        tensors[k] = torch.zeros(3, 3)
    elif kind == "missing":
        del tensors[rng.choice(sorted(tensors))]
    elif kind == "pickle":
        w.write_bytes(_pickle_payload(case))
        return "weights:pickle-renamed"
    elif kind == "header-size":
        raw = bytearray(w.read_bytes())
        raw[:8] = struct.pack("<Q", rng.choice((2**63, 2**40, len(raw) * 10, 0)))
        w.write_bytes(bytes(raw))
        return "weights:header-size"
    save_file(tensors, str(w))
    return f"weights:{kind}"


def make_case(reader: str, seeds: dict, rng: random.Random, case: Path) -> tuple[Path, str]:
    """Build one mutated input for ``reader`` in the empty folder ``case``; returns ``(path, description)``."""
    case.mkdir(parents=True, exist_ok=True)
    seed = rng.choice(seeds[reader])
    r = rng.random()
    if reader in ("h5_sinogram", "h5_image"):
        dst = case / seed.name
        if r < 0.35:
            return dst, _h5_rewrite(seed, dst, rng)
        data, how = mutate_bytes(seed.read_bytes(), rng)
        dst.write_bytes(data)
        return dst, how
    if reader == "npy":
        dst = case / seed.name
        if r < 0.4:
            data, how = _npy_attack(rng, case, np.load(seed))
        else:
            data, how = mutate_bytes(seed.read_bytes(), rng)
        dst.write_bytes(data)
        return dst, how
    if reader in ("npz_train", "npz_benchmark", "npz_medmnist"):
        dst = case / ("organcmnist.npz" if reader == "npz_medmnist" else seed.name)
        if r < 0.4:
            data, how = _npz_attack(rng, case, seed, reader)
        else:
            data, how = mutate_bytes(seed.read_bytes(), rng)
        dst.write_bytes(data)
        return dst, how
    if reader == "dicom_image":
        dst = case / seed.name
        if r < 0.4:
            return dst, _dicom_edit(seed, dst, rng)
        data, how = mutate_bytes(seed.read_bytes(), rng)
        dst.write_bytes(data)
        return dst, how
    if reader == "dicom_series":
        dst = case / ("series_skip" if rng.random() < 0.5 else "series")
        shutil.copytree(seed, dst)
        files = sorted(dst.iterdir())
        f = rng.choice(files)
        if r < 0.4:
            return dst, "series:" + _dicom_edit(f, f, rng)
        data, how = mutate_bytes(f.read_bytes(), rng)
        f.write_bytes(data)
        return dst, f"series:{how}"
    if reader == "dicom_ctpd":
        dst = case / "ctpd"
        shutil.copytree(seed, dst)
        return dst, _ctpd_edit(dst, rng, seed.parent / "ctpd_other")
    if reader in ("geometry_yaml", "geometry_json"):
        fmt = "json" if reader == "geometry_json" else "yaml"
        dst = case / seed.name
        if r < 0.2:
            data, how = _text_attack(rng, fmt, case)
        elif r < 0.45:
            data, how = mutate_bytes(seed.read_bytes(), rng)
        else:
            import yaml

            doc = yaml.safe_load(seed.read_text())
            doc, how = mutate_mapping(doc, rng)
            data = _dump(doc, fmt)
        dst.write_bytes(data)
        return dst, how
    if reader in ("prior_json", "prior_weights"):
        dst = case / "prior"
        shutil.copytree(seed, dst)
        return dst, _prior_edit(dst, rng, reader, case)
    raise KeyError(reader)


# =================================================================================================
# calling the readers and judging what they return
# =================================================================================================
def call_reader(reader: str, path: Path):
    """Run ``reader`` on ``path`` (what a user of ctflow would call)."""
    if reader == "dicom_image":
        from ctflow.io import read_dicom_image

        return read_dicom_image(path)
    if reader == "dicom_series":
        from ctflow.io import read_dicom_series

        return read_dicom_series(path, on_error="skip" if path.name.endswith("skip") else "raise")
    if reader == "dicom_ctpd":
        from ctflow.io import read_dicom_ctpd

        return read_dicom_ctpd(path, image_shape=12)
    if reader == "h5_sinogram":
        from ctflow.io import read_sinogram_h5

        return read_sinogram_h5(path)
    if reader == "h5_image":
        from ctflow.io import read_image_h5

        return read_image_h5(path)
    if reader == "npy":
        from ctflow.io import read_any

        return read_any(path)
    if reader == "npz_train":
        from ctflow.training.data import ImageSource

        return ImageSource._load_npz(SimpleNamespace(data=str(path), size=28, n_val=3, medmnist_root=None))
    if reader == "npz_benchmark":
        from ctflow.studies.evaluation import eval_images

        return eval_images(n=2, size=28, source=path, split="test")
    if reader == "npz_medmnist":
        from ctflow.data import load_medmnist

        return load_medmnist("organcmnist", 28, "train", root=path.parent, verify=False)
    if reader in ("geometry_yaml", "geometry_json"):
        from ctflow.geometry import load_geometry

        return load_geometry(path)
    if reader in ("prior_json", "prior_weights"):
        from ctflow.priors.store import load_prior_folder

        return load_prior_folder(path)
    raise KeyError(reader)


_SIZE_NAMES = ("pixel_size", "pixel_spacing", "slice_thickness", "detector_spacing", "source_to_isocenter",
               "source_to_detector")


_FREE_FORM = ("card", "attrs", "metadata", "params", "noise")


def bad_values(obj, where: str = "result", depth: int = 0, budget: list | None = None, sizes: bool = True) -> str | None:
    """The first NaN/Inf number or non-positive size in ``obj`` (a reader's result), or None."""
    budget = budget if budget is not None else [20000]
    budget[0] -= 1
    if budget[0] < 0 or depth > 12 or obj is None or isinstance(obj, (str, bytes, bool, Path)):
        return None
    if hasattr(obj, "detach") and hasattr(obj, "numel"):  # torch tensor
        obj = obj.detach().float().numpy() if obj.is_floating_point() else None
        return bad_values(obj, where, depth, budget, sizes)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.all(np.isfinite(obj)):
            return f"{where}: {int((~np.isfinite(obj)).sum())} non-finite value(s)"
        return None
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else f"{where} = {obj!r}"
    if hasattr(obj, "state_dict") and hasattr(obj, "parameters"):  # torch module
        for name, p in obj.state_dict().items():
            b = bad_values(p, f"{where}.{name}", depth + 1, budget, sizes)
            if b:
                return b
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "__dataclass_fields__"):
        items = ((f, getattr(obj, f)) for f in obj.__dataclass_fields__)
    else:
        items = ((k, getattr(obj, k)) for k in ("sinogram", "geometry", "paths", "z_positions") if hasattr(obj, k))
    for k, v in items:
        if k in _FREE_FORM:  # user metadata (a prior's data card, HDF5 attributes): only finiteness matters
            b = bad_values(v, f"{where}.{k}", depth + 1, budget, sizes=False)
            if b:
                return b
            continue
        if sizes and k in _SIZE_NAMES and v is not None:
            vals = v if isinstance(v, (tuple, list)) else (v,)
            nums = [x for x in vals if isinstance(x, (int, float, np.number)) and not isinstance(x, bool)]
            if any(not (math.isfinite(x) and x > 0) for x in nums):
                return f"{where}.{k} = {v!r} (not a positive finite size)"
        b = bad_values(v, f"{where}.{k}", depth + 1, budget, sizes)
        if b:
            return b
    return None


def judge(reader: str, path: Path, case: Path, result=None, error: BaseException | None = None) -> tuple[str, str]:
    """``(outcome, detail)`` for a reader call that returned ``result`` or raised ``error``."""
    from ctflow.errors import CTFlowError

    if error is None:
        bad = bad_values(result)
        return ("non-finite as valid", bad) if bad else ("clean", "")
    if isinstance(error, MemoryError):
        return "memory", f"MemoryError: {error}"
    if isinstance(error, CTFlowError):
        msg = str(error)
        if str(case) not in msg:
            return "unnamed", f"{type(error).__name__}: {msg[:300]}"
        return "ctflow error", f"{type(error).__name__}: {msg[:300]}"
    tb = traceback.extract_tb(error.__traceback__)
    at = f" at {tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else ""
    return "other exception", f"{type(error).__name__}: {str(error)[:300]}{at}"


# =================================================================================================
# the worker process
# =================================================================================================
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _worker(conn, limit_bytes: int, seed_paths: dict) -> None:
    import resource

    os.environ["CTFLOW_MAX_ARRAY_BYTES"] = str(limit_bytes)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    # warm up every reader on its seeds (imports, caches), then cap the address space as a last resort
    for reader, paths in seed_paths.items():
        for p in paths:
            with contextlib.suppress(Exception):
                call_reader(reader, Path(p))
    vm = _rss_kib("VmSize") * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (vm + max(8 * limit_bytes, 2 << 30), resource.RLIM_INFINITY))
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        reader, path, case = msg
        path, case = Path(path), Path(case)
        can_reset = _reset_peak()
        before = _rss_kib("VmRSS") if can_reset else _rss_kib("VmHWM")
        t0 = time.perf_counter()
        result = error = None
        try:
            result = call_reader(reader, path)
        except BaseException as e:  # noqa: BLE001
            error = e
        outcome, detail = judge(reader, path, case, result, error)
        result = error = None
        peak = (_rss_kib("VmHWM") - before) * 1024
        conn.send((outcome, detail, peak, time.perf_counter() - t0))


class Worker:
    """A worker process running reader calls; restarted after a hang or a crash."""

    def __init__(self, limit_bytes: int, seed_paths: dict):
        self.limit_bytes, self.seed_paths = limit_bytes, seed_paths
        self.proc = None
        self.start()

    def start(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        os.environ.update(env)
        self.proc = ctx.Process(target=_worker, args=(child, self.limit_bytes, self.seed_paths), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(600):
            raise RuntimeError("the fuzz worker did not start")
        self.conn.recv()

    def stop(self):
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.join(10)

    def run(self, reader: str, path: Path, case: Path, timeout: float) -> tuple[str, str, int, float]:
        try:
            self.conn.send((reader, str(path), str(case)))
            ok = self.conn.poll(timeout)
        except (BrokenPipeError, OSError):
            ok = False
        if not ok:
            alive = self.proc.is_alive()
            self.stop()
            self.start()
            return ("hang", f"no answer within {timeout:g} s", 0, timeout) if alive else ("crash", "worker died", 0, 0.0)
        try:
            outcome, detail, peak, secs = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            code = self.proc.exitcode
            self.stop()
            self.start()
            return ("memory" if code in (-9, 137) else "crash", f"worker died (exit code {code})", 0, 0.0)
        if outcome != "memory" and peak > self.limit_bytes + (16 << 20):
            outcome, detail = "memory", f"peak RSS grew by {peak / 2**20:.0f} MiB ({outcome}: {detail})"
        return outcome, detail, peak, secs


# =================================================================================================
# main
# =================================================================================================
def run(cases: int, seed: int, readers: list[str], timeout: float, limit_bytes: int, workdir: Path,
        progress: bool = True) -> tuple[dict, list]:
    seeds = make_seeds(workdir / "seeds")
    seed_paths = {r: [str(p) for p in seeds[r]] for r in readers}
    worker = Worker(limit_bytes, seed_paths)
    counts = {r: dict.fromkeys(("cases", *OUTCOMES), 0) for r in readers}
    bad: list[dict] = []
    rng = random.Random(seed)
    per = [cases // len(readers) + (1 if i < cases % len(readers) else 0) for i in range(len(readers))]
    plan = [r for r, n in zip(readers, per) for _ in range(n)]
    rng.shuffle(plan)
    t_start = time.time()
    try:
        for i, reader in enumerate(plan):
            case = workdir / "cases" / f"c{i:06d}"
            case_rng = random.Random(f"{seed}:{i}")
            try:
                path, how = make_case(reader, seeds, case_rng, case)
            except Exception as e:  # noqa: BLE001 (a mutation the seed format cannot take: count as clean setup error)
                path, how = case / "missing", f"mutation failed: {type(e).__name__}: {e}"
            outcome, detail, peak, secs = worker.run(reader, path, case, timeout)
            if (case / CANARY).exists():
                outcome, detail = "other exception", f"CODE EXECUTED: the canary file was created ({detail})"
            counts[reader]["cases"] += 1
            counts[reader][outcome] += 1
            if outcome not in ("clean", "ctflow error"):
                bad.append({"case": i, "reader": reader, "mutation": how, "outcome": outcome, "detail": detail,
                            "path": str(path), "seconds": round(secs, 3), "peak_mib": round(peak / 2**20, 1)})
            shutil.rmtree(case, ignore_errors=True)
            if progress and (i + 1) % 250 == 0:
                done = sum(c["cases"] for c in counts.values())
                nbad = len(bad)
                print(f"  {done}/{len(plan)} cases, {nbad} bad, {time.time() - t_start:.0f} s", file=sys.stderr,
                      flush=True)
    finally:
        worker.stop()
    return counts, bad


def table(counts: dict) -> str:
    cols = ("cases", *OUTCOMES[:-1])
    heads = ["reader", "cases", "clean", "ctflow error", "other exception", "hang", "memory", "non-finite as valid",
             "error without file name"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    total = dict.fromkeys(cols, 0)
    for r, c in counts.items():
        extra = c.get("crash", 0)
        row = [r] + [str(c[k]) for k in cols]
        if extra:
            row[5] = f"{c['hang']} (+{extra} crash)"
        lines.append("| " + " | ".join(row) + " |")
        for k in cols:
            total[k] += c[k]
    lines.append("| **all** | " + " | ".join(f"**{total[k]}**" for k in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000, help="number of cases over all readers (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readers", default=",".join(READERS), help="comma-separated subset of: " + ", ".join(READERS))
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a case counts as a hang (default 30)")
    ap.add_argument("--limit-mib", type=int, default=64, help="max_array_bytes for the readers, MiB (default 64)")
    ap.add_argument("--report", default=None, help="write every bad case as JSON here")
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    unknown = set(readers) - set(READERS)
    if unknown:
        ap.error(f"unknown reader(s) {sorted(unknown)}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ctflow-fuzz-"))
    t0 = time.time()
    try:
        counts, bad = run(args.cases, args.seed, readers, args.timeout, args.limit_mib << 20, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(counts))
    print(f"\n{sum(c['cases'] for c in counts.values())} cases in {time.time() - t0:.0f} s "
          f"(seed {args.seed}, max_array_bytes {args.limit_mib} MiB, hang timeout {args.timeout:g} s)")
    if bad:
        print(f"\n{len(bad)} bad case(s); first ones:")
        for b in bad[:40]:
            print(f"  [{b['reader']}] {b['outcome']}: {b['mutation']} -> {b['detail'][:250]}")
    if args.report:
        Path(args.report).write_text(json.dumps(bad, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
