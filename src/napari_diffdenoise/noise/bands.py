"""Per-patch local noise energies from fixed DCT frequency bands.

For local analyses (level sets, cells) each patch gets its own noise-variance estimate: the
mean squared coefficient of its highest-frequency 2D DCT components. The DCT is orthonormal, so
under white noise of variance σ² every coefficient is N(0, σ²) and independent of the others,
while blurred structures (every microscope image is blurred by its PSF) have almost no energy
there. Texture is detected by the ratio of the energies in a middle band and in the high band
(F-distributed for a structureless patch, whatever σ) and by the gradient energy compared with
the noise level expected at that patch (Liu, Tanaka & Okutomi 2014, signal-dependent noise).

Every group estimate (level set, cell) is the mean of the lower half of its weak-texture
patches' energies, since leftover texture can only add energy; the bias of this estimator under
pure noise, selection included, is calibrated once by simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import dct
from scipy.special import fdtri

from .patches import PatchSample, _project, _unit_scale, texture_threshold

__all__ = [
    "Bands",
    "band_energies",
    "bands_for",
    "group_median",
    "group_noise_variance",
    "texture_error",
]

#: High band: DCT frequencies with ``u² + v² >= (HIGH_RADIUS * (p - 1))²``.
HIGH_RADIUS = 0.8
#: Middle band (texture detector): ``(MID_RADIUS * (p - 1))² <= u² + v²`` below the high band.
MID_RADIUS = 0.3
#: Quantile of the F distribution used as the weak-texture ratio threshold.
RATIO_QUANTILE = 0.99


@dataclass(frozen=True)
class Bands:
    """Orthonormal DCT bases (columns) of the high (noise) and middle (structure) bands."""

    patch: int
    high: np.ndarray  # (p*p, kh)
    mid: np.ndarray  # (p*p, km)
    ratio_threshold: float
    ratio_median: float
    calibration: float  # E[group estimate] / σ² under white noise

    @property
    def k(self) -> int:
        return int(self.high.shape[1])


@lru_cache(maxsize=8)
def bands_for(patch: int) -> Bands:
    """The DCT bands of a ``patch x patch`` patch, with their calibration."""
    p = int(patch)
    d1 = dct(np.eye(p), norm="ortho", axis=0)  # row u: the u-th 1D basis function
    u, v = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    r2 = (u**2 + v**2).ravel()
    basis = np.stack([np.kron(d1[a], d1[b]) for a, b in zip(u.ravel(), v.ravel())], axis=1)
    high_cut = (HIGH_RADIUS * (p - 1)) ** 2
    mid_cut = max((MID_RADIUS * (p - 1)) ** 2, 2.0)
    high = basis[:, r2 >= high_cut]
    mid = basis[:, (r2 >= mid_cut) & (r2 < high_cut)]
    kh, km = high.shape[1], mid.shape[1]
    thr = float(fdtri(km, kh, RATIO_QUANTILE))
    med = float(fdtri(km, kh, 0.5))
    cal = _calibrate(p, high, mid, thr)
    return Bands(p, high, mid, thr, med, cal)


def _lower_half_mean(e: np.ndarray) -> float:
    e = np.sort(e)
    return float(e[: max(e.size // 2, 1)].mean())


def _calibrate(p: int, high: np.ndarray, mid: np.ndarray, thr: float) -> float:
    """Mean of the group estimator for unit white noise (deterministic simulation)."""
    rng = np.random.default_rng(12345)
    noise = rng.standard_normal((40_000, p * p))
    e = ((noise @ high) ** 2).mean(axis=1)
    s = ((noise @ mid) ** 2).mean(axis=1)
    blocks = noise.reshape(-1, p, p)
    xi = (np.diff(blocks, axis=1) ** 2).sum(axis=(1, 2)) + (np.diff(blocks, axis=2) ** 2).sum(
        axis=(1, 2)
    )
    keep = (s < thr * e) & (xi < texture_threshold(p))
    # groups of 200 patches, as in a level set or a cell
    vals = e[keep][: (keep.sum() // 200) * 200].reshape(-1, 200)
    return float(np.mean([_lower_half_mean(row) for row in vals]))


def band_energies(sample: PatchSample, bands: Bands) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch mean squared high-band and mid-band coefficients ``(noise, structure)``."""
    # both bands are orthogonal to the patch mean: remove it (and scale) for float32 precision
    centred = sample.values - sample.mean[:, None]
    scale = _unit_scale(centred)
    centred = centred / scale
    high = (_project(centred, bands.high) ** 2).mean(axis=1, dtype=np.float64)
    mid = (_project(centred, bands.mid) ** 2).mean(axis=1, dtype=np.float64)
    return high * scale**2, mid * scale**2


#: Texture index (a group's median structure/noise ratio over its pure-noise value) tolerated
#: before the group's variance gets an extra error, and that error (relative, in variance) per
#: unit of excess.
TEXTURE_MARGIN = 0.15
TEXTURE_GAIN = 4.0


def texture_error(index: np.ndarray) -> np.ndarray:
    """Extra relative error of a group's variance given its texture index (0 when clean)."""
    t = np.asarray(index, dtype=np.float64)
    excess = np.maximum(np.nan_to_num(t, nan=1.0) - 1.0 - TEXTURE_MARGIN, 0.0)
    return TEXTURE_GAIN * excess


def group_median(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group (NaN for empty groups), vectorised."""
    order = np.lexsort((values, groups))
    v, g = values[order], groups[order]
    n = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    out = np.full(n_groups, np.nan)
    has = n > 0
    out[has] = 0.5 * (v[starts[has] + (n[has] - 1) // 2] + v[starts[has] + n[has] // 2])
    return out


def group_noise_variance(
    energy: np.ndarray,
    keep: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    bands: Bands,
    *,
    min_count: int = 8,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust noise variance of each group from its kept (weak-texture) patches.

    Returns ``(variance, dof, value_mean)`` arrays of length ``n_groups``: the calibrated
    lower-half mean energy (NaN where fewer than ``min_count`` patches), its degrees of
    freedom before overlap correction (``patches used x k``), and the mean of ``values`` (e.g.
    patch means) over the kept patches.
    """
    g = groups[keep]
    e = energy[keep]
    order = np.lexsort((e, g))
    g, e = g[order], e[order]
    n_all = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(n_all)[:-1]])
    rank = np.arange(g.size) - starts[g]
    low = rank < np.maximum(n_all[g] // 2, 1)
    count = np.bincount(g[low], minlength=n_groups).astype(np.float64)
    total = np.bincount(g[low], weights=e[low], minlength=n_groups)
    ok = n_all >= min_count
    var = np.full(n_groups, np.nan)
    var[ok] = total[ok] / count[ok] / bands.calibration
    vmean = np.full(n_groups, np.nan)
    if values is not None:
        vsum = np.bincount(groups[keep], weights=values[keep], minlength=n_groups)
        has = n_all > 0
        vmean[has] = vsum[has] / n_all[has]
    return var, count * bands.k, vmean
