"""Salt-and-pepper (impulse) detection.

Candidates are pixels at the plane's extreme values (its minimum or maximum). A candidate is an
impulse when it differs strongly from the median of its non-candidate neighbours (adaptive
median test: the window grows from 3x3 to 7x7 until it holds enough non-candidates).
Saturated plateaus are not impulses: a candidate whose 3x3 neighbourhood is entirely at the
same extreme value, and every candidate connected to it, is treated as signal.

The impulse fraction is corrected for impulses that cannot be seen (salt on an already bright
pixel): under random placement, the share of salt among the pixels where salt *would* be
detectable is the salt rate, and likewise for pepper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ImpulseResult", "detect_impulses"]

#: Detection threshold relative to the rough noise std of the non-candidate pixels.
THRESHOLD_SIGMAS = 4.0
#: Detection threshold floor, relative to the robust range of the non-extreme pixels.
THRESHOLD_RANGE = 0.08
#: Same-valued extreme components at least this large are signal (saturation, frames): at a
#: salt (or pepper) density of 25 % the largest random 4-connected cluster in 2048² is ~30.
PLATEAU_SIZE = 48
#: Margin (pixels) left out of the fraction estimate.
BORDER = 4
#: At most this many pixels are used to estimate where impulses would be detectable.
_DETECTABILITY_SAMPLE = 200_000


@dataclass
class ImpulseResult:
    """Impulses found in one plane."""

    mask: np.ndarray  # bool, plane shape
    fraction: float  # estimated fraction of pixels hit (salt + pepper), visibility-corrected
    salt_fraction: float
    pepper_fraction: float
    threshold: float
    low: float
    high: float


def _rough_sigma(plane: np.ndarray, extreme: np.ndarray) -> float:
    """Noise std from neighbour differences of non-extreme pixels (texture inflates it)."""
    step = max(1, int(np.sqrt(plane.size / 250_000)))
    p = plane[::step]
    e = extreme[::step]
    d = np.diff(p, axis=1)[~(e[:, 1:] | e[:, :-1])]
    if d.size < 16:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def _data_range(plane: np.ndarray, extreme: np.ndarray) -> float:
    """Robust range (0.1-99.9 %) of the non-extreme pixels: impulses at the dtype's limits
    (0 and 65535 in a uint16 image) must not inflate the detection threshold."""
    step = max(1, int(np.sqrt(plane.size / 250_000)))
    values = plane[::step, ::step][~extreme[::step, ::step]]
    if values.size < 16:
        return float(plane.max() - plane.min())
    lo, hi = np.percentile(values, [0.1, 99.9])
    return float(hi - lo)


def _neighbour_median(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median, min, max and count of the finite values in the (2r+1)^2 window, centre excluded."""
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy or dx
    ]
    vals = np.empty((rows.size, len(offsets)), dtype=padded.dtype)
    for j, (dy, dx) in enumerate(offsets):
        vals[:, j] = padded[rows + pad + dy, cols + pad + dx]
    vals.sort(axis=1)  # NaN (non-candidates excluded) sort last
    count = np.isfinite(vals).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    idx = np.arange(rows.size)
    with np.errstate(invalid="ignore"):
        med = 0.5 * (vals[idx, lo] + vals[idx, hi])
        vmax = vals[idx, np.clip(count - 1, 0, None)]
    med[count == 0] = np.nan
    vmax[count == 0] = np.nan
    return med, vals[:, 0], vmax, count


