r"""A compact time-conditioned UNet for one-channel images, sized by :class:`UNetConfig`.

Residual blocks (GroupNorm → SiLU → 3×3 conv, twice, with the time embedding added in between),
sinusoidal time embedding of :math:`t \in [0, 1]` followed by an MLP, strided-conv downsampling,
nearest-neighbour upsampling, skip connections by concatenation, and optional single-head
self-attention at chosen resolutions. Works for any image size divisible by ``2**(len(channel_mults)-1)``
(28, 64, 128 with the default three levels).
"""

from __future__ import annotations

import dataclasses
import json
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError


def config_from_dict(cls, d: dict):
    """Build the config dataclass ``cls`` from a mapping; unknown keys are errors, not ignored."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet` (JSON-serialisable; stored beside every checkpoint)."""

    image_size: int = 64
    in_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = ()
    groups: int = 8
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        factor = 2 ** (len(self.channel_mults) - 1)
        if self.image_size < 1 or self.image_size % factor:
            raise ConfigError(
                f"UNetConfig: image_size {self.image_size} must be divisible by 2**(levels-1) = {factor} "
                f"for channel_mults={self.channel_mults}"
            )
        for c in (self.base_channels * m for m in self.channel_mults):
            if c % self.groups:
                raise ConfigError(f"UNetConfig: every channel count must be divisible by groups={self.groups}; {c} is not")
        if self.num_res_blocks < 1 or self.in_channels < 1 or not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"UNetConfig: invalid sizes in {self}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        return config_from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of ``1000·t`` (so t ∈ [0, 1] spans the usual frequency range): ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm, self.qkv, self.out = nn.GroupNorm(groups, ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """``UNet(config)(x, t)`` → a tensor shaped like ``x``; ``t`` is ``(B,)`` in [0, 1]."""

    def __init__(self, config: UNetConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or UNetConfig(**kwargs)
        c = self.config
        temb = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inp = nn.Conv2d(c.in_channels, c.base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        chans = [c.base_channels]
        ch, res = c.base_channels, c.image_size
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                blocks = nn.ModuleList([ResBlock(ch, c.base_channels * mult, temb, c.groups, c.dropout)])
                ch = c.base_channels * mult
                if res in c.attention_resolutions:
                    blocks.append(Attention(ch, c.groups))
                self.down.append(blocks)
                chans.append(ch)
            if level < len(c.channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                chans.append(ch)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, temb, c.groups, c.dropout), Attention(ch, c.groups), ResBlock(ch, ch, temb, c.groups, c.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            for _ in range(c.num_res_blocks + 1):
                blocks = nn.ModuleList([ResBlock(ch + chans.pop(), c.base_channels * mult, temb, c.groups, c.dropout)])
                ch = c.base_channels * mult
                if res in c.attention_resolutions:
                    blocks.append(Attention(ch, c.groups))
                self.up.append(blocks)
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]))
                res *= 2
        self.out = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, c.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[-1] != c.image_size or x.shape[-2] != c.image_size:
            raise ConfigError(
                f"UNet expects (B, {c.in_channels}, {c.image_size}, {c.image_size}) inputs, got {tuple(x.shape)}"
            )
        emb = self.time_mlp(timestep_embedding(t, c.base_channels))
        h = self.inp(x)
        skips = [h]
        for blocks in self.down:
            if isinstance(blocks[0], ResBlock):
                h = blocks[0](h, emb)
                for extra in blocks[1:]:
                    h = extra(h)
            else:
                h = blocks[0](h)
            skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = blocks[0](torch.cat([h, skips.pop()], dim=1), emb)
                for extra in blocks[1:]:
                    h = extra(h)
            else:
                h = blocks[1](blocks[0](h))
        return self.out(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
