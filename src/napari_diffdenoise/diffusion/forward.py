"""The forward process: the straight path between a clean image and its noisy observation.

``x_t = x0 + (t / τ_y) · (y − x0)`` per pixel, with ``t ≤ τ_y`` and ``x_t = x0`` where τ_y = 0.
The noise left in ``x_t`` has level ``t · σ_max`` at every pixel, whatever the noise type.

On that path ``x0`` is an exact function of ``x_t`` and ``y`` wherever ``t < τ_y``
(``x0 = (τ_y·x_t − t·y) / (τ_y − t)``), so a network trained only there can learn that shortcut
instead of denoising, and a sampler that adds fresh noise (stochastic InDI) feeds it states it
never saw. :func:`mixed_path` keeps only a share ``ρ`` of the observation's own noise and makes
up the rest with fresh Gaussian noise at the same level.
"""

from __future__ import annotations

import torch

__all__ = ["straight_path", "mixed_path", "sample_train_time"]


def straight_path(
    x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, tau_y: torch.Tensor
) -> torch.Tensor:
    """Point at time ``t`` on the straight path from ``x0`` (t = 0) to ``y`` (t = τ_y).

    ``t`` and ``tau_y`` broadcast against the images; where ``tau_y`` is 0 the result is ``x0``.
    """
    if torch.any(t > tau_y + 1e-6):
        raise ValueError("t must not exceed τ_y (the observation's own time) anywhere")
    frac = torch.where(tau_y > 0, t / tau_y.clamp_min(1e-12), torch.zeros_like(tau_y))
    return x0 + frac * (y - x0)


def mixed_path(
    x0: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    tau_y: torch.Tensor,
    rho: torch.Tensor,
    sigma_max: float,
    eps: torch.Tensor,
) -> torch.Tensor:
    """``x0 + ρ·(t/τ_y)·(y − x0) + sqrt(1 − ρ²)·t·σ_max·ε``: noise of level ``t·σ_max`` of which
    a share ``ρ`` (in [0, 1], broadcast per sample) is the observation's own noise.

    ``ρ = 1`` is :func:`straight_path`. Where ``t = τ_y > 0`` the result is ``y`` whatever ``ρ``
    is (the observation is the start of every sampler); where ``τ_y = 0`` it is ``x0``.
    ``eps`` is standard Gaussian noise shaped like ``x0``.
    """
    if torch.any((rho < 0) | (rho > 1)):
        raise ValueError("rho must lie in [0, 1]")
    path = straight_path(x0, y, t, tau_y)
    fresh = torch.sqrt((1.0 - rho**2).clamp_min(0.0)) * t * sigma_max * eps
    at_obs = (t >= tau_y) & (tau_y > 0)
    return torch.where(at_obs, y, x0 + rho * (path - x0) + fresh)


def sample_train_time(
    tau_y: torch.Tensor,
    *,
    p_at_observation: float = 0.5,
    p_smooth_field: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw a training time map ``t ≤ τ_y`` for a batch ``(B, 1, H, W)``.

    With probability ``p_at_observation`` a sample gets ``t = τ_y`` (the first sampling step, the
    one that matters most); otherwise ``t = u · τ_y`` with ``u`` a constant in [0, 1] or (with
    probability ``p_smooth_field``) a smooth random field in [0, 1].
    """
    b, _, h, w = tau_y.shape
    dev = tau_y.device
    u_const = torch.rand(b, 1, 1, 1, generator=generator, device=dev)
    coarse = torch.rand(b, 1, 4, 4, generator=generator, device=dev)
    field = torch.nn.functional.interpolate(
        coarse, size=(h, w), mode="bicubic", align_corners=False
    )
    field = field.clamp(0.0, 1.0)
    pick = torch.rand(b, 1, 1, 1, generator=generator, device=dev)
    u = torch.where(pick < p_smooth_field, field, u_const.expand(b, 1, h, w))
    at_obs = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < p_at_observation
    u = torch.where(at_obs, torch.ones_like(u), u)
    return u * tau_y
