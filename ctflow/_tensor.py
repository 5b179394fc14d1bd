"""Tensor helpers shared by every floor."""

from __future__ import annotations

import torch


def per_sample(v, like: torch.Tensor):
    """Per-sample values ``v`` of shape ``(B,)`` reshaped to ``(B, 1, …)`` to broadcast against
    ``like`` ``(B, …)``; Python numbers pass through unchanged."""
    if isinstance(v, torch.Tensor):
        return v.reshape(-1, *([1] * (like.ndim - 1)))
    return v
