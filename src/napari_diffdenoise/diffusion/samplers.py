"""Reverse-process samplers over per-pixel schedules (docs/method.md).

All samplers start at ``x_0 = y`` with ``t_0 = τ`` and call the network ``S_θ(x_k, y, t_k)`` once
per step. Pixels with τ = 0 are returned unchanged. ``eta > 0`` (``indi`` only) injects fresh
noise, giving posterior samples whose spread is an uncertainty estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import torch

from .._progress import run_to_end
from .._validation import check_choice, check_int, check_number
from .schedule import pixel_schedule

__all__ = ["SAMPLERS", "check_sampler_args", "sample", "iter_sample"]

SAMPLERS = ("direct", "origin", "cold", "indi")

Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_sampler_args(sampler: str, steps: int, eta: float) -> int:
    """Validate sampler, steps and η (``ValueError``); returns the steps actually taken."""
    check_choice(sampler, "sampler", SAMPLERS)
    steps = check_int(steps, "steps", low=1)
    eta = check_number(eta, "eta", low=0.0, high=1.0)
    if eta > 0 and sampler != "indi":
        raise ValueError("eta > 0 (stochastic sampling) is only defined for the 'indi' sampler")
    return 1 if sampler == "direct" else int(steps)


def iter_sample(
    net: Network,
    y: torch.Tensor,
    tau: torch.Tensor,
    *,
    sampler: str = "direct",
    steps: int = 1,
    eta: float = 0.0,
    sigma_max: float = 1.0,
    generator: torch.Generator | None = None,
) -> Generator[tuple[int, int, torch.Tensor], None, torch.Tensor]:
    """Yield ``(k, K, x_k)`` after each step; returns (and last yields) the result.

    ``y`` and ``tau`` are ``(B, 1, H, W)`` in normalised units; τ in [0, 1].
    """
    steps = check_sampler_args(sampler, steps, eta)
    ts = pixel_schedule(tau, steps)
    keep = tau <= 0
    safe_tau = tau.clamp_min(1e-12)
    x = y
    for k in range(steps):
        t_now, t_next = ts[k], ts[k + 1]
        x0_hat = net(x, y, t_now)
        if sampler == "direct":
            x = x0_hat
        elif sampler == "origin":
            x = x0_hat + (t_next / safe_tau) * (y - x0_hat)
        elif sampler == "cold":
            x = x - ((t_now - t_next) / safe_tau) * (y - x0_hat)
        else:  # indi
            s = eta * t_next
            ratio = torch.sqrt((t_next**2 - s**2).clamp_min(0.0)) / t_now.clamp_min(1e-12)
            x_new = x0_hat + ratio * (x - x0_hat)
            if eta > 0:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x_new = x_new + s * sigma_max * noise
            x = x_new
        x = torch.where(keep, y, x)
        yield k + 1, steps, x
    return x


def sample(net: Network, y: torch.Tensor, tau: torch.Tensor, **kwargs) -> torch.Tensor:
    """Run :func:`iter_sample` to completion and return the final estimate."""
    return run_to_end(iter_sample(net, y, tau, **kwargs))
