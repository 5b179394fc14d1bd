r"""Filtered back-projection for parallel and fan beam (flat and curved detectors), in torch.

Parallel beam (views over [0, π)):

.. math:: f(p) = \sum_i Δθ_i\, Q_i(p\cdot û_i), \qquad Q_i = τ\,(R_i * h_τ),

with :math:`h_τ` the band-limited ramp kernel at detector pitch τ (:math:`h(0)=1/4τ^2`,
:math:`h(k)=-1/(πkτ)^2` for odd k, 0 for even k). The back projection is the operator's own
adjoint: :math:`Aᵀ` sums :math:`(\text{pixel area}/τ)\,Q_i` over views, so
:math:`f = (τ/\text{area})\,Aᵀ(Δθ\,Q)`, the same construction as ASTRA's CPU ``FBP``.

Fan beam (Kak & Slaney, ch. 3), source distance D, source–detector distance S, full 2π scan:

* flat detector, isocentre coordinate :math:`s = uD/S`, :math:`τ = ΔuD/S`:
  :math:`f(p) = \sum_i \tfrac12 Δβ_i\, U^{-2}\, [τ (R_i\,D/\sqrt{D^2+s^2}) * h_τ](s')`,
  :math:`U = L_\parallel/D`;
* curved (equiangular) detector, :math:`γ = u/S`, :math:`α = Δu/S`:
  :math:`f(p) = \sum_i \tfrac12 Δβ_i\, L^{-2}\, [α (R_i\,D\cosγ) * (γ/\sinγ)^2 h_α](γ')`,

where :math:`L_\parallel, L` are the distances from the source to the pixel along the central ray
and along the ray. This distance weighting is not what a matrix transpose does, so fan-beam FBP
back-projects with a pixel-driven, linearly interpolating torch loop over views (CPU or GPU)
instead of ASTRA's adjoint (ASTRA's CPU ``FBP`` is parallel-only). Scans shorter than 2π but at least
π + fan angle use Parker weights instead of the ½.

Window functions multiply the ramp in frequency; ``f`` is the frequency normalised to Nyquist and
``c = frequency_scaling``; frequencies above ``c`` are cut:
ram-lak 1, shepp-logan :math:`\mathrm{sinc}(f/2c)`, cosine :math:`\cos(πf/2c)`,
hamming :math:`0.54+0.46\cos(πf/c)`, hann :math:`0.5+0.5\cos(πf/c)`.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import torch

from ..errors import FBPWarning, GeometryError, NonFiniteError, ShapeError
from ..geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry, angle_weights, load_geometry
from .parker import parker_weights

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def _window(name: str, f: np.ndarray, c: float) -> np.ndarray:
    fs = f / c
    if name == "ram-lak":
        w = np.ones_like(f)
    elif name == "shepp-logan":
        w = np.sinc(fs / 2.0)  # numpy sinc(x) = sin(πx)/(πx)
    elif name == "cosine":
        w = np.cos(np.pi * fs / 2.0)
    elif name == "hamming":
        w = 0.54 + 0.46 * np.cos(np.pi * fs)
    elif name == "hann":
        w = 0.5 + 0.5 * np.cos(np.pi * fs)
    else:  # pragma: no cover - validated by the caller
        raise ValueError(name)
    return np.where(f <= c, w, 0.0)


def ramp_filter(
    n: int,
    spacing: float,
    filter: str = "ram-lak",
    frequency_scaling: float = 1.0,
    curved_spacing: float | None = None,
) -> tuple[np.ndarray, int]:
    """Frequency response (rfft bins) of the windowed ramp for ``n`` detector samples.

    Returns ``(H, L)`` with ``L`` the zero-padded length (power of two ≥ 2n, so the linear
    convolution does not wrap). ``H`` already includes the spacing factor of the discrete
    convolution. With ``curved_spacing=α`` the kernel is the equiangular one, ``(kα/sin kα)² h``.
    """
    if filter not in FILTERS:
        raise ValueError(f"unknown FBP filter {filter!r}; choose one of {FILTERS}")
    if not (0.0 < frequency_scaling <= 1.0):
        raise ValueError(f"frequency_scaling must be in (0, 1], got {frequency_scaling}")
    L = 1 << max(1, int(math.ceil(math.log2(2 * n))))
    k = np.fft.fftfreq(L, d=1.0 / L)  # integer offsets 0, 1, ..., -1
    tau = spacing
    h = np.zeros(L)
    h[0] = 1.0 / (4.0 * tau * tau)
    odd = (k.astype(np.int64) % 2) == 1
    h[odd] = -1.0 / (np.pi * k[odd] * tau) ** 2
    if curved_spacing is not None:
        ka = k * curved_spacing
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(k == 0, 1.0, (ka / np.sin(ka)) ** 2)
        h = h * factor
    H = np.fft.rfft(h).real * tau
    f = np.arange(H.size) / (L / 2.0)
    return H * _window(filter, f, frequency_scaling), L


def _apply_filter(p: torch.Tensor, H: np.ndarray, L: int) -> torch.Tensor:
    n = p.shape[-1]
    P = torch.fft.rfft(p, n=L, dim=-1)
    Ht = torch.as_tensor(H, dtype=p.dtype, device=p.device)
    return torch.fft.irfft(P * Ht, n=L, dim=-1)[..., :n]


@functools.lru_cache(maxsize=2)  # keyed by value (geometries are immutable); _parallel_operator.cache_clear() empties it
def _parallel_operator(geometry: ParallelBeamGeometry):
    from .ray_transform import RayTransform

    return RayTransform(geometry)


def fbp(
    sinogram: Any,
    geometry: Geometry | str,
    filter: str = "ram-lak",
    frequency_scaling: float = 1.0,
    operator=None,
) -> Any:
    """Filtered back-projection of ``sinogram`` ``(..., n_angles, n_detectors)`` → ``(..., H, W)``.

    Works for parallel and fan beam (flat or curved detector) on any torch device; numpy in gives
    numpy out, torch in gives torch out (float32/float64 kept). ``operator`` may pass an existing
    :class:`~ctflow.RayTransform` for the parallel back projection. See the module docstring for the
    formulas and weights.
    """
    geometry = load_geometry(geometry)
    if filter not in FILTERS:
        raise ValueError(f"unknown FBP filter {filter!r}; choose one of {FILTERS}")
    is_numpy = isinstance(sinogram, np.ndarray)
    y = torch.from_numpy(np.ascontiguousarray(sinogram)) if is_numpy else sinogram
    if not isinstance(y, torch.Tensor):
        raise ShapeError(f"fbp expects a torch.Tensor or numpy array, got {type(sinogram).__name__}")
    if not y.is_floating_point():
        y = y.to(torch.float32)
    if y.ndim < 2 or tuple(y.shape[-2:]) != geometry.sinogram_shape:
        raise ShapeError(
            f"fbp: the sinogram has shape {tuple(y.shape)} but geometry {geometry.name or type(geometry).__name__!r} "
            f"expects (..., {geometry.n_angles}, {geometry.n_detectors}) = (..., n_angles, n_detectors); "
            "check the angle count and detector count (or transpose a (detectors, angles) array)"
        )
    if not bool(torch.isfinite(y).all()):
        raise NonFiniteError(
            f"fbp: the sinogram contains {int((~torch.isfinite(y)).sum())} NaN/Inf value(s); "
            "fix them first (e.g. clip zero counts before the log)"
        )
    dw = torch.as_tensor(angle_weights(geometry.angles), dtype=y.dtype, device=y.device)
    if isinstance(geometry, ParallelBeamGeometry):
        out = _fbp_parallel(y, geometry, filter, frequency_scaling, dw, operator)
    elif isinstance(geometry, FanBeamGeometry):
        out = _fbp_fan(y, geometry, filter, frequency_scaling, dw)
    else:  # pragma: no cover
        raise GeometryError(f"fbp does not know geometry type {type(geometry).__name__}")
    return out.numpy() if is_numpy else out


def _fbp_parallel(y, geometry, filter, c, dw, operator):
    span = float(dw.sum())
    if span > math.pi * (1 + 1e-6):
        dw = dw * (math.pi / span)  # redundant coverage (e.g. 2π): average the repeated directions
    H, L = ramp_filter(geometry.n_detectors, geometry.detector_spacing, filter, c)
    q = _apply_filter(y, H, L) * dw[:, None]
    A = operator if operator is not None else _parallel_operator(geometry)
    if A.geometry != geometry:
        raise GeometryError("fbp: the operator passed does not have the sinogram's geometry")
    return A.adjoint(q) * (geometry.detector_spacing / geometry.pixel_size**2)


def _fbp_fan(y, g: FanBeamGeometry, filter, c, dw):
    D, S = g.source_to_isocenter, g.source_to_detector
    span = float(dw.sum())
    gammas = g.fan_angles()
    half_fan = float(np.max(np.abs(gammas)))
    if span >= 2 * math.pi * (1 - 1e-6):
        view_w = dw * (math.pi / span)  # ½ Δβ for one full rotation
        pre = None
    elif span >= math.pi + 2 * half_fan - 1e-9:
        view_w = dw
        pre = torch.as_tensor(parker_weights(g), dtype=y.dtype, device=y.device)
    else:
        warnings.warn(
            f"fan-beam FBP: the views cover {math.degrees(span):.1f}°, less than a short scan "
            f"(180° + fan angle = {math.degrees(math.pi + 2 * half_fan):.1f}°); the result is incomplete",
            FBPWarning,
            stacklevel=3,
        )
        view_w = dw * 0.5
        pre = None
    u = torch.as_tensor(g.detector_coordinates(), dtype=y.dtype, device=y.device)
    if g.detector_shape == "flat":
        s = u * (D / S)
        weight = D / torch.sqrt(D * D + s * s)
        H, L = ramp_filter(g.n_detectors, g.detector_spacing * D / S, filter, c)
    else:
        weight = D * torch.cos(u / S)
        H, L = ramp_filter(g.n_detectors, g.detector_spacing / S, filter, c, curved_spacing=g.detector_spacing / S)
    p = y * weight
    if pre is not None:
        p = p * pre
    q = _apply_filter(p, H, L) * view_w[:, None]
    return _fan_backproject(q, g)


def _fan_backproject(q: torch.Tensor, g: FanBeamGeometry, chunk_elems: int = 2**18) -> torch.Tensor:
    """Pixel-driven, distance-weighted back projection of filtered fan data ``q`` (..., A, n).

    Each view's detector row is padded with zeros on both sides, so a pixel whose ray misses the
    detector reads zeros and linear interpolation needs no masks. Views are processed in chunks of
    about ``chunk_elems`` pixel-view pairs to keep the temporaries in cache.
    """
    lead = q.shape[:-2]
    n = g.n_detectors
    qf = torch.nn.functional.pad(q.reshape(-1, g.n_angles, n), (1, 2))  # (N, A, n + 3)
    N, dev, dt = qf.shape[0], q.device, q.dtype
    xs, ys = (torch.as_tensor(a, dtype=dt, device=dev) for a in g.pixel_centers())
    x_row, y_col = xs[0], ys[:, 0]  # separable pixel grid: x per column, y per row
    th = torch.as_tensor(np.asarray(g.angles), dtype=dt, device=dev)
    D, S, du = g.source_to_isocenter, g.source_to_detector, g.detector_spacing
    centre = (n - 1) / 2.0 - g.detector_offset / du + 1.0  # +1 for the left zero pad
    P = xs.numel()
    out = torch.zeros(N, P, dtype=dt, device=dev)
    chunk = max(1, chunk_elems // P)
    for start in range(0, g.n_angles, chunk):
        t = th[start : start + chunk]
        c = t.numel()
        s_x, s_y = torch.sin(t)[:, None, None], -torch.cos(t)[:, None, None]
        # l_par: source → pixel along the central ray; l_perp: along the detector axis û = (-s_y, s_x)
        l_par = D - (x_row * s_x + y_col[:, None] * s_y)
        l_perp = x_row * (-s_y) + y_col[:, None] * s_x
        if g.detector_shape == "flat":
            inv = 1.0 / l_par
            idx = (S / du) * l_perp * inv + centre
            w = (D * inv) ** 2
        else:
            idx = (S / du) * torch.atan2(l_perp, l_par) + centre
            w = 1.0 / (l_par * l_par + l_perp * l_perp)
        idx = idx.clamp_(0.0, n + 1.0).reshape(c, P)
        i0 = idx.floor()
        frac = idx - i0
        flat_index = (i0.long() + torch.arange(c, device=dev)[:, None] * (n + 3)).reshape(-1)
        rows = qf[:, start : start + c, :].reshape(N, -1)
        v0 = rows.index_select(1, flat_index).reshape(N, c, P)
        v1 = rows.index_select(1, flat_index + 1).reshape(N, c, P)
        val = torch.lerp(v0, v1, frac)
        out += torch.einsum("ncp,cp->np", val, w.reshape(c, P))
    return out.reshape(*lead, *g.image_shape)
