r"""How CT-like are the procedural abdomen phantoms? Image statistics of phantoms v1 and v2 next to
real CT slices; writes ``docs/phantom_realism.png`` and ``docs/phantom_realism.md``.

Everything is measured on 64 x 64 images in the prior's window (L40/W400 mapped onto [0, 1] and
clipped, :func:`ctflow.data.abdomen.hu_to_window`):

* radially averaged power spectrum (Hann-windowed periodogram, mean removed),
* histogram of the gradient magnitude (forward differences) inside the body,
* mean anisotropic total variation per pixel over the body (HU > -500),
* mean local variance (5 x 5 windows) inside organs, and the fraction of the spectral power above
  0.25 cycles/pixel.

Real slices (evaluation only; nothing is downloaded at run time):

1. ``CT_small.dcm`` bundled with pydicom (always available),
2. ``explicit_VR-UN.dcm`` from the ``pydicom-data`` wheel (``--pydicom-data``: the wheel, the
   folder it was unzipped into, or the file itself; skipped with a message when absent),
3. the head CT of Debian's ``invesalius-examples`` (``--invesalius``: the ``Cranium.inv3`` project,
   the folder it was extracted into, or a folder of DICOM files). That data is GPL: its numbers are
   printed to stdout only and are never written to ``--out-dir`` (neither the table nor the figure).

Regenerate the committed files with::

    .venv/bin/python tools/phantom_realism.py --pydicom-data /tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl

The statistic functions at module level (:func:`radial_power_spectrum`, :func:`high_freq_fraction`,
:func:`gradient_magnitudes`, :func:`tv_per_pixel`, :func:`local_variance`, the
mask helpers) depend on numpy and scipy only; real slices are cut and resampled by
:mod:`ctflow.studies.realct` (as in the benchmark's realct suite), and pydicom and matplotlib are
imported when the report is built.
"""

from __future__ import annotations

import argparse
import io
import math
import plistlib
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from ctflow.studies.realct import body_square, largest_component

ROOT = Path(__file__).resolve().parents[1]

#: Labels whose union (eroded) is the phantoms' "inside organs" mask.
ORGAN_NAMES = ("liver", "spleen", "kidney_left", "kidney_right", "muscle")
BODY_HU = -500.0
SOFT_TISSUE_HU = (0.0, 100.0)
#: A wider soft-tissue range that also keeps contrast-enhanced parenchyma (liver, spleen 100-150 HU).
SOFT_TISSUE_WIDE_HU = (0.0, 200.0)
HF_CUTOFF = 0.25
#: An image's local variance counts only where its eroded mask keeps at least this many pixels.
MIN_MASK_PX = 10
GRAD_BINS = np.linspace(0.0, 1.0, 51)
#: Side check: the real slices' TV and HF fraction after a Gaussian blur of these widths (pixels),
#: the phantoms' partial-volume blur being sigma 0.5-1 pixel.
BLUR_CHECK_SIGMAS = (0.5, 0.75, 1.0)

FINDINGS_BEGIN = "<!-- findings:begin (hand-written; kept when the file is regenerated) -->"
FINDINGS_END = "<!-- findings:end -->"

# --------------------------------------------------------------------------------------------------
# Statistics (numpy / scipy only)
# --------------------------------------------------------------------------------------------------


def _window2d(shape, window: str | None) -> np.ndarray:
    if window is None:
        return np.ones(shape)
    if window == "hann":
        return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))
    raise ValueError(f"window must be 'hann' or None, got {window!r}")