def _adaptive_median(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int, min_count: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max of the non-candidate neighbours, window growing 3x3 -> 7x7."""
    med = np.full(rows.size, np.nan)
    vmin = med.copy()
    vmax = med.copy()
    todo = np.arange(rows.size)
    for radius in (1, 2, 3):
        if todo.size == 0:
            break
        m, lo, hi, c = _neighbour_median(padded, rows[todo], cols[todo], pad, radius)
        done = c >= (min_count if radius < 3 else 1)
        med[todo[done]] = m[done]
        vmin[todo[done]] = lo[done]
        vmax[todo[done]] = hi[done]
        todo = todo[~done]
    return med, vmin, vmax


def _visible(
    med: np.ndarray, vmin: np.ndarray, vmax: np.ndarray, low: float, high: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where salt / pepper would be detected: the whole neighbourhood is far from the value."""
    with np.errstate(invalid="ignore"):
        salt = (high - med > threshold) & (high - vmax > 0.5 * threshold)
        pepper = (med - low > threshold) & (vmin - low > 0.5 * threshold)
    return salt, pepper


#: Clipping, not impulses: the hit rate among the darker (brighter) half of the places where
#: salt (pepper) would be visible is below this share of the rate in the other half.
CLIPPING_RATE_RATIO = 0.2
_CLIPPING_MIN_HITS = 20


def _clipping(med: np.ndarray, visible: np.ndarray, hits: np.ndarray, *, bright: bool) -> bool:
    """True when extreme values follow the signal (sensor clipping) rather than falling at
    random places (impulses).

    Random impulses hit dark and bright places alike; clipped noise reaches the maximum only
    where the signal is already bright (and the minimum only where it is dark). Compares the hit
    rate in the two halves (by the neighbour median) of the places where the impulse would be
    visible.
    """
    if int(hits.sum()) < _CLIPPING_MIN_HITS:
        return False
    level = med[visible]
    split = np.median(level)
    near = level >= split if bright else level <= split
    far = ~near
    hit = hits[visible]
    if near.sum() == 0 or far.sum() == 0:
        return False
    rate_near = hit[near].mean()
    rate_far = hit[far].mean()
    return bool(rate_far < CLIPPING_RATE_RATIO * rate_near)


def detect_impulses(plane: np.ndarray, *, valid: np.ndarray | None = None) -> ImpulseResult:
    """Detect salt-and-pepper impulses in a 2D float plane.

    Parameters
    ----------
    plane
        2D float64 array.
    valid
        Optional boolean mask (ROI): the fraction is estimated over these pixels only.
    """
    low, high = float(plane.min()), float(plane.max())
    empty = np.zeros(plane.shape, dtype=bool)
    if not high > low:
        return ImpulseResult(empty, 0.0, 0.0, 0.0, 0.0, low, high)
    is_low = plane == low
    is_high = plane == high
    # saturated plateaus and lines: 4-connected components of one extreme value that contain a
    # fully surrounded pixel or that are too large to come from random impulses
    structure = np.ones((3, 3), dtype=bool)
    plateau = np.zeros_like(empty)
    for cand in (is_low, is_high):
        if cand.sum() < 9:
            continue
        labels, _ = ndimage.label(cand)
        sizes = np.bincount(labels.ravel())
        signal = sizes >= PLATEAU_SIZE
        interior = ndimage.binary_erosion(cand, structure, border_value=1)
        signal[np.unique(labels[interior])] = True
        signal[0] = False
        plateau |= signal[labels]
    extreme = is_low | is_high
    cand = extreme & ~plateau

    sigma = _rough_sigma(plane, extreme)
    threshold = max(THRESHOLD_SIGMAS * sigma, THRESHOLD_RANGE * _data_range(plane, extreme))

    pad = 3
    padded = np.pad(plane.astype(np.float32), pad, mode="constant", constant_values=np.nan)
    padded[pad:-pad, pad:-pad][cand] = np.nan

    rows, cols = np.nonzero(cand)
    med, vmin, vmax = _adaptive_median(padded, rows, cols, pad)
    salt_vis, pepper_vis = _visible(med, vmin, vmax, low, high, threshold)
    hit = (salt_vis & is_high[rows, cols]) | (pepper_vis & is_low[rows, cols])
    mask = empty.copy()
    mask[rows[hit], cols[hit]] = True

    # the image border is left out: frames and cut-off edges are often at an extreme value
    h, w = plane.shape
    m = BORDER if min(plane.shape) > 4 * BORDER else 0
    region = np.zeros(plane.shape, dtype=bool)
    region[m : h - m, m : w - m] = True
    if valid is not None:
        region &= valid
    n_region = int(np.count_nonzero(region))
    if n_region == 0:
        return ImpulseResult(mask, 0.0, 0.0, 0.0, threshold, low, high)
    n_salt = int(np.count_nonzero(mask & is_high & region))
    n_pepper = int(np.count_nonzero(mask & is_low & region))
    if n_salt + n_pepper <= max(4, 1e-4 * n_region):
        # (almost) nothing: no need for the visibility correction
        return ImpulseResult(
            mask,
            (n_salt + n_pepper) / n_region,
            n_salt / n_region,
            n_pepper / n_region,
            threshold,
            low,
            high,
        )

    # visibility-corrected rates on a sample of the region's pixels
    if n_region <= _DETECTABILITY_SAMPLE:
        rr, cc = np.nonzero(region)
    else:
        rng = np.random.default_rng(0)
        n_draw = int(1.2 * _DETECTABILITY_SAMPLE * region.size / n_region) + 16
        rr = rng.integers(0, h, n_draw)
        cc = rng.integers(0, w, n_draw)
        inside = region[rr, cc]
        rr, cc = rr[inside][:_DETECTABILITY_SAMPLE], cc[inside][:_DETECTABILITY_SAMPLE]
    med_s, vmin_s, vmax_s = _adaptive_median(padded, rr, cc, pad)
    salt_visible, pepper_visible = _visible(med_s, vmin_s, vmax_s, low, high, threshold)
    is_hit = mask[rr, cc]
    n_sv, n_pv = int(salt_visible.sum()), int(pepper_visible.sum())
    min_visible = max(50, rr.size // 100)
    salt = pepper = 0.0
    salt_hits = is_hit & is_high[rr, cc] & salt_visible
    pepper_hits = is_hit & is_low[rr, cc] & pepper_visible
    if _clipping(med_s, salt_visible, salt_hits, bright=True):
        mask &= ~is_high
    elif n_sv >= min_visible:
        salt = float(salt_hits.sum() / n_sv)
    if _clipping(med_s, pepper_visible, pepper_hits, bright=False):
        mask &= ~is_low
    elif n_pv >= min_visible:
        pepper = float(pepper_hits.sum() / n_pv)
    fraction = float(min(salt + pepper, 1.0))
    return ImpulseResult(mask, fraction, float(salt), float(pepper), threshold, low, high)
