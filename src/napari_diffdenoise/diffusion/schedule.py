"""Per-pixel sampling schedules: every pixel starts at its own time τ(p) and reaches 0 in K steps."""

from __future__ import annotations

import torch

from .._validation import check_int

__all__ = ["pixel_schedule"]


def pixel_schedule(tau: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """``t_k(p) = τ(p) · (1 − k/K)`` for k = 0..K (K + 1 maps, the last one all zero)."""
    steps = check_int(steps, "steps", low=1)
    return [tau * (1.0 - k / steps) for k in range(steps + 1)]
