"""Signal-dependent noise: the variance-versus-mean curve and its Poisson-Gaussian fit.

In the spirit of Foi, Trimeche, Katkovnik & Egiazarian, "Practical Poissonian-Gaussian noise
modeling and fitting for single-image raw-data" (IEEE TIP 2008) and of Liu, Tanaka & Okutomi,
"Practical signal-dependent noise parameter estimation from a single noisy image" (IEEE TIP
2014): patches are grouped into level sets of their mean; each level set gets a noise variance
from its weak-texture patches only (high-band DCT energy, :mod:`.bands`);
``Var[y | x] = gain * x + baseline`` is fitted robustly to those points, leaving out level sets
within a few noise stds of a clipping level. The weak-texture selection is then redone with a
threshold that follows the fitted curve (a bright patch may have more gradient energy than a
dark one, because its noise is larger) and the fit repeated.

Texture left in a patch can only raise a level set's variance, so the fit is asymmetric: points
far *above* the line are treated as outliers, points below it never are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .bands import Bands, group_noise_variance
from .patches import PatchSample, texture_threshold

__all__ = [
    "CurveFit",
    "clipping_levels",
    "count_floor",
    "curve_bins",
    "curve_points",
    "curve_sigma_map",
    "estimate_curve",
    "fit_variance_curve",
    "quantization_variance",
]

#: Level sets closer than this many noise stds to a clipping level are left out of the fit.
CLIP_MARGIN_SIGMAS = 3.0
#: Points more than this many errors above the line are outliers (texture).
OUTLIER_SIGMAS = 3.0
#: Relative model error (in variance) added to every point's sampling error.
CURVE_FLOOR = 0.03


@dataclass
class CurveFit:
    """A robust fit ``variance = gain * mean + baseline`` to binned points."""

    gain: float
    baseline: float
    used: np.ndarray  # bool per point: kept for the fit (finite, not clipped, not an outlier)
    chi2_per_dof: float

    def variance(self, mean: np.ndarray) -> np.ndarray:
        return self.gain * np.asarray(mean, dtype=np.float64) + self.baseline


def clipping_levels(sample: np.ndarray) -> tuple[float | None, float | None]:
    """Intensities at which the data look clipped (a pile-up at the extreme value), else None.

    A pile-up is the minimum (maximum) value holding at least 0.1 % of the sample and at least
    three times as many pixels as the next distinct value, as clipping (saturation, a zero
    floor) produces and Poisson counts or Gaussian tails do not.
    """
    flat = np.asarray(sample).ravel()
    out: list[float | None] = []
    for sign in (1.0, -1.0):
        v = sign * flat
        lo = v.min()
        n0 = int(np.count_nonzero(v == lo))
        rest = v[v > lo]
        level = None
        if rest.size and n0 >= max(10, 0.001 * flat.size):
            n1 = int(np.count_nonzero(rest == rest.min()))
            if n0 >= 3 * n1:
                level = float(sign * lo)
        out.append(level)
    return out[0], out[1]


def _censored_normal_table(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """``max(X, f)`` for ``X ~ N(μ, 1)``, over ``a = f − μ`` from 6 down to −6: the mean above
    the floor ``E − f`` (rising) and the variance, as tables for :func:`count_floor`."""
    from scipy.special import ndtr

    a = np.linspace(6.0, -6.0, n)
    big_phi = ndtr(a)
    phi = np.exp(-0.5 * a * a) / np.sqrt(2.0 * np.pi)
    mu = -a  # the floor at 0
    m1 = mu * (1.0 - big_phi) + phi
    m2 = (mu * mu + 1.0) * (1.0 - big_phi) + mu * phi
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def count_floor(
    means: np.ndarray,
    variances: np.ndarray,
    dof: np.ndarray,
    pile_up: float,
    *,
    clip_high: float | None = None,
    floor: float = CURVE_FLOOR,
) -> bool:
    """Whether a pile-up at the darkest value (:func:`clipping_levels`) is the zero of photon
    counts rather than a clamp.

    Counts above an offset pile up at it wherever a pixel gets under ⅓ photon on average (a
    confocal frame's background; 40-80 % of the pixels of the FMD-like test images). Treated as
    a clamp, the level sets within 3 noise stds of it are left out, and since the std of counts
    grows as ``sqrt(gain · (mean − offset))``, only those above ``offset + 9 · gain`` remain:
    often none, and the verdict was Gaussian noise of one σ for the whole image.

    The level sets above the pile-up (``means``, ``variances``, ``dof``, measured without
    leaving any out) are compared with the two one-parameter curves: shot noise from the
    pile-up, ``gain · (mean − pile_up)``, and Gaussian noise of one σ clamped there (the
    variance of ``max(X, pile_up)`` against its mean, which flattens out at σ² two σ above
    it); least squares in log-variance with Huber weights, on a grid of gains and σs. Counts if
    the first fits better. (Set12 under Gaussian σ 25 and 50, clamped in uint8: clamp 0.4-8.7
    against shot noise 2.7-536, at least 5× lower in each of the 24; photon counts of one or
    of spread pulse heights on synthetic fluorescence and on ``fmd_r1``'s clean image: shot
    noise 25-242 against clamp 357-728, at least 3× lower in each of the 6.)
    """
    m = np.asarray(means, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    d = np.asarray(dof, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(v) & (v > 0) & (d > 0) & (m > pile_up)
    if clip_high is not None:
        ok &= clip_high - m > CLIP_MARGIN_SIGMAS * np.sqrt(np.where(ok, v, 0.0))
    if ok.sum() < 3:
        return False
    m, v, d = m[ok] - pile_up, v[ok], d[ok]
    sw = 1.0 / np.sqrt(2.0 / np.maximum(d, 1.0) + floor**2)
    logv = np.log(v)

    def cost(pred: np.ndarray) -> np.ndarray:  # (n_params, n_points) → (n_params,)
        r = np.abs(logv - np.log(np.maximum(pred, 1e-300))) * sw
        return np.where(r < 2.0, r * r, 4.0 * r - 4.0).sum(axis=-1)

    ratio = v / m
    gains = np.exp(np.linspace(np.log(ratio.min() / 10), np.log(ratio.max() * 10), 240))
    shot = cost(gains[:, None] * m[None, :]).min()
    sds = np.exp(np.linspace(np.log(np.sqrt(v.min()) / 3), np.log(np.sqrt(v.max()) * 3), 120))
    t_mean, t_var = _censored_normal_table()
    z = m[None, :] / sds[:, None]  # mean above the floor, in σ
    clamp_v = np.interp(z, t_mean, t_var, right=1.0) * sds[:, None] ** 2
    clamped = cost(clamp_v).min()
    return bool(shot < clamped)


def quantization_variance(values: np.ndarray, max_values: int = 200_000) -> float:
    """``q² / 12`` for data on a grid of step ``q`` (the median gap between distinct values).

    A level set whose measured variance is below this holds no usable noise measurement: its
    noise, if any, is hidden by the quantisation, as in a clamped dark floor (43 % of the pixels
    of the FMD confocal pairs sit at one value) or a contrast-stretched 8-bit image whose values
    are 4 grey levels apart. Continuous (float) data give about 0.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size > max_values:
        flat = flat[:: flat.size // max_values + 1]
    levels = np.unique(flat[np.isfinite(flat)])
    if levels.size < 2:
        return 0.0
    q = float(np.median(np.diff(levels)))
    return q * q / 12.0


def curve_bins(means: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Level sets for the curve: half quantile bins (dense data), half square-root spaced
    between the 0.5 and 99.9 percentiles (so that sparse bright structures get bins too)."""
    half = max(n_bins // 2, 1)
    lo, hi = np.percentile(means, [0.5, 99.9])
    sq = lo + np.linspace(0.0, np.sqrt(max(hi - lo, 0.0)), half + 1) ** 2
    qs = np.quantile(means, np.linspace(0.0, 1.0, half + 1))
    edges = np.unique(np.concatenate([qs, sq]))
    if edges.size < 2:
        return np.array([means.min(), means.max()]), np.zeros(means.shape, dtype=np.int64)
    idx = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, edges.size - 2)
    return edges, idx.astype(np.int64)


def _wls_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = (w * (x - mx) ** 2).sum()
    if sxx <= 0:
        return 0.0, float(my)
    slope = float((w * (x - mx) * (y - my)).sum() / sxx)
    return slope, float(my - slope * mx)


def fit_variance_curve(
    means: np.ndarray,
    variances: np.ndarray,
    dof: np.ndarray,
    *,
    clip_low: float | None = None,
    clip_high: float | None = None,
    floor: float = CURVE_FLOOR,
    min_variance: float = 0.0,
) -> CurveFit:
    """Asymmetric-robust weighted fit of ``variance = gain * mean + baseline``.

    Parameters
    ----------
    means, variances
        Level-set points.
    dof
        Effective degrees of freedom of each variance estimate (relative std ``sqrt(2/dof)``).
    clip_low, clip_high
        Clipping levels (see :func:`clipping_levels`); nearby points are left out.
    floor
        Relative model error added to every point's error.
    min_variance
        Points with a smaller variance are left out (below the quantisation noise, see
        :func:`quantization_variance`: a clamped or constant region, not a noise measurement;
        such points, at the bottom of the curve, would otherwise start the asymmetric fit).
    """
    m = np.asarray(means, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    dof = np.asarray(dof, dtype=np.float64)
    used = np.isfinite(m) & np.isfinite(v) & (dof > 0) & (v > 0) & (v >= min_variance)
    sd = np.sqrt(np.maximum(np.where(used, v, 0.0), 0.0))
    if clip_low is not None:
        used &= m - clip_low > CLIP_MARGIN_SIGMAS * sd
    if clip_high is not None:
        used &= clip_high - m > CLIP_MARGIN_SIGMAS * sd
    if used.sum() == 0:
        finite = np.isfinite(v)
        return CurveFit(0.0, float(np.median(v[finite])) if finite.any() else 0.0, used, 0.0)
    if used.sum() == 1:
        return CurveFit(0.0, float(v[used][0]), used, 0.0)
    rel2 = 2.0 / np.maximum(dof, 1.0) + floor**2
    # start from the lower half of the points (texture only pulls upwards)
    keep = used & (v <= np.median(v[used]))
    if keep.sum() < 2:
        keep = used.copy()
    gain, base = _wls_line(m[keep], v[keep], 1.0 / (rel2[keep] * v[keep] ** 2))
    chi2 = 0.0
    tiny = 1e-12 * float(np.abs(v[used]).max())
    for _ in range(30):
        model = gain * m + base
        scale = np.sqrt(rel2) * np.maximum(np.abs(model), tiny)
        r = (v - model) / scale
        new_keep = used & (r < OUTLIER_SIGMAS)
        if new_keep.sum() < 2:
            new_keep = used.copy()
        gain, base = _wls_line(m[new_keep], v[new_keep], 1.0 / scale[new_keep] ** 2)
        chi2 = float((r[new_keep] ** 2).mean())
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return CurveFit(float(gain), float(base), keep, chi2)


def estimate_curve(
    sample: PatchSample,
    energy: np.ndarray,
    weak: np.ndarray,
    bands: Bands,
    *,
    n_bins: int,
    clip_low: float | None,
    clip_high: float | None,
    iterations: int = 4,
    min_variance: float = 0.0,
) -> tuple[CurveFit, np.ndarray, np.ndarray, np.ndarray]:
    """Level-set curve and its fit, with the curve-following weak-texture selection
    (``min_variance``: see :func:`fit_variance_curve`).

    Returns ``(fit, means, variances, dof)`` of the level sets (NaN where a level set has too
    few weak-texture patches).
    """
    _, bins = curve_bins(sample.mean, n_bins)
    nb = int(bins.max()) + 1 if bins.size else 1
    overlap = min(sample.stride**2, sample.patch**2) / sample.patch**2
    thr_unit = texture_threshold(sample.patch)
    keep = weak
    fit = CurveFit(0.0, 0.0, np.zeros(nb, dtype=bool), 0.0)
    cv = cm = dof = np.full(nb, np.nan)
    for _ in range(iterations):
        cv, dof, cm = group_noise_variance(
            energy, keep, bins, nb, bands, min_count=12, values=sample.mean
        )
        dof = dof * overlap
        fit = fit_variance_curve(
            cm, cv, dof, clip_low=clip_low, clip_high=clip_high, min_variance=min_variance
        )
        positive = cv[np.isfinite(cv) & (cv > 0)]
        if positive.size == 0:
            break
        pred = np.maximum(fit.variance(sample.mean), 0.5 * positive.min())
        new_keep = weak & (sample.texture < thr_unit * pred)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return fit, cm, cv, dof


def curve_points(means, variances) -> tuple[np.ndarray, np.ndarray]:
    """The level sets the Poisson σ map runs through: finite, positive variance, by mean."""
    m, v = (np.asarray(a, dtype=np.float64).ravel() for a in (means, variances))
    ok = np.isfinite(m) & np.isfinite(v) & (v > 0)
    order = np.argsort(m[ok])
    return m[ok][order], v[ok][order]


def curve_sigma_map(
    plane: np.ndarray,
    fit: CurveFit,
    *,
    darkest: float,
    smoothing: float = 1.5,
    levels: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-pixel noise std at the smoothed signal ``x`` (float32).

    Without ``levels``: ``sqrt(gain * x + baseline)``, the fitted line. With ``levels`` (the
    level sets' means and measured variances): the variance interpolated piecewise-linearly
    through the level sets, so the map follows a curve that departs from the Poisson-Gaussian
    line (clipping, saturation, noise whose correlation grows with the signal; see
    ``docs/noise.md``). Above the brightest level set it rises with the fitted gain where the
    last measured segment rises, and stays flat where it falls (saturation).

    Below ``darkest`` (the darkest level set of the fit) the curve is not extrapolated, since the
    line may reach zero there; the variance is floored at a quarter of its value at ``darkest``.
    """
    signal = ndimage.gaussian_filter(plane.astype(np.float32), smoothing, truncate=3.0)
    np.maximum(signal, np.float32(darkest), out=signal)
    if levels is None:
        var = np.float32(fit.gain) * signal + np.float32(fit.baseline)
        at_darkest = float(fit.variance(darkest))
    else:
        m, v = curve_points(*levels)
        if m.size == 0:
            return curve_sigma_map(plane, fit, darkest=darkest, smoothing=smoothing)
        var = np.interp(signal, m, v).astype(np.float32)
        if m.size == 1 or v[-1] >= v[-2]:  # not saturating: go on with the fitted gain
            var += np.float32(max(fit.gain, 0.0)) * np.maximum(signal - np.float32(m[-1]), 0)
        at_darkest = float(np.interp(darkest, m, v))
    floor = np.float32(max(at_darkest, 0.0) * 0.25)
    return np.sqrt(np.maximum(var, floor, out=var), out=var)
