"""Which kind of noise: constant, signal-dependent, space-dependent or impulses.

Brightness often varies across an image, so "variance grows with the mean" and "variance
changes across the image" are confounded when looked at one at a time. The classifier therefore
measures the noise variance in a table of (spatial cell x intensity level set) entries and
compares three models of that table, in log-variance:

- ``gaussian``: one constant (1 parameter);
- ``poisson``: ``gain * mean + baseline`` with ``gain > 0``, the same everywhere (2);
- ``spatially_variant``: a function of position only, whatever the intensity: a quadratic
  surface (6 parameters: shading, vignetting) or one level per block of a 3 x 3 grid (9: tiles).

Within one cell Poisson noise still rises with brightness (the spatial model cannot follow);
across cells at equal brightness space-dependent noise changes (the Poisson model cannot).

Texture that survives the weak-texture test can only *add* apparent variance, so the misfit is
asymmetric: an entry below the model costs its squared error, an entry above costs at most
``CAP**2`` (robust to texture-contaminated entries). Each entry's error combines its sampling
error and a model-error floor. Costs plus a BIC penalty give the scores. Impulses are decided
first, from the visibility-corrected impulse fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .bands import texture_error
from .poisson import CLIP_MARGIN_SIGMAS, fit_variance_curve

__all__ = ["ClassifierResult", "classify_table", "impulse_score"]

#: Impulse fraction at which salt-and-pepper gets a score of one half.
IMPULSE_FRACTION_MID = 0.003
#: Relative model error (in variance) allowed on top of each entry's sampling error.
MODEL_FLOOR = 0.1
#: Residuals above the model beyond this many errors are capped (texture).
CAP = 2.5
#: Temperature dividing the BIC differences (calibrated scores instead of 0/1 verdicts).
TEMPERATURE = 3.0
#: Smallest max/min ratio of the modelled noise std that counts as varying at all.
MIN_EFFECT = 1.15


@dataclass
class ClassifierResult:
    scores: dict[str, float]
    bic: dict[str, float]
    n_entries: int
    effects: dict[str, float]


def impulse_score(fraction: float) -> float:
    """Logistic score in log-fraction: 0.5 at :data:`IMPULSE_FRACTION_MID`."""
    if fraction <= 0:
        return 0.0
    z = (np.log(fraction) - np.log(IMPULSE_FRACTION_MID)) / 0.25
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def _cost(resid: np.ndarray) -> np.ndarray:
    return np.where(resid <= CAP, resid**2, CAP**2)


def _inliers(logv: np.ndarray, pred: np.ndarray, sw: np.ndarray) -> np.ndarray:
    return (logv - pred) * sw <= CAP


def _fit_linear_log(logv: np.ndarray, w: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Asymmetric-robust weighted least squares of ``logv`` on ``design``; returns predictions."""
    sw = np.sqrt(w)
    keep = np.ones(logv.shape, dtype=bool)
    # start low: texture pulls upwards, so begin from the lower half of the entries
    keep &= logv <= np.median(logv)
    pred = np.full(logv.shape, np.median(logv))
    for _ in range(12):
        if keep.sum() < design.shape[1]:
            keep = np.ones(logv.shape, dtype=bool)
        a = design[keep] * sw[keep, None]
        coef = scipy.linalg.lstsq(a, logv[keep] * sw[keep], check_finite=False)[0]
        pred = design @ coef
        new_keep = _inliers(logv, pred, sw)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return pred


def _fit_poisson(
    means: np.ndarray,
    var: np.ndarray,
    dof: np.ndarray,
    logv: np.ndarray,
    clip_low: float | None,
    clip_high: float | None,
) -> tuple[np.ndarray, float, float]:
    fit = fit_variance_curve(
        means, var, dof, clip_low=clip_low, clip_high=clip_high, floor=MODEL_FLOOR
    )
    floor = 1e-12 * np.exp(logv.max())
    pred = np.log(np.maximum(fit.variance(means), floor))
    return pred, fit.gain, fit.baseline


