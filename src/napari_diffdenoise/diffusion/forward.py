"""The forward process: the straight path between a clean image and its noisy observation.

``x_t = x0 + (t / τ_y) · (y − x0)`` per pixel, with ``t ≤ τ_y`` and ``x_t = x0`` where τ_y = 0.
The noise left in ``x_t`` has level ``t · σ_max`` at every pixel, whatever the noise type.
"""
from __future__ import annotations

import torch

__all__ = ["straight_path", "sample_train_time"]


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
    field = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    field = field.clamp(0.0, 1.0)
    pick = torch.rand(b, 1, 1, 1, generator=generator, device=dev)
    u = torch.where(pick < p_smooth_field, field, u_const.expand(b, 1, h, w))
    at_obs = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < p_at_observation
    u = torch.where(at_obs, torch.ones_like(u), u)
    return u * tau_y
