"""MedMNIST loader on fake .npz files made here (never the network): splits, roots, MD5 checks,
downloads from file:// URLs, corrupt files, the torch Dataset and argument validation."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from ctflow.data import medmnist as mm
from ctflow.data.medmnist import (
    MEDMNIST_FILES,
    MedMNISTDataset,
    download_medmnist,
    load_medmnist,
    locate_medmnist,
    medmnist_root,
    medmnist_url,
    verify_medmnist_file,
)
from ctflow.errors import DataError

COUNTS = {"train": 6, "val": 3, "test": 4}


def make_npz(path, size=28, counts=COUNTS, seed=0, **overrides):
    """A MedMNIST-layout npz: {split}_images (N,S,S) uint8 and {split}_labels (N,1)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in counts.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 11, (n, 1)).astype(np.uint8)
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def trust(monkeypatch, path, flag="organcmnist", size=28):
    """Make the MD5 table accept ``path``."""
    entry = MEDMNIST_FILES[(flag, size)]
    monkeypatch.setitem(MEDMNIST_FILES, (flag, size), dataclasses.replace(entry, md5=(md5(path),)))


@pytest.fixture(autouse=True)
def _no_network_no_env(monkeypatch):
    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    monkeypatch.setattr(mm, "_MD5_CACHE", {})

    def refuse(url, *a, **kw):
        u = getattr(url, "full_url", url)
        if not str(u).startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {u}")
        return real(url, *a, **kw)

    real = mm.urllib.request.urlopen
    monkeypatch.setattr(mm.urllib.request, "urlopen", refuse)


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
def test_table_covers_every_flag_and_size():
    assert len(MEDMNIST_FILES) == 12
    e = MEDMNIST_FILES[("organcmnist", 28)]
    assert e.filename == "organcmnist.npz"
    assert e.md5 == ("b9ceb9546e10131b32923c5bbeaea2b1", "0afa5834fb105f7705a7d93372119a21")  # v3, v2
    assert e.url == "https://zenodo.org/records/10519652/files/organcmnist.npz?download=1"
    e = MEDMNIST_FILES[("organamnist", 224)]
    assert e.filename == "organamnist_224.npz" and e.md5 == ("50747347e05c87dd3aaf92c49f9f3170",)
    for (flag, size), e in MEDMNIST_FILES.items():
        assert e.flag == flag and e.size == size
        assert e.filename == (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
        assert e.url.endswith(f"/{e.filename}?download=1")
        assert e.md5 is None or all(len(m) == 32 and int(m, 16) >= 0 for m in e.md5)
    assert medmnist_url("organsmnist", 64, base_url="file:///data/") == "file:///data/organsmnist_64.npz"


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_load_each_split(tmp_path, monkeypatch, split):
    arrays = make_npz(tmp_path / "organcmnist.npz")
    trust(monkeypatch, tmp_path / "organcmnist.npz")
    x, y = load_medmnist(split=split, root=tmp_path)
    assert x.shape == (COUNTS[split], 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, arrays[f"{split}_images"] / 255.0, rtol=1e-6)
    assert y.shape == (COUNTS[split],) and y.dtype == np.int64
    np.testing.assert_array_equal(y, arrays[f"{split}_labels"][:, 0])
    raw, _ = load_medmnist(split=split, root=tmp_path, as_float=False)
    assert raw.dtype == np.uint8 and np.array_equal(raw, arrays[f"{split}_images"])


@pytest.mark.parametrize("flag,size", [("organamnist", 64), ("organsmnist", 128)])
def test_other_flags_and_sizes(tmp_path, monkeypatch, flag, size):
    p = tmp_path / f"{flag}_{size}.npz"
    make_npz(p, size=size, counts={"train": 2, "val": 1, "test": 1})
    trust(monkeypatch, p, flag, size)
    x, y = load_medmnist(flag, size, "val", root=tmp_path)
    assert x.shape == (1, size, size) and y.shape == (1,)


def test_root_resolution(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    assert medmnist_root() == home / ".medmnist"
    assert not (home / ".medmnist").exists()  # reading never creates it
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "env"))
    assert medmnist_root() == tmp_path / "env"
    assert medmnist_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