def power_spectrum_2d(img: np.ndarray, window: str | None = "hann") -> tuple[np.ndarray, np.ndarray]:
    """Periodogram of ``img`` and the radial frequency (cycles/pixel) of each FFT bin.

    The mean is removed, the image multiplied by ``window`` (2-D Hann, or ``None``), and the power
    normalised by the window energy, ``P = |FFT(w (x - mean))|^2 / sum(w^2)``, so that white noise of
    variance ``s^2`` has an expected power of ``s^2`` in every bin (with or without the window).
    """
    x = np.asarray(img, np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {x.shape}")
    w = _window2d(x.shape, window)
    f = np.fft.fft2(w * (x - x.mean()))
    p = (f.real**2 + f.imag**2) / np.sum(w * w)
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.fftfreq(x.shape[1])[None, :]
    return p, np.hypot(fy, fx)


def radial_power_spectrum(img: np.ndarray, window: str | None = "hann") -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum: ``(freqs, power)``.

    ``freqs`` are ``k / N`` cycles/pixel for ``k = 1 .. N/2`` (``N``: the smaller side); a 2-D bin
    belongs to ring ``k = round(N |f|)``. The corners beyond Nyquist (``|f| > 1/2``) are left out
    here (but counted by :func:`high_freq_fraction`). Normalisation as :func:`power_spectrum_2d`.
    """
    p, r = power_spectrum_2d(img, window)
    n = min(p.shape)
    ring = np.rint(r * n).astype(int).ravel()
    kmax = n // 2
    keep = ring <= kmax
    sums = np.bincount(ring[keep], weights=p.ravel()[keep], minlength=kmax + 1)
    counts = np.bincount(ring[keep], minlength=kmax + 1)
    k = np.arange(1, kmax + 1)
    return k / n, sums[1:] / counts[1:]


def high_freq_fraction(img: np.ndarray, cutoff: float = HF_CUTOFF, window: str | None = "hann") -> float:
    """Fraction of the (mean-removed, windowed) power at ``|f| > cutoff`` cycles/pixel, over all
    non-DC bins of the 2-D spectrum (the corners up to ``|f| = 0.707`` included). White noise gives
    about ``1 - pi cutoff^2`` (0.80 for 0.25); ``nan`` for a constant image."""
    if np.ptp(np.asarray(img)) == 0:
        return float("nan")
    p, r = power_spectrum_2d(img, window)
    total = p[r > 0].sum()
    if not total > 0:
        return float("nan")
    return float(p[r > cutoff].sum() / total)


def _pair_masks(mask: np.ndarray | None, shape) -> tuple[np.ndarray, np.ndarray]:
    if mask is None:
        mask = np.ones(shape, bool)
    mask = np.asarray(mask, bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} != image shape {tuple(shape)}")
    return mask[:, 1:] & mask[:, :-1], mask[1:, :] & mask[:-1, :]


def tv_per_pixel(img: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean anisotropic total variation per pixel, ``E|dx| + E|dy|`` with forward differences.

    ``E|dx|`` is the mean of ``|x[i, j+1] - x[i, j]|`` over the horizontal pairs whose two pixels
    are both in ``mask`` (all pixels if ``None``), likewise ``E|dy|``; a linear ramp
    ``a*col + b*row`` gives ``|a| + |b|``. ``nan`` if the mask holds no pair.
    """
    x = np.asarray(img, np.float64)
    mx, my = _pair_masks(mask, x.shape)
    if not (mx.any() and my.any()):
        return float("nan")
    dx = np.abs(np.diff(x, axis=1))[mx]
    dy = np.abs(np.diff(x, axis=0))[my]
    return float(dx.mean() + dy.mean())


def gradient_magnitudes(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``sqrt(dx^2 + dy^2)`` (forward differences) at the pixels ``(i, j)`` whose right and lower
    neighbours are, with them, in ``mask``; a 1-D array."""
    x = np.asarray(img, np.float64)
    m = np.ones(x.shape, bool) if mask is None else np.asarray(mask, bool)
    dx = x[:-1, 1:] - x[:-1, :-1]
    dy = x[1:, :-1] - x[:-1, :-1]
    ok = m[:-1, :-1] & m[:-1, 1:] & m[1:, :-1]
    return np.hypot(dx, dy)[ok]


def local_variance_map(img: np.ndarray, k: int = 5, unbiased: bool = True) -> np.ndarray:
    """Variance of the ``k x k`` window around each pixel (reflecting at the border).

    ``unbiased``: multiply by ``k^2 / (k^2 - 1)`` (the sample variance with ``n - 1``), so that white
    noise of variance ``s^2`` gives ``s^2`` in expectation; otherwise the plain window variance.
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    x = np.asarray(img, np.float64)
    m1 = ndimage.uniform_filter(x, size=k, mode="reflect")
    m2 = ndimage.uniform_filter(x * x, size=k, mode="reflect")
    var = np.maximum(m2 - m1 * m1, 0.0)
    if unbiased:
        var *= k * k / (k * k - 1.0)
    return var


def local_variance(img: np.ndarray, mask: np.ndarray, k: int = 5, unbiased: bool = True) -> float:
    """Mean over ``mask`` of :func:`local_variance_map`; ``nan`` for an empty mask. Erode the mask
    by ``k // 2`` pixels first (as the masks below are) so that every window lies inside the region."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    return float(local_variance_map(img, k, unbiased)[mask].mean())


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary erosion by a ``(2p+1)`` square (outside the image counts as outside the mask)."""
    mask = np.asarray(mask, bool)
    if pixels <= 0:
        return mask.copy()
    return ndimage.binary_erosion(mask, structure=np.ones((2 * pixels + 1,) * 2, bool), border_value=0)


def body_mask(hu: np.ndarray, threshold: float = BODY_HU) -> np.ndarray:
    """Pixels above ``threshold`` HU (the body, plus whatever table or cushion is that dense)."""
    return np.asarray(hu) > threshold


def soft_tissue_mask(
    hu: np.ndarray, lo: float = SOFT_TISSUE_HU[0], hi: float = SOFT_TISSUE_HU[1], erode_px: int = 2
) -> np.ndarray:
    """Pixels with ``lo <= HU <= hi``, eroded by ``erode_px``: "inside organs" without labels."""
    hu = np.asarray(hu)
    return erode((hu >= lo) & (hu <= hi), erode_px)


def label_mask(labels: np.ndarray, values, erode_px: int = 2) -> np.ndarray:
    """Union of the label ``values``, each eroded by ``erode_px`` on its own (so that a window never
    straddles the border between two of them, e.g. liver and kidney)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, bool)
    for v in values:
        out |= erode(labels == v, erode_px)
    return out


def image_stats(hu: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """All statistics of one HU image (window units): scalars and the curves for the figure."""
    from ctflow.data.abdomen import LABELS, hu_to_window

    hu = np.asarray(hu, np.float32)
    win = hu_to_window(hu).astype(np.float64)
    body = body_mask(hu)
    soft = soft_tissue_mask(hu)
    wide = soft_tissue_mask(hu, *SOFT_TISSUE_WIDE_HU)
    out = {
        "tv": tv_per_pixel(win, body),
        "lv_soft": local_variance(win, soft) if soft.sum() >= MIN_MASK_PX else float("nan"),
        "soft_px": int(soft.sum()),
        "lv_wide": local_variance(win, wide) if wide.sum() >= MIN_MASK_PX else float("nan"),
        "hf": high_freq_fraction(win),
        "spectrum": radial_power_spectrum(win)[1],
        "grad_hist": np.histogram(gradient_magnitudes(win, erode(body, 2)), bins=GRAD_BINS)[0],
    }
    if labels is not None:
        organs = label_mask(labels, [LABELS[n] for n in ORGAN_NAMES])
        out["lv_organ"] = local_variance(win, organs) if organs.sum() >= MIN_MASK_PX else float("nan")
        out["organ_px"] = int(organs.sum())
    return out


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def phantom_images(version: int, n_axial: int, n_coronal: int, size: int = 64, seed0: int = 0):
    """``(kind, hu, labels, organmnist_class)`` for ``n_axial`` axial slices (seeds ``seed0..``;
    class ``None``) and ``n_coronal`` coronal crops (seeds ``seed0..``)."""
    from ctflow.data.abdomen import abdomen_slice, coronal_crop

    for s in range(n_axial):
        hu, lab = abdomen_slice(seed0 + s, size, hu=True, return_labels=True, version=version)
        yield "axial", hu, lab, None
    for s in range(n_coronal):
        hu, cls, lab = coronal_crop(seed0 + s, size, hu=True, return_labels=True, version=version)
        yield "coronal", hu, lab, cls


def _dicom_hu(ds) -> tuple[np.ndarray, float]:
    a = ds.pixel_array.astype(np.float64)
    hu = a * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    spacing = ds.get("PixelSpacing", None)
    return hu, float(spacing[0]) if spacing else float("nan")


def load_ct_small():
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm", download=False)
    if path is None:
        return None
    hu, px = _dicom_hu(pydicom.dcmread(path))
    return hu, px, "pydicom " + pydicom.__version__ + ": CT_small.dcm"


def load_pydicom_data(path: str | None):
    """``explicit_VR-UN.dcm`` from the pydicom-data wheel, an unzipped copy, or the file itself."""
    import pydicom

    name = "explicit_VR-UN.dcm"
    if not path:
        return None
    p = Path(path)
    if p.is_file() and p.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(p) as zf:
            members = [m for m in zf.namelist() if m.endswith("/" + name)]
            if not members:
                return None
            ds = pydicom.dcmread(io.BytesIO(zf.read(members[0])))
    elif p.is_file():
        ds = pydicom.dcmread(p)
    elif p.is_dir():
        found = sorted(p.rglob(name))
        if not found:
            return None
        ds = pydicom.dcmread(found[0])
    else:
        return None
    hu, px = _dicom_hu(ds)
    return hu, px, "pydicom-data: " + name


def load_invesalius(path: str | None, index: int | None):
    """One slice of the InVesalius example (``.inv3`` project: a gzipped tar with ``main.plist`` and
    the volume ``matrix.dat``, int16 HU) or of a folder of DICOM files; the middle one by default."""
    if not path:
        return None
    p = Path(path)
    if p.is_file() and p.suffix == ".inv3":
        with tarfile.open(p, "r:*") as tf:
            members = {Path(m.name).name: m for m in tf.getmembers() if m.isfile()}
            meta = plistlib.loads(tf.extractfile(members["main.plist"]).read())
            raw = tf.extractfile(members[meta["matrix"]["filename"]]).read()
    elif p.is_dir() and list(p.rglob("main.plist")):
        mp = min(p.rglob("main.plist"))
        meta = plistlib.loads(mp.read_bytes())
        raw = (mp.parent / meta["matrix"]["filename"]).read_bytes()
    elif p.is_dir():
        import pydicom

        series = []
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            try:
                ds = pydicom.dcmread(f)
                ds.pixel_array  # noqa: B018 (only image files)
            except Exception:  # noqa: BLE001, S112 (skip anything that is not a readable image)
                continue
            series.append(ds)
        if not series:
            return None
        series.sort(key=lambda d: float(getattr(d, "ImagePositionPatient", [0, 0, d.get("InstanceNumber", 0)])[2]))
        ds = series[len(series) // 2 if index is None else index]
        hu, px = _dicom_hu(ds)
        return hu, px, "invesalius DICOM series"
    else:
        return None
    shape = tuple(meta["matrix"]["shape"])
    vol = np.frombuffer(raw, dtype=np.dtype(meta["matrix"]["dtype"]).newbyteorder("<")).reshape(shape)
    i = shape[0] // 2 if index is None else index
    return (
        vol[i].astype(np.float64),
        float(meta["spacing"][0]),
        f"invesalius-examples Cranium.inv3, slice {i}/{shape[0]}",
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def summarise(stats: list[dict]) -> dict:
    """Mean and standard deviation over images (``nan`` entries, i.e. empty masks, skipped)."""
    out = {"n": len(stats)}
    for key in ("tv", "lv_organ", "lv_soft", "lv_wide", "hf"):
        vals = np.array([s.get(key, np.nan) for s in stats], np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = (float(vals.mean()), float(vals.std()), int(vals.size)) if vals.size else None
    out["spectrum"] = np.mean([s["spectrum"] for s in stats], axis=0)
    hist = np.sum([s["grad_hist"] for s in stats], axis=0).astype(np.float64)
    out["grad_density"] = hist / max(hist.sum(), 1.0) / np.diff(GRAD_BINS)
    return out


def _fmt(entry, n_total: int, single: bool) -> str:
    if entry is None:
        return "—"
    mean, sd, n = entry
    s = f"{mean:.3g}" if single else f"{mean:.3g} ± {sd:.2g}"
    if not single and n < n_total:
        s += f" (n={n})"
    return s


def _fmt_lv(entry, n_total: int, single: bool) -> str:
    if entry is None:
        return "—"
    s = _fmt((entry[0] * 1e3, entry[1] * 1e3, entry[2]), n_total, single)
    return f"{s} [{math.sqrt(entry[0]) * 400:.1f} HU]"


def table_rows(groups: dict) -> list[str]:
    head = (
        "| images | n | TV / pixel (body) | local var ×10³, organ labels | local var ×10³, 0–100 HU mask"
        " | local var ×10³, 0–200 HU mask | HF power fraction (> 0.25 cyc/px) |"
    )
    lines = [head, "|" + "---|" * 7]
    for name, g in groups.items():
        single = g["n"] == 1
        lines.append(
            f"| {name} | {g['n']} | {_fmt(g['tv'], g['n'], single)} | {_fmt_lv(g['lv_organ'], g['n'], single)}"
            f" | {_fmt_lv(g['lv_soft'], g['n'], single)} | {_fmt_lv(g['lv_wide'], g['n'], single)}"
            f" | {_fmt(g['hf'], g['n'], single)} |"
        )
    return lines


def toward_real(groups: dict, real_names: list[str]) -> list[str]:
    """Per statistic: do the v2 means lie closer (in log ratio) to the real slices than v1's?"""
    lines = []
    labels = {
        "tv": "TV / pixel",
        "lv_soft": "local variance (0–100 HU mask)",
        "lv_wide": "local variance (0–200 HU mask)",
        "hf": "HF power fraction",
    }
    for key, label in labels.items():
        reals = [groups[r][key][0] for r in real_names if groups[r][key] is not None]
        v1, v2 = groups["phantoms v1, mixed"][key], groups["phantoms v2, mixed"][key]
        if not reals or v1 is None or v2 is None:
            continue
        lo, hi = min(reals), max(reals)

        def dist(v, lo=lo, hi=hi):
            return 0.0 if lo <= v <= hi else min(abs(math.log(v / lo)), abs(math.log(v / hi)))

        d1, d2 = dist(v1[0]), dist(v2[0])
        verdict = (
            "inside the real range" if d2 == 0 else ("closer to" if d2 < d1 else "not closer to") + " the real range"
        )
        scale, unit = (1e3, " ×10⁻³") if key.startswith("lv") else (1.0, "")
        real = f"{lo * scale:.3g}" if lo == hi else f"{lo * scale:.3g}–{hi * scale:.3g}"
        lines.append(
            f"- {label}: v1 {v1[0] * scale:.3g} → v2 {v2[0] * scale:.3g}{unit}; real {real}: v2 is {verdict}"
            f" (|log ratio| to the nearest real value {d1:.2f} → {d2:.2f})."
        )
    return lines


def make_figure(path: Path, groups: dict, examples: list[tuple[str, np.ndarray]], size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.arange(1, size // 2 + 1) / size
    centres = 0.5 * (GRAD_BINS[1:] + GRAD_BINS[:-1])
    style = {
        "phantoms v1, mixed": {"color": "tab:blue", "lw": 2},
        "phantoms v2, mixed": {"color": "tab:orange", "lw": 2},
        "phantoms v1, axial": {"color": "tab:blue", "lw": 1, "ls": "--"},
        "phantoms v2, axial": {"color": "tab:orange", "lw": 1, "ls": "--"},
    }
    real_colors = iter(["black", "tab:green", "tab:red", "tab:purple"])
    fig = plt.figure(figsize=(15, 8.6), layout="constrained")
    gs = fig.add_gridspec(2, 6, height_ratios=[1.45, 1])
    ax_a, ax_b, ax_c = fig.add_subplot(gs[0, 0:2]), fig.add_subplot(gs[0, 2:4]), fig.add_subplot(gs[0, 4:6])
    for name, g in groups.items():
        if "coronal" in name:
            continue
        st = style.get(name) or {"color": next(real_colors), "lw": 1.6, "marker": ".", "ms": 4}
        spec = g["spectrum"]
        ax_a.semilogy(freqs, spec, label=f"{name} (n={g['n']})", **st)
        ax_b.semilogy(freqs, spec / spec.sum(), **st)
        dens = np.where(g["grad_density"] > 0, g["grad_density"], np.nan)
        ax_c.semilogy(centres, dens, label=name.split(" (")[0], **st)
    ax_a.set(
        title="radial power spectrum, as is", xlabel="spatial frequency (cycles/pixel)", ylabel="power (window units²)"
    )
    ax_b.set(
        title="same, each normalised to unit total (shape only)",
        xlabel="spatial frequency (cycles/pixel)",
        ylabel="relative power",
    )
    ax_c.set(
        title="gradient magnitude inside the body (eroded 2 px)", xlabel="|∇| (window units / pixel)", ylabel="density"
    )
    for ax in (ax_a, ax_b):
        ax.axvline(HF_CUTOFF, color="0.6", lw=0.8, ls=":")
    ax_a.legend(fontsize=8)
    ax_c.legend(fontsize=7)
    for ax in (ax_a, ax_b, ax_c):
        ax.grid(alpha=0.3, which="both", lw=0.4)
    for j, (title, img) in enumerate(examples[:6]):
        ax = fig.add_subplot(gs[1, j])
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Phantoms v1 / v2 vs real CT slices ({size}×{size}, window L40/W400 → [0, 1])")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _existing_findings(md_path: Path) -> str | None:
    if not md_path.exists():
        return None
    text = md_path.read_text()
    if FINDINGS_BEGIN in text and FINDINGS_END in text:
        return text.split(FINDINGS_BEGIN, 1)[1].split(FINDINGS_END, 1)[0].strip("\n")
    return None


def blur_check(hu64: np.ndarray) -> list[tuple[float, float, float]]:
    """``(sigma, TV / pixel, HF fraction)`` of a 64-pixel real slice after a Gaussian blur (HU)."""
    from ctflow.data.abdomen import hu_to_window

    out = []
    for sigma in BLUR_CHECK_SIGMAS:
        blurred = ndimage.gaussian_filter(np.asarray(hu64, np.float64), sigma)
        win = hu_to_window(blurred).astype(np.float64)
        out.append((sigma, tv_per_pixel(win, body_mask(hu64)), high_freq_fraction(win)))
    return out


def write_markdown(path: Path, groups: dict, real_info: dict, skipped: list[str], args, command: str) -> None:
    real_names = list(real_info)
    findings = _existing_findings(path) or "(to be written after looking at the numbers and the figure)"
    src_lines = []
    for name, info in real_info.items():
        src_lines.append(f"| {name} | {info['source']} | {info['native']} | {info['crop']} | {info['mm_per_px']:.2f} |")
    md = [
        "# Phantom realism: phantoms v1 and v2 vs real CT slices",
        "",
        "Generated by `tools/phantom_realism.py`; figure: [phantom_realism.png](phantom_realism.png). Regenerate with:",
        "",
        "```bash",
        command,
        "```",
        "",
        (
            f"Phantoms: {args.n_axial} axial slices (`abdomen_slice`) + {args.n_coronal} coronal organ crops (`coronal_crop`)"
            f" per version, seeds 0.., {args.size}×{args.size}, no extra white noise (`noise=0`; v2 draws its own"
            ' reconstruction grain). "mixed" pools both views; the real slices are axial, so the axial-only rows'
            " are the closer comparison."
        ),
        "",
        "## Statistics",
        "",
        "All in the prior's window: L40/W400 mapped onto [0, 1] and clipped (`hu_to_window`); so 0.01 window units = 4 HU.",
        "",
        (
            "- **Radial power spectrum**: periodogram of the mean-removed image times a 2-D Hann window, normalised by"
            " the window energy (white noise of variance s² has power s² at every frequency), averaged over rings"
            " |f| ≈ k/64 cycles/pixel and over images. Left panel as is (absolute power), middle panel each curve"
            " divided by its sum (shape only)."
        ),
        (
            "- **Gradient-magnitude histogram**: √(dx² + dy²) with forward differences, at pixels of the body mask"
            " (HU > -500) eroded by 2 pixels (drops the skin/air edge), pooled over images, as a density on a log axis."
        ),
        (
            "- **TV / pixel**: mean |dx| over horizontal pixel pairs inside the body (HU > -500, both pixels) plus"
            " the same for |dy|; anisotropic total variation per pixel. Counts organ edges and texture together."
        ),
        (
            "- **Local variance**: variance of each 5×5 window, with the k²/(k²−1) = 25/24 correction (unbiased for"
            " white noise), averaged over a mask eroded by 2 pixels, so every window lies inside it. Masks:"
            f" *organ labels* = union of {', '.join(ORGAN_NAMES)}, each label eroded on its own so that no window"
            " straddles two organs (phantoms only, real slices have no labels);"
            " *0–100 HU mask* = soft tissue, 0 ≤ HU ≤ 100 on the final image, the same rule on phantoms and real"
            " slices; *0–200 HU mask* = the same up to 200 HU, which also keeps contrast-enhanced parenchyma (the"
            " liver and spleen of the contrast-phase `explicit_VR-UN` slice sit at 100–150 HU and leave almost"
            " nothing of the 0–100 HU mask after erosion)."
            " Shown ×10³; in brackets the equivalent standard deviation in HU (√var × 400). Images whose eroded mask"
            f" has fewer than {MIN_MASK_PX} pixels are left out (n given when that happens)."
        ),
        (
            f"- **HF power fraction**: power at |f| > {HF_CUTOFF} cycles/pixel over all non-DC power of the same"
            " windowed 2-D spectrum (corners beyond Nyquist included; white noise gives ≈ 0.80)."
        ),
        "",
        "Phantom rows: mean ± standard deviation over images; real rows: one slice each.",
        "",
        *table_rows(groups),
        "",
        "v2 vs v1, measured against the real slices of this table (mixed phantoms):",
        "",
        *toward_real(groups, real_names),
        "",
        (
            "Side check, real slices blurred (Gaussian, in HU, after the resize) as the phantoms' partial-volume"
            " step does (σ = 0.5–1 pixel); TV / pixel and HF fraction:"
        ),
        "",
        *[
            f"- {name}: " + "; ".join(f"σ {sg:g} px: TV {tv:.3g}, HF {hf:.3g}" for sg, tv, hf in info["blur_check"])
            for name, info in real_info.items()
        ],
        "",
        "## Real slices",
        "",
        (
            "Evaluation only, read from local files (the tool never uses the network). HU from the DICOM"
            " RescaleSlope / RescaleIntercept. Each slice is cropped to a square around the body (largest connected"
            " part of HU > -500, holes filled, which drops the table) with the body spanning the same fraction of the"
            f" field of view as in the axial phantoms (median {args.body_fraction:.2f}), padded with -1024 HU, or the"
            " whole image where the body fills it; then resized to 64×64 by exact area averaging (each output pixel"
            " is the area-weighted mean of the input pixels it covers, no interpolation, which also low-passes)."
        ),
        "",
        "| slice | source | native | square crop | mm / pixel at 64 |",
        "|---|---|---|---|---|",
        *src_lines,
        "",
        (
            '- `CT_small.dcm` ships with pydicom (`pydicom.data.get_testdata_file("CT_small.dcm")`): a 128×128 CT'
            " image (pydicom's README: \"downsized to 128x128\" from NEMA's WG04 `CT1_UNC`; its 0.66 mm pixel spacing"
            " and the anatomy say it is an 85 mm crop): a vertebra with the aorta beside it and the paraspinal"
            " muscles, body filling the image, so at 64 pixels it is 1.3 mm/pixel, about 5× finer than the axial"
            " phantoms (6.25 mm/pixel)."
        ),
        (
            "- `explicit_VR-UN.dcm` (an abdominal slice at the pancreas, 512×512, posterior at the top as stored) comes"
            " from the `pydicom-data` wheel (MIT): `pip download pydicom-data --no-deps -d /tmp/pdd`, then"
            " `--pydicom-data /tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl` (the wheel is read in place; an unzipped"
            " folder or the file also work)."
        ),
        (
            "- A head CT from Debian's GPL `invesalius-examples` can be measured with `--invesalius`; its numbers are"
            " printed only and are deliberately not part of this page or the figure."
        ),
        *([f"- Skipped in this run: {', '.join(skipped)}."] if skipped else []),
        "",
        "## Findings",
        "",
        FINDINGS_BEGIN,
        findings,
        FINDINGS_END,
        "",
    ]
    path.write_text("\n".join(md))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pydicom-data", metavar="PATH", help="pydicom-data wheel, its unzipped folder, or explicit_VR-UN.dcm"
    )
    ap.add_argument(
        "--invesalius", metavar="PATH", help="Cranium.inv3, its extracted folder, or a DICOM folder (GPL: stdout only)"
    )
    ap.add_argument("--invesalius-slice", type=int, default=None, help="slice index (default: the middle one)")
    ap.add_argument("--n-axial", type=int, default=200)
    ap.add_argument("--n-coronal", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)

    from ctflow.data.abdomen import hu_to_window

    groups: dict[str, dict] = {}
    examples: list[tuple[str, np.ndarray]] = []
    fractions = []
    for version in (1, 2):
        per_kind: dict[str, list] = {"axial": [], "coronal": []}
        shown = set()
        for kind, hu, lab, cls in phantom_images(version, args.n_axial, args.n_coronal, args.size):
            per_kind[kind].append(image_stats(hu, lab))
            if kind == "axial" and version == 1:
                rows, cols = np.nonzero(largest_component(hu > BODY_HU))
                if rows.size:
                    fractions.append(max(np.ptp(rows) + 1, np.ptp(cols) + 1) / args.size)
            # examples: the first axial slice, the first coronal crop centred on the liver (class 6)
            if kind not in shown and (kind == "axial" or cls == 6):
                shown.add(kind)
                examples.append((f"v{version} {kind}" + (" (liver crop)" if cls == 6 else ""), hu_to_window(hu)))
        groups[f"phantoms v{version}, mixed"] = summarise(per_kind["axial"] + per_kind["coronal"])
        groups[f"phantoms v{version}, axial"] = summarise(per_kind["axial"])
        groups[f"phantoms v{version}, coronal"] = summarise(per_kind["coronal"])
        print(f"phantoms v{version}: {args.n_axial} axial + {args.n_coronal} coronal done", file=sys.stderr)
    args.body_fraction = float(np.median(fractions)) if fractions else 0.8

    real_info: dict[str, dict] = {}
    skipped: list[str] = []
    loaded = {
        "CT_small (pydicom)": load_ct_small(),
        "explicit_VR-UN (pydicom-data)": load_pydicom_data(args.pydicom_data),
    }
    for name, item in loaded.items():
        if item is None:
            msg = f"{name}: not found" + (
                "" if "CT_small" in name else " (pass --pydicom-data PATH; see the docstring)"
            )
            print("skipping " + msg, file=sys.stderr)
            skipped.append(msg)
            continue
        hu, px, source = item
        small, info = body_square(hu, px, args.size, args.body_fraction)
        info["source"] = source
        info["blur_check"] = blur_check(small)
        real_info[name] = info
        st = image_stats(small)
        st["lv_organ"] = float("nan")
        groups[name] = summarise([st])
        examples.append((f"{name.split(' ')[0]} ({info['mm_per_px']:.1f} mm/px)", hu_to_window(small)))

    # examples: v1 axial, v1 coronal, v2 axial, v2 coronal (same seeds), then the real slices
    print("\n".join(table_rows(groups)))
    if not args.no_write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        make_figure(args.out_dir / "phantom_realism.png", groups, examples, args.size)
        cmd = (
            "nice .venv/bin/python tools/phantom_realism.py --pydicom-data /tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl"
        )
        write_markdown(args.out_dir / "phantom_realism.md", groups, real_info, skipped, args, cmd)
        print(
            f"wrote {args.out_dir / 'phantom_realism.png'} and {args.out_dir / 'phantom_realism.md'}", file=sys.stderr
        )

    # GPL data: measured and printed here, never written to --out-dir.
    inv = load_invesalius(args.invesalius, args.invesalius_slice) if args.invesalius else None
    if args.invesalius and inv is None:
        print(f"skipping invesalius: nothing readable at {args.invesalius}", file=sys.stderr)
    if inv is not None:
        hu, px, source = inv
        small, info = body_square(hu, px, args.size, args.body_fraction)
        st = image_stats(small)
        st["lv_organ"] = float("nan")
        private = {"invesalius head CT": summarise([st])}
        print(
            f"\n# {source}; {info['native']}, crop {info['crop']}, {info['mm_per_px']:.2f} mm/px -- GPL, NOT written to {args.out_dir}"
        )
        print("\n".join(table_rows(private)))
        spec = private["invesalius head CT"]["spectrum"]
        print("radial spectrum at k/64, k=1..32:", " ".join(f"{v:.3g}" for v in spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
