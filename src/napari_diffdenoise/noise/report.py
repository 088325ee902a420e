"""The result of :func:`~napari_diffdenoise.noise.estimate.estimate_noise`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..intensity import SIGMA_MAX, IntensityRange
from .timemap import time_map_from_sigma

__all__ = ["IMPULSE_TIME", "NOISE_REPORT_KINDS", "PHOTON_FLOOR", "NoiseReport"]

#: The verdicts :class:`NoiseReport` can give.
NOISE_REPORT_KINDS: tuple[str, ...] = (
    "gaussian",
    "poisson",
    "salt_and_pepper",
    "spatially_variant",
    "none",
)

#: Diffusion time given to detected impulse pixels by :meth:`NoiseReport.time_map`. An impulse
#: replaces the value, so its error is of the order of the image range; with the default
#: ``σ_max`` of half the robust range, τ = 0.5 stands for a noise std of a quarter of the range:
#: enough for the denoiser to rebuild the pixel from its neighbours without treating it as pure
#: noise (τ = 1). Callers that fill impulses themselves can pass ``impulse_time=0``.
IMPULSE_TIME: float = 0.5


#: For shot noise (``"poisson"``), the denoiser starts no pixel below this many photon steps
#: (``gain``, the size of one count in image units): :attr:`NoiseReport.start_sigma_map`. Under
#: one photon per pixel the noise is no longer a small Gaussian jitter but sparse pulses of one
#: photon's height, several times the noise std there (a confocal background: pulses of 3.6
#: grey levels where the std is 1.4); started at that std, the network keeps them as signal.
#: 1.0 was measured on the real pairs and on photon counts simulated on ``fmd_r1``'s clean
#: image (docs/noise.md); it changes nothing where read noise exceeds one photon.
PHOTON_FLOOR: float = 1.0


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(eq=False)
class NoiseReport:
    """What :func:`estimate_noise` found: the kind of noise, its parameters, and a σ map.

    All noise levels are in the image's own intensity units.

    Attributes
    ----------
    kind
        Verdict: ``"gaussian"`` (constant std), ``"poisson"`` (signal-dependent: Poisson or
        Poisson-Gaussian), ``"salt_and_pepper"`` (impulses), ``"spatially_variant"``, or
        ``"none"`` (a constant image: no noise at all, σ = 0, score 1).
    scores
        One score per kind, summing to 1.
    confidence
        The score of the chosen kind.
    sigma
        Global noise std. For ``"poisson"`` the mean over pixels of the fitted std; for
        ``"salt_and_pepper"`` the std of the noise besides the impulses.
    gain, baseline_variance
        The fit ``Var[y | x] = gain * x + baseline_variance`` over the level-set data. It
        describes the noise only for ``"poisson"`` (the summary shows it only then); for the
        other verdicts it is a by-product. ``baseline_variance`` is negative when the zero of
        the photon counts sits above 0 (a camera's dark offset): see :attr:`count_zero`.
    impulse_fraction
        Estimated fraction of pixels hit by impulses (0 when none).
    impulse_mask
        Boolean mask (image shape) of detected impulses for ``"salt_and_pepper"``, else None.
    sigma_map
        float32, image shape: per-pixel noise std (for salt-and-pepper: of the non-impulse noise;
        for ``"poisson"``: the level-set curve below at the smoothed signal, which may depart
        from the fitted line where the data do). What the denoiser starts from is
        :attr:`start_sigma_map`.
    curve_means, curve_variances
        Binned local mean / noise variance points (the variance-versus-mean plot). For
        ``"spatially_variant"`` the variance of a level set is the mean of the σ map² over its
        patches (the noise there depends on the position, which the level set averages).
    intensity_range
        Robust intensity range of the image (sets the default ``σ_max``).
    shape, dtype
        Shape and dtype (as a string) of the inspected image.
    details
        Extra diagnostic scalars (fit quality, sample sizes); informative only.
    """

    kind: str
    scores: dict[str, float]
    confidence: float
    sigma: float
    gain: float
    baseline_variance: float
    impulse_fraction: float
    impulse_mask: np.ndarray | None
    sigma_map: np.ndarray
    curve_means: np.ndarray
    curve_variances: np.ndarray
    intensity_range: IntensityRange
    shape: tuple[int, ...]
    dtype: str
    details: dict[str, float] = field(default_factory=dict)

    @property
    def sigma_max_default(self) -> float:
        """``SIGMA_MAX`` in image units: the noise level that τ = 1 stands for by default."""
        return float(SIGMA_MAX * self.intensity_range.scale)

    @property
    def count_zero(self) -> float | None:
        """For ``"poisson"`` with a positive gain: the intensity at which the fitted variance
        reaches 0, ``-baseline_variance / gain`` (the dark offset of the camera when the read
        noise is small); ``None`` otherwise."""
        if self.kind != "poisson" or not self.gain > 0:
            return None
        return float(-self.baseline_variance / self.gain)

    @property
    def start_sigma_map(self) -> np.ndarray:
        """The σ map the denoiser starts from (blind :func:`denoise`, :meth:`time_map`):
        :attr:`sigma_map`, for ``"poisson"`` floored at :data:`PHOTON_FLOOR` · ``gain``."""
        if self.kind == "poisson" and self.gain > 0:
            return np.maximum(self.sigma_map, np.float32(PHOTON_FLOOR * self.gain))
        return self.sigma_map

    def noise_std(self, mean: Any) -> np.ndarray:
        """Fitted noise std as a function of the signal level (image units).

        For ``"poisson"`` this is ``sqrt(max(gain * mean + baseline_variance, 0))``; for the
        other verdicts the noise does not depend on the signal and the global ``sigma`` is
        returned (broadcast to the shape of ``mean``).
        """
        m = np.asarray(mean, dtype=np.float64)
        if self.kind == "poisson":
            return np.sqrt(np.maximum(self.gain * m + self.baseline_variance, 0.0))
        return np.full(m.shape, self.sigma, dtype=np.float64)

    def time_map(
        self, sigma_max: float | None = None, *, impulse_time: float = IMPULSE_TIME
    ) -> np.ndarray:
        """Per-pixel diffusion time ``clip(start_sigma_map / sigma_max, 0, 1)`` (float32;
        :attr:`start_sigma_map` is :attr:`sigma_map` but for the photon floor of shot noise).

        Parameters
        ----------
        sigma_max
            Noise level of τ = 1, image units; default :attr:`sigma_max_default`.
        impulse_time
            τ given to detected impulse pixels (default :data:`IMPULSE_TIME`).
        """
        smax = self.sigma_max_default if sigma_max is None else sigma_max
        tau = time_map_from_sigma(self.start_sigma_map, smax)
        if self.impulse_mask is not None:
            if not 0.0 <= float(impulse_time) <= 1.0:
                raise ValueError(f"impulse_time must lie in [0, 1], got {impulse_time}")
            tau[self.impulse_mask] = np.float32(impulse_time)
        return tau

    def summary(self) -> str:
        """A few lines for humans: the verdict and its parameters in image units."""
        if self.kind == "none":
            return "\n".join(
                [
                    "Noise: none (the image is constant: σ = 0, nothing to denoise)",
                    f"Image {self.shape} {self.dtype}, value {_fmt(self.intensity_range.low)}",
                ]
            )
        lines = [
            f"Noise: {self.kind.replace('_', ' ')} (confidence {self.confidence:.0%})",
            "Scores: "
            + ", ".join(
                f"{k.replace('_', ' ')} {v:.2f}" for k, v in self.scores.items() if k != "none"
            ),
        ]
        if self.kind == "gaussian":
            lines.append(f"σ = {_fmt(self.sigma)} (constant over the image)")
        elif self.kind == "poisson":
            sign = "-" if self.baseline_variance < 0 else "+"
            lines.append(
                f"Var[y|x] = {_fmt(self.gain)} · x {sign} {_fmt(abs(self.baseline_variance))}"
                f"  (gain: {_fmt(self.gain)} image units per photon)"
            )
            zero = self.count_zero
            if self.baseline_variance < 0 and zero is not None:
                lines.append(
                    f"the baseline variance is negative: the variance reaches 0 at"
                    f" x ≈ {_fmt(zero)}, the zero of the photon counts (a dark offset)"
                )
            lo, hi = self.intensity_range.low, self.intensity_range.high
            s_lo, s_hi = self.noise_std([lo, hi])
            lines.append(
                f"σ from {_fmt(s_lo)} at {_fmt(lo)} to {_fmt(s_hi)} at {_fmt(hi)};"
                f" mean σ = {_fmt(self.sigma)}"
            )
            if self.details.get("count_floor"):
                lines.append(
                    f"{_fmt(self.details['count_floor_level'])} piles up as the zero of photon"
                    " counts (not clipping)"
                )
            if self.gain > 0:
                lines.append(
                    f"the denoiser starts at least one photon up (σ ≥ "
                    f"{_fmt(PHOTON_FLOOR * self.gain)})"
                )
        elif self.kind == "salt_and_pepper":
            lines.append(
                f"impulses in {self.impulse_fraction:.2%} of the pixels;"
                f" remaining noise σ = {_fmt(self.sigma)}"
            )
        else:
            q = np.percentile(self.sigma_map[..., ::4, ::4], [5, 50, 95])
            lines.append(
                f"σ varies over the image (not with the intensity): 5%/50%/95% ="
                f" {_fmt(q[0])} / {_fmt(q[1])} / {_fmt(q[2])}; mean σ = {_fmt(self.sigma)}"
            )
        lines.append(
            f"Image {self.shape} {self.dtype}, robust range [{_fmt(self.intensity_range.low)},"
            f" {_fmt(self.intensity_range.high)}], default σ_max"
            f" {_fmt(self.sigma_max_default)}"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable scalars (no arrays)."""
        return {
            "kind": self.kind,
            "scores": {k: float(v) for k, v in self.scores.items()},
            "confidence": float(self.confidence),
            "sigma": float(self.sigma),
            "gain": float(self.gain),
            "baseline_variance": float(self.baseline_variance),
            "impulse_fraction": float(self.impulse_fraction),
            "intensity_low": float(self.intensity_range.low),
            "intensity_high": float(self.intensity_range.high),
            "sigma_max_default": self.sigma_max_default,
            "shape": [int(s) for s in self.shape],
            "dtype": str(self.dtype),
            "details": {k: float(v) for k, v in self.details.items()},
        }

    def __repr__(self) -> str:  # arrays would flood the console
        return (
            f"NoiseReport(kind={self.kind!r}, confidence={self.confidence:.2f}, "
            f"sigma={self.sigma:.4g}, gain={self.gain:.4g}, "
            f"baseline_variance={self.baseline_variance:.4g}, "
            f"impulse_fraction={self.impulse_fraction:.4g}, shape={self.shape}, "
            f"dtype={self.dtype!r})"
        )