def test_env_var_and_root_argument(tmp_path, monkeypatch):
    make_npz(tmp_path / "env" / "organcmnist.npz", counts={"train": 2, "val": 1, "test": 1}, seed=1)
    make_npz(tmp_path / "arg" / "organcmnist.npz", counts={"train": 5, "val": 1, "test": 1}, seed=2)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "env"))
    assert load_medmnist(verify=False)[0].shape[0] == 2
    assert load_medmnist(root=tmp_path / "arg", verify=False)[0].shape[0] == 5
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MEDMNIST_ROOT")
    with pytest.raises(DataError, match=r"\.medmnist"):
        load_medmnist()
    assert not (home / ".medmnist").exists()


# --------------------------------------------------------------------------------------------
# MD5 checks
# --------------------------------------------------------------------------------------------
def test_md5_pass_fail_and_cache(tmp_path, monkeypatch):
    p = tmp_path / "organcmnist.npz"
    make_npz(p)
    with pytest.raises(DataError, match="MD5 mismatch") as e:  # the real table does not know this file
        load_medmnist(root=tmp_path)
    assert str(p) in str(e.value) and "b9ceb9546e10131b32923c5bbeaea2b1" in str(e.value) and md5(p) in str(e.value)
    assert load_medmnist(root=tmp_path, verify=False)[0].shape == (6, 28, 28)  # verify=False skips it

    trust(monkeypatch, p)
    calls = []
    real = mm._hash_file
    monkeypatch.setattr(mm, "_hash_file", lambda path: calls.append(path) or real(path))
    monkeypatch.setattr(mm, "_MD5_CACHE", {})
    assert verify_medmnist_file(p, "organcmnist", 28) == md5(p)
    load_medmnist(root=tmp_path)
    load_medmnist(root=tmp_path, split="test")
    assert len(calls) == 1  # hashed once, then cached per (path, size, mtime)

    # a changed file is hashed again and fails
    make_npz(p, seed=9)
    with pytest.raises(DataError, match="MD5 mismatch"):
        load_medmnist(root=tmp_path)
    assert len(calls) == 2


def test_unknown_md5_checks_layout_only_with_a_warning(tmp_path, monkeypatch):
    p = tmp_path / "organsmnist_64.npz"
    make_npz(p, size=64, counts={"train": 2, "val": 1, "test": 1})
    entry = MEDMNIST_FILES[("organsmnist", 64)]
    monkeypatch.setitem(MEDMNIST_FILES, ("organsmnist", 64), dataclasses.replace(entry, md5=None))
    with pytest.warns(UserWarning, match="no published MD5"):
        x, _ = load_medmnist("organsmnist", 64, root=tmp_path)
    assert x.shape == (2, 64, 64)
    loc = locate_medmnist("organsmnist", 64, root=tmp_path)
    assert loc.exists and loc.md5_ok is None and loc.md5 is None


def test_locate(tmp_path, monkeypatch):
    loc = locate_medmnist("organcmnist", 28, root=tmp_path)
    assert loc.path == tmp_path / "organcmnist.npz" and not loc.exists and loc.md5_ok is None
    assert loc.url.endswith("organcmnist.npz?download=1") and "b9ceb9546e10131b32923c5bbeaea2b1" in loc.md5
    make_npz(tmp_path / "organcmnist.npz")
    assert locate_medmnist(root=tmp_path).md5_ok is False
    trust(monkeypatch, tmp_path / "organcmnist.npz")
    loc = locate_medmnist(root=tmp_path)
    assert loc.exists and loc.md5_ok is True and loc.actual_md5 == md5(loc.path)


