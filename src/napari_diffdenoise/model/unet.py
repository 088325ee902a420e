"""The denoising UNet ``S_θ(x_t, y, t)`` with a per-pixel time embedding (the SVNR idea).

Inputs are three planes: the current diffusion state ``x_t``, the observation ``y`` (the
condition) and the per-pixel time map ``t``. The time map is embedded pixel by pixel
(sinusoidal features of t followed by 1×1 convolutions) and added to the features of every
residual block at that block's resolution (average-pooled), so each pixel is told its own time.
The network predicts the clean image as ``x_t - residual``.

Blocks have no normalisation layer by default (as in DRUNet): GroupNorm statistics depend on the
whole input, so a tiled run would give tile-dependent results and visible seams. ``norm="group"``
is available for experiments.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "TimeUNet", "deepen_state_dict"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`TimeUNet` (stored in the JSON sidecar of every weight file)."""

    channels: tuple[int, ...] = (32, 64, 96)
    blocks_per_level: int = 1
    time_features: int = 16
    time_dim: int = 32
    norm: str = "none"
    in_planes: int = 3

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UNet architecture fields: {sorted(unknown)}")
        data = dict(data)
        if "channels" in data:
            data["channels"] = tuple(int(c) for c in data["channels"])
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    def validate(self) -> None:
        if len(self.channels) < 2 or any(int(c) < 4 for c in self.channels):
            raise ValueError(f"channels must list at least two levels of >= 4, got {self.channels}")
        if self.norm not in ("none", "group"):
            raise ValueError(f"norm must be 'none' or 'group', got {self.norm!r}")
        if self.blocks_per_level < 1 or self.time_features < 1 or self.time_dim < 1:
            raise ValueError("blocks_per_level, time_features and time_dim must be >= 1")

    @property
    def multiple(self) -> int:
        """Spatial sizes must be a multiple of this (one halving per extra level)."""
        return 2 ** (len(self.channels) - 1)


def _spatially_uniform(t: torch.Tensor) -> bool:
    flat = t.flatten(2)
    return bool((flat == flat[:, :, :1]).all())


