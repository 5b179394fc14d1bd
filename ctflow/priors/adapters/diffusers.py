"""A ``diffusers`` UNet2DModel as a ctflow velocity field (optional extra)."""

from __future__ import annotations

import torch


def _time_batch(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` (float, 0-d or (B,) tensor) → a (B,) tensor on x's device/dtype."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    if tt.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a ({x.shape[0]},) tensor for x of shape {tuple(x.shape)}; got {tuple(tt.shape)}")
    return tt



from ..velocity import VelocityModel, _time_batch


class DiffusersVelocity(VelocityModel):
    """Adapter for a diffusers ``UNet2DModel`` trained as a rectified flow (public CT flow priors ship
    this way): ``v = unet(x, t · time_scale).sample``. Such checkpoints are usually called with
    ``time_scale = 999`` and trained on images in [-1, 1]; ``data_range="[-1,1]"`` converts ctflow's
    [0, 1] images in and velocities out (x' = 2x − 1, so v = v'/2).

    Requires the optional extra ``pip install "ctflow[diffusers]"``; ctflow's core never imports it.
    Build one with :meth:`from_pretrained` (a local folder; no downloads happen at run time).
    """

    def __init__(self, unet, time_scale: float = 999.0, data_range: str = "[0,1]"):
        super().__init__(unet, time_scale)
        if data_range not in ("[0,1]", "[-1,1]"):
            raise ValueError(f"data_range must be '[0,1]' or '[-1,1]', got {data_range!r}")
        self.data_range = data_range

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        tt = _time_batch(t, x) * self.time_scale
        if self.data_range == "[-1,1]":
            out = self.net(2.0 * x - 1.0, tt)
            return 0.5 * getattr(out, "sample", out)
        out = self.net(x, tt)
        return getattr(out, "sample", out)

    @classmethod
    def from_pretrained(cls, folder: str, **kwargs) -> DiffusersVelocity:
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise ImportError('the diffusers adapter needs the optional extra: pip install "ctflow[diffusers]"') from None
        unet = UNet2DModel.from_pretrained(folder, use_safetensors=True, local_files_only=True)
        return cls(unet.eval(), **kwargs)