# --------------------------------------------------------------------------------------------
# missing file and downloads
# --------------------------------------------------------------------------------------------
def test_missing_file_message(tmp_path):
    with pytest.raises(DataError) as e:
        load_medmnist("organamnist", 64, root=tmp_path / "data")
    msg = str(e.value)
    for part in (
        "organamnist_64.npz",
        str(tmp_path / "data"),
        "https://zenodo.org/records/10519652/files/organamnist_64.npz?download=1",
        "2dcccc29b88e6da5a01161ef20cda288",
        "download=True",
        "ctflow data medmnist",
    ):
        assert part in msg, part
    assert not (tmp_path / "data").exists()


def _serve(tmp_path, flag="organcmnist", size=28):
    """Put a fake release file in a 'server' folder and return (file, file:// base URL)."""
    src = tmp_path / "server" / mm._filename(flag, size)
    make_npz(src, size=size)
    return src, (tmp_path / "server").as_uri()


def test_download_from_file_url(tmp_path, monkeypatch):
    src, base = _serve(tmp_path)
    trust(monkeypatch, src)
    root = tmp_path / "cache"
    calls = []
    real = mm._hash_file
    monkeypatch.setattr(mm, "_hash_file", lambda path: calls.append(path) or real(path))
    x, y = load_medmnist(root=root, download=True, base_url=base)
    assert x.shape == (6, 28, 28) and y.shape == (6,)
    assert sorted(p.name for p in root.iterdir()) == ["organcmnist.npz"]  # no temp files left
    assert (root / "organcmnist.npz").read_bytes() == src.read_bytes()
    assert calls == []  # the streamed MD5 is reused, no re-hash after the download
    # the module constant is the default base URL
    monkeypatch.setattr(mm, "MEDMNIST_BASE_URL", base)
    p = download_medmnist("organcmnist", 28, tmp_path / "other", progress=False)
    assert p.read_bytes() == src.read_bytes()


def test_download_md5_mismatch_leaves_nothing(tmp_path):
    _, base = _serve(tmp_path)
    root = tmp_path / "cache"
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        load_medmnist(root=root, download=True, base_url=base)
    msg = str(e.value)
    assert "b9ceb9546e10131b32923c5bbeaea2b1" in msg and md5(tmp_path / "server" / "organcmnist.npz") in msg
    assert list(root.iterdir()) == []


def test_download_of_missing_url_is_a_clean_error(tmp_path):
    root = tmp_path / "cache"
    with pytest.raises(DataError, match="cannot download file://"):
        download_medmnist("organcmnist", 28, root, base_url=(tmp_path / "empty").as_uri(), progress=False)
    assert not (root / "organcmnist.npz").exists()
    assert not root.exists() or list(root.iterdir()) == []


def test_existing_file_is_not_downloaded_again(tmp_path):
    p = tmp_path / "organcmnist.npz"
    make_npz(p)
    before = p.read_bytes()
    assert download_medmnist(root=tmp_path, base_url="file:///nonexistent") == p
    assert p.read_bytes() == before


# --------------------------------------------------------------------------------------------
# corrupt files
# --------------------------------------------------------------------------------------------
def test_random_bytes(tmp_path):
    p = tmp_path / "organcmnist.npz"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="not a zip archive") as e:
        load_medmnist(root=tmp_path, verify=False)
    assert str(p) in str(e.value)


def test_truncated_zip(tmp_path):
    p = tmp_path / "organcmnist.npz"
    make_npz(p)
    data = p.read_bytes()
    p.write_bytes(data[:200] + data[-100:])  # keeps the zip directory end record, loses members
    with pytest.raises(DataError, match=str(p)):
        load_medmnist(root=tmp_path, verify=False)


def test_damaged_member_header(tmp_path):
    p = tmp_path / "organcmnist.npz"
    rng = np.random.default_rng(0)
    np.savez(  # uncompressed, so the npy header text can be damaged in place
        p,
        **{f"{s}_images": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8) for s in COUNTS},
        **{f"{s}_labels": np.zeros((2, 1), np.uint8) for s in COUNTS},
    )
    data = p.read_bytes()
    i = data.index(b"{'descr'")
    p.write_bytes(data[:i] + b"{'descr((" + data[i + 9 :])
    with pytest.raises(DataError, match="corrupt .npz file") as e:
        load_medmnist(root=tmp_path, verify=False)
    assert str(p) in str(e.value)


