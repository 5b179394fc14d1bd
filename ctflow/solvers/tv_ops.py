"""Discrete gradient, divergence and isotropic total variation of batched images ``(B, 1, H, W)``."""

from __future__ import annotations

import torch


def grad2d(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: (B, 1, H, W) → (B, 2, H, W)."""
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return torch.cat([gy, gx], dim=1)


def div2d(p: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`grad2d`: ⟨grad x, p⟩ = −⟨x, div p⟩. (B, 2, H, W) → (B, 1, H, W)."""
    py, px = p[:, :1].clone(), p[:, 1:].clone()
    px[..., :, -1] = 0.0
    py[..., -1, :] = 0.0
    d = px.clone()
    d[..., :, 1:] -= px[..., :, :-1]
    d = d + py
    d[..., 1:, :] -= py[..., :-1, :]
    return d


def tv_norm(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Isotropic TV per sample, Σ sqrt(|∇x|² + eps²) (eps > 0 gives a smooth surrogate)."""
    g = grad2d(x)
    return (g.pow(2).sum(1) + eps * eps).sqrt().reshape(x.shape[0], -1).sum(1)