def _quadratic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _blocks(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Indicator columns of an ``n x n`` grid of blocks over ``[-1, 1]²``."""
    iy = np.clip(((y + 1) / 2 * n).astype(int), 0, n - 1)
    ix = np.clip(((x + 1) / 2 * n).astype(int), 0, n - 1)
    return (np.arange(n * n)[None, :] == (iy * n + ix)[:, None]).astype(np.float64)


def classify_table(
    means: np.ndarray,
    variances: np.ndarray,
    dof: np.ndarray,
    cell_y: np.ndarray,
    cell_x: np.ndarray,
    *,
    texture: np.ndarray | None = None,
    clip_low: float | None = None,
    clip_high: float | None = None,
) -> ClassifierResult:
    """Scores of ``gaussian`` / ``poisson`` / ``spatially_variant`` from a (cell, level) table.

    Parameters
    ----------
    means, variances, dof
        Per entry: mean intensity, noise variance estimate and its degrees of freedom.
    cell_y, cell_x
        Per entry: position of its cell centre, scaled to ``[-1, 1]``.
    texture
        Per entry: texture index (median structure/noise energy ratio over its value under
        pure noise). Textured entries get a larger error (:func:`.bands.texture_error`), so
        regions that look noisier than they are weigh less.
    clip_low, clip_high
        Clipping levels; entries near them are left out of the Poisson fit.
    """
    ok = np.isfinite(variances) & (variances > 0) & np.isfinite(means) & (dof > 0)
    # entries near a clipping level have censored (smaller) noise: no model explains them
    sd = np.sqrt(np.where(ok, variances, 0.0))
    if clip_low is not None:
        ok &= means - clip_low > CLIP_MARGIN_SIGMAS * sd
    if clip_high is not None:
        ok &= clip_high - means > CLIP_MARGIN_SIGMAS * sd
    kinds = ("gaussian", "poisson", "spatially_variant")
    if ok.sum() < 4:
        return ClassifierResult(
            {"gaussian": 1.0, "poisson": 0.0, "spatially_variant": 0.0},
            dict.fromkeys(kinds, 0.0),
            int(ok.sum()),
            dict.fromkeys(kinds, 1.0),
        )
    m, v, n = means[ok], variances[ok], dof[ok]
    y, x = cell_y[ok], cell_x[ok]
    logv = np.log(v)
    extra = np.zeros_like(v) if texture is None else texture_error(texture)[ok]
    w = 1.0 / (2.0 / n + MODEL_FLOOR**2 + extra**2)
    sw = np.sqrt(w)
    n_entries = int(m.size)
    penalty = np.log(max(n_entries, 2))

    pred_g = _fit_linear_log(logv, w, np.ones((n_entries, 1)))
    pred_p, gain, _ = _fit_poisson(m, v, n, logv, clip_low, clip_high)
    # spatial model: the better (by BIC) of a quadratic surface (smooth shading, vignetting)
    # and one level per block of a 3 x 3 grid (tiles of a stitched mosaic)
    n_places = np.unique(np.stack([x, y], axis=1), axis=0).shape[0]
    s_fits = []
    for design in (_quadratic(x, y), _blocks(x, y, 3)):
        design = design[:, design.any(axis=0)]
        if n_places > design.shape[1]:
            pred = _fit_linear_log(logv, w, design)
            s_fits.append(
                (
                    float(_cost((logv - pred) * sw).sum()) + design.shape[1] * penalty,
                    pred,
                    design.shape[1],
                )
            )
    if not s_fits:
        design = np.ones((n_entries, 1))
        pred = _fit_linear_log(logv, w, design)
        s_fits.append((float(_cost((logv - pred) * sw).sum()) + 2 * penalty, pred, 1))
    s_cost, pred_s, n_s = min(s_fits, key=lambda f: f[0])

    cost = {
        "gaussian": float(_cost((logv - pred_g) * sw).sum()) + 1 * penalty,
        "poisson": float(_cost((logv - pred_p) * sw).sum()) + 2 * penalty,
        "spatially_variant": s_cost,
    }
    # effect sizes: how much the modelled std varies over the table (5-95 %)
    effects = {"gaussian": 1.0}
    for name, pred in (("poisson", pred_p), ("spatially_variant", pred_s)):
        lo, hi = np.percentile(pred, [5, 95])
        effects[name] = float(np.exp(0.5 * (hi - lo)))
        if effects[name] < MIN_EFFECT:
            cost[name] = max(cost[name], cost["gaussian"] + penalty)
    if gain <= 0:  # a falling variance is not shot noise
        cost["poisson"] = max(cost["poisson"], cost["gaussian"] + penalty)
    best = min(cost.values())
    raw = {k: float(np.exp(-(c - best) / (2.0 * TEMPERATURE))) for k, c in cost.items()}
    total = sum(raw.values())
    scores = {k: r / total for k, r in raw.items()}
    return ClassifierResult(scores, cost, n_entries, effects)