def test_missing_keys(tmp_path):
    p = tmp_path / "organcmnist.npz"
    make_npz(p, val_labels=None)
    assert load_medmnist(root=tmp_path, verify=False)[0].shape[0] == 6  # train is intact
    with pytest.raises(DataError, match=r"missing key\(s\) \['val_labels'\].*val_images") as e:
        load_medmnist(split="val", root=tmp_path, verify=False)
    assert str(p) in str(e.value)


@pytest.mark.parametrize(
    "override,match",
    [
        ({"train_images": np.zeros((3, 32, 32), np.uint8)}, r"uint8 of shape \(N, 28, 28\)"),
        ({"train_images": np.zeros((3, 28, 28), np.float32)}, "float32"),
        ({"train_images": np.zeros((3, 28, 28, 3), np.uint8)}, r"\(3, 28, 28, 3\)"),
        ({"train_labels": np.zeros((6, 2), np.uint8)}, r"train_labels must be integers of shape \(N, 1\)"),
        ({"train_labels": np.zeros((5, 1), np.uint8)}, "6 images but train_labels has 5"),
    ],
)
def test_wrong_shape_or_dtype(tmp_path, override, match):
    make_npz(tmp_path / "organcmnist.npz", **override)
    with pytest.raises(DataError, match=match):
        load_medmnist(root=tmp_path, verify=False)


# --------------------------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------------------------
def test_dataset_and_dataloader(tmp_path, monkeypatch):
    arrays = make_npz(tmp_path / "organcmnist.npz")
    trust(monkeypatch, tmp_path / "organcmnist.npz")
    ds = MedMNISTDataset(root=tmp_path, split="train")
    assert len(ds) == 6 and "n=6" in repr(ds)
    x, y = ds[2]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    torch.testing.assert_close(x[0], torch.from_numpy(arrays["train_images"][2]).float() / 255)
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)))
    assert xb.shape == (4, 1, 28, 28) and xb.dtype == torch.float32
    assert yb.shape == (4,) and yb.dtype == torch.int64
    flipped = MedMNISTDataset(root=tmp_path, split="test", transform=lambda t: t.flip(-1))
    torch.testing.assert_close(flipped[0][0][0], torch.from_numpy(arrays["test_images"][0]).float().flip(-1) / 255)
    raw = MedMNISTDataset(root=tmp_path, split="val", as_float=False)
    assert raw[0][0].dtype == torch.uint8


# --------------------------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"flag": "pathmnist"}, "valid flags: organcmnist, organamnist, organsmnist"),
        ({"size": 32}, "valid sizes: 28, 64, 128, 224"),
        ({"size": True}, "valid sizes"),
        ({"split": "validation"}, "valid splits: train, val, test"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_medmnist(root=tmp_path, **kwargs)
    with pytest.raises(ValueError, match=match):
        MedMNISTDataset(root=tmp_path, **kwargs)


def test_cli_locate_and_download(tmp_path, monkeypatch, capsys):
    from ctflow.cli import main

    src = tmp_path / "server"
    src.mkdir()
    make_npz(src / "organcmnist.npz")
    root = tmp_path / "root"
    root.mkdir()
    assert main(["data", "medmnist", "--root", str(root)]) == 1  # missing: says where and how to get it
    out = capsys.readouterr().out
    assert "missing" in out and "organcmnist.npz" in out and "--download" in out
    trust(monkeypatch, src / "organcmnist.npz")
    base = (src.as_uri() + "/")
    assert main(["data", "medmnist", "--root", str(root), "--download", "--base-url", base]) == 0
    assert "verified" in capsys.readouterr().out
    assert (root / "organcmnist.npz").read_bytes() == (src / "organcmnist.npz").read_bytes()