class TimeEmbedding(nn.Module):
    """Per-pixel sinusoidal embedding of a time map ``(B, 1, H, W)`` → ``(B, dim, H, W)``."""

    def __init__(self, features: int, dim: int) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(200.0), features)) * math.pi
        self.register_buffer("freqs", freqs.view(1, features, 1, 1), persistent=False)
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * features + 1, dim, 1), nn.SiLU(), nn.Conv2d(dim, dim, 1), nn.SiLU()
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        phase = t * self.freqs
        return self.mlp(torch.cat([t, torch.sin(phase), torch.cos(phase)], dim=1))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class ResBlock(nn.Module):
    """Residual block; the time embedding (pooled to this resolution) is projected and added."""

    def __init__(self, channels: int, time_dim: int, norm: str) -> None:
        super().__init__()
        self.norm1 = _norm(norm, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.time = nn.Conv2d(time_dim, channels, 1)
        self.norm2 = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class TimeUNet(nn.Module):
    """UNet ``S_θ(x_t, y, t) → x̂0`` with a per-pixel time embedding at every scale."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        cfg.validate()
        self.config = cfg
        ch = cfg.channels
        n = cfg.blocks_per_level
        self.embed = TimeEmbedding(cfg.time_features, cfg.time_dim)
        self.head = nn.Conv2d(cfg.in_planes, ch[0], 3, padding=1)
        self.enc = nn.ModuleList(
            nn.ModuleList(ResBlock(c, cfg.time_dim, cfg.norm) for _ in range(n)) for c in ch[:-1]
        )
        self.down = nn.ModuleList(
            nn.Conv2d(ch[i], ch[i + 1], 2, stride=2) for i in range(len(ch) - 1)
        )
        self.mid = nn.ModuleList(ResBlock(ch[-1], cfg.time_dim, cfg.norm) for _ in range(2 * n))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(len(ch) - 1)
        )
        self.dec = nn.ModuleList(
            nn.ModuleList(ResBlock(c, cfg.time_dim, cfg.norm) for _ in range(n)) for c in ch[:-1]
        )
        self.tail = nn.Conv2d(ch[0], 1, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict the clean image. All inputs ``(B, 1, H, W)``, H and W multiples of
        ``config.multiple`` (the engine pads)."""
        return x_t - self.trunk(torch.cat([x_t, y, t], dim=1), self.time_embeddings(t))

    def time_embeddings(self, t: torch.Tensor, cast=None) -> list[torch.Tensor]:
        """The time map's embedding at every level's resolution (``cast``, if given, is applied
        to a per-pixel embedding before it is pooled)."""
        levels = len(self.down) + 1
        if _spatially_uniform(t):
            # One time per image (the usual Gaussian case): embed it once and let every block
            # broadcast it, instead of running the embedding and its projections per pixel.
            return [self.embed(t[:, :, :1, :1])] * levels
        emb = self.embed(t)
        embs = [emb if cast is None else cast(emb)]
        for _ in range(levels - 1):
            embs.append(F.avg_pool2d(embs[-1], 2))
        return embs

    def trunk(self, inputs: torch.Tensor, embs: list[torch.Tensor]) -> torch.Tensor:
        """The residual the network subtracts from ``x_t``, from the stacked inputs
        ``(x_t, y, t)`` and the time embeddings (:meth:`time_embeddings`)."""
        h = self.head(inputs)
        skips = []
        for level, (blocks, down) in enumerate(zip(self.enc, self.down)):
            for block in blocks:
                h = block(h, embs[level])
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, embs[-1])
        for level in reversed(range(len(self.up))):
            h = self.up[level](h) + skips[level]
            for block in self.dec[level]:
                h = block(h, embs[level])
        return self.tail(h)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


_BLOCK_KEY = re.compile(r"^(enc|dec)\.(\d+)\.\d+\.|^mid\.\d+\.")


def _block_group(key: str) -> str | None:
    """``"enc.<level>"``, ``"dec.<level>"`` or ``"mid"`` for a residual block's tensor, else None."""
    m = _BLOCK_KEY.match(key)
    if m is None:
        return None
    return f"{m[1]}.{m[2]}" if m[1] else "mid"


def deepen_state_dict(state: dict[str, torch.Tensor], model: TimeUNet) -> dict[str, torch.Tensor]:
    """The weights of a shallower :class:`TimeUNet` (same channels, fewer residual blocks per
    level) as a full state dict for ``model``, computing the same function.

    The old blocks keep their places (the first ones of each level); every extra block keeps
    ``model``'s own initialisation except its second convolution, which is zeroed, so the block
    starts as the identity (``x + 0``) and training grows it from there (Net2DeeperNet for
    residual blocks). ``ValueError`` when ``state`` is not such a shallower copy.
    """
    target = model.state_dict()
    extra = sorted(set(state) - set(target))
    if extra:
        raise ValueError(f"the weights hold tensors the model lacks: {extra[:3]}")
    groups = {_block_group(key) for key in state} - {None}
    out: dict[str, torch.Tensor] = {}
    for key, value in target.items():
        if key in state:
            if state[key].shape != value.shape:
                raise ValueError(
                    f"{key}: shape {tuple(state[key].shape)} in the weights, "
                    f"{tuple(value.shape)} in the model (channels differ)"
                )
            out[key] = state[key].to(value.dtype)
            continue
        group = _block_group(key)
        if group is None:
            raise ValueError(f"{key} is missing from the weights")
        if group not in groups:
            raise ValueError(f"the weights have no blocks at {group}")
        is_conv2 = key.endswith(".conv2.weight") or key.endswith(".conv2.bias")
        out[key] = torch.zeros_like(value) if is_conv2 else value.clone()
    return out
