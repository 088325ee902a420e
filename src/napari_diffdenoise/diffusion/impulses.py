"""Impulse (salt-and-pepper) handling: detected impulses are treated as missing and filled from
their valid neighbours (normalised convolution), then denoised with their own time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Diffusion time given to filled impulse pixels (the fill error is treated as noise of level
# ``IMPULSE_TIME · σ_max``): one constant for the noise report's time map, training and sampling.
from ..noise.report import IMPULSE_TIME

__all__ = ["IMPULSE_TIME", "fill_missing"]


def gaussian_kernel_1d(sigma: float, radius: int, device=None, dtype=None) -> torch.Tensor:
    """Normalised 1-D Gaussian weights at offsets ``-radius..radius``."""
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _gauss_kernel(sigma: float, device, dtype) -> torch.Tensor:
    r = max(1, int(round(3 * sigma)))
    g = gaussian_kernel_1d(sigma, r, device, dtype)
    return (g[:, None] * g[None, :]).view(1, 1, 2 * r + 1, 2 * r + 1)


def fill_missing(y: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """Replace pixels where ``missing`` is true by a Gaussian-weighted mean of valid neighbours.

    ``y`` and ``missing`` are ``(B, 1, H, W)``. Widens the kernel until every missing pixel has
    valid neighbours (a batch item with no valid pixel at all is left as is).
    """
    valid = (~missing).to(y.dtype)
    out = y.clone()
    todo = missing.clone()
    for sigma in (1.0, 2.0, 4.0, 8.0, 16.0):
        if not bool(todo.any()):
            break
        k = _gauss_kernel(sigma, y.device, y.dtype)
        pad = k.shape[-1] // 2
        mode = "reflect" if min(y.shape[-2:]) > pad else "replicate"
        num = F.conv2d(F.pad(y * valid, (pad,) * 4, mode=mode), k)
        den = F.conv2d(F.pad(valid, (pad,) * 4, mode=mode), k)
        ok = todo & (den > 1e-3)
        out = torch.where(ok, num / den.clamp_min(1e-12), out)
        todo = todo & ~ok
    return out
