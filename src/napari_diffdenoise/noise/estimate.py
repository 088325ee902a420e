"""Inspect an image and tell what noise it carries: :func:`estimate_noise`.

Pipeline (all statistics on a sample, so a 2048² plane takes a fraction of a second):

1. impulses: extreme-valued pixels confirmed by an adaptive median test (:mod:`.impulse`);
2. patches: a grid of ``p x p`` patches avoiding impulses and pixels outside the ROI, from at
   most ``max_planes`` planes (:mod:`.patches`, :mod:`.stack`);
3. global weak-texture PCA: the Gaussian σ; per-patch noise energies from fixed DCT bands
   (:mod:`.bands`);
4. level sets of the patch mean: the variance-versus-mean curve and its Poisson-Gaussian fit
   (:mod:`.poisson`);
5. a (spatial cell x level set) table and a model comparison (:mod:`.classify`);
6. the σ map, plane by plane, from the verdict's model (:mod:`.local` for spatially variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_image, check_int, check_not_rgb
from ..intensity import robust_range
from .bands import band_energies, bands_for, group_median, group_noise_variance
from .classify import classify_table, impulse_score
from .impulse import ImpulseResult, detect_impulses
from .local import cell_grid_shape, cell_index, local_sigma_map
from .patches import PatchSample, gaussian_sigma, impulse_free_sigma, sample_patches
from .poisson import (
    clipping_levels,
    count_floor,
    curve_bins,
    curve_sigma_map,
    estimate_curve,
    quantization_variance,
)
from .report import NOISE_REPORT_KINDS, NoiseReport
from .stack import parse_roi, pick_planes, plane_of

__all__ = ["estimate_noise"]

#: Patch size for planes of at least 64 pixels (smaller planes use 5 or 3).
PATCH = 7
#: Patch budget over all fitted planes.
MAX_PATCHES = 40_000
#: Level sets of the variance-versus-mean curve.
CURVE_BINS = 16
#: Coarse grid and level sets of the classifier's table.
TABLE_CELLS = 6
TABLE_BINS = 6
#: Smoothing (pixels) of the signal estimate on which the Poisson σ map is evaluated.
SIGNAL_SMOOTHING = 1.5


def _patch_size(shape: tuple[int, int]) -> int:
    small = min(shape)
    return PATCH if small >= 64 else 5 if small >= 24 else 3


@dataclass
class _PlaneData:
    sample: PatchSample
    impulses: ImpulseResult
    clip: tuple[float | None, float | None]


def _exclusion(
    plane: np.ndarray,
    imp: ImpulseResult,
    clip: tuple[float | None, float | None],
    mask: np.ndarray | None,
) -> np.ndarray:
    excl = imp.mask.copy()
    if clip[0] is not None:
        excl |= plane <= clip[0]
    if clip[1] is not None:
        excl |= plane >= clip[1]
    if mask is not None:
        excl |= ~mask
    return excl


def _sigma_map_curve(
    data: list[_PlaneData],
    fit_ids: np.ndarray,
    lead: tuple[int, ...],
    sigma_map: np.ndarray,
    weak: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Level-set points ``(mean, mean σ_map²)`` over the weak-texture patches of the fitted
    planes (the patch sample's order: plane by plane, as concatenated)."""
    var = []
    for d, i in zip(data, fit_ids):
        plane = sigma_map[np.unravel_index(int(i), lead)] if lead else sigma_map
        var.append(plane[d.sample.cy.astype(int), d.sample.cx.astype(int)].astype(np.float64))
    var = np.concatenate(var) ** 2 if var else np.empty(0)
    means = np.concatenate([d.sample.mean for d in data])
    if not weak.any():
        return np.empty(0), np.empty(0)
    n_bins = int(np.clip(int(weak.sum()) // 500, 4, CURVE_BINS))
    _, bins = curve_bins(means[weak], n_bins)
    count = np.bincount(bins, minlength=n_bins)
    ok = count >= 12
    m = np.bincount(bins, weights=means[weak], minlength=n_bins)[ok] / count[ok]
    v = np.bincount(bins, weights=var[weak], minlength=n_bins)[ok] / count[ok]
    return m, v


def estimate_noise(image: Any, *, roi: Any = None, max_planes: int = 8) -> NoiseReport:
    """Estimate the kind and level of the noise in an image.

    Parameters
    ----------
    image
        2D image or nD stack (planes are the last two axes); numpy array, array-like or napari
        layer. Never modified. RGB images (3D with 3 or 4 channels last) are refused: pick one
        channel first.
    roi
        Region to fit on: ``None`` (everything), a boolean mask of the image's shape or of its
        last two dimensions, or a tuple of slices: two (rows, columns, applied to every plane)
        or one per axis. The σ map always covers the whole image.
    max_planes
        Parameters are fitted on at most this many planes, evenly spread over the stack; the
        σ map is then computed plane by plane.

    Returns
    -------
    NoiseReport
        Verdict, scores, parameters (image units), σ map and the variance-versus-mean curve.
    """
    arr = as_image(image, name="image", min_ndim=2)
    check_not_rgb(image, arr.shape)
    max_planes = check_int(max_planes, "max_planes", low=1, error=TypeError)
    shape = tuple(int(s) for s in arr.shape)
    hw = shape[-2:]
    lead = shape[:-2]
    n_lead = int(np.prod(lead)) if lead else 1
    roi_info = parse_roi(roi, shape)
    fit_ids = pick_planes(roi_info.plane_ids, int(max_planes))
    irange = robust_range(arr)
    p = _patch_size(hw)

    # --- 1-2: impulses and patches on the fitted planes (one float64 plane at a time)
    data: list[_PlaneData] = []
    for i in fit_ids:
        plane = np.asarray(plane_of(arr, int(i)), dtype=np.float64)
        mask = roi_info.plane_mask(arr, int(i), lead)
        imp = detect_impulses(plane, valid=mask)
        clip = clipping_levels(plane[:: max(1, hw[0] // 512), :: max(1, hw[1] // 512)])
        excl = _exclusion(plane, imp, (None, None), mask)
        sample = sample_patches(
            plane, patch=p, max_patches=MAX_PATCHES // len(fit_ids), exclude=excl
        )
        data.append(_PlaneData(sample, imp, clip))
    impulse_fraction = float(np.mean([d.impulses.fraction for d in data]))
    s_imp = impulse_score(impulse_fraction)
    clip_low = min((d.clip[0] for d in data if d.clip[0] is not None), default=None)
    clip_high = max((d.clip[1] for d in data if d.clip[1] is not None), default=None)
    sample = PatchSample.concatenate([d.sample for d in data])
    details: dict[str, float] = {
        "patch_size": float(p),
        "n_patches": float(len(sample)),
        "stride": float(sample.stride),
        "planes_fitted": float(len(fit_ids)),
        "impulse_score": s_imp,
    }

    def report(
        kind: str,
        scores: dict[str, float],
        sigma: float,
        gain: float,
        base: float,
        sigma_map: np.ndarray,
        imask: np.ndarray | None,
        cm: np.ndarray,
        cv: np.ndarray,
    ) -> NoiseReport:
        full = {k: float(scores.get(k, 0.0)) for k in NOISE_REPORT_KINDS}
        total = sum(full.values()) or 1.0
        full = {k: v / total for k, v in full.items()}
        return NoiseReport(
            kind=kind,
            scores=full,
            confidence=full[kind],
            sigma=float(sigma),
            gain=float(gain),
            baseline_variance=float(base),
            impulse_fraction=impulse_fraction,
            impulse_mask=imask,
            sigma_map=sigma_map,
            curve_means=np.asarray(cm, np.float64),
            curve_variances=np.asarray(cv, np.float64),
            intensity_range=irange,
            shape=shape,
            dtype=str(arr.dtype),
            details=details,
        )

    # --- salt and pepper: impulses dominate
    if s_imp >= 0.5:
        planes = [np.asarray(plane_of(arr, int(i)), dtype=np.float64) for i in fit_ids[:2]]
        excls = [
            _exclusion(pl, d.impulses, d.clip, roi_info.plane_mask(arr, int(i), lead))
            for pl, d, i in zip(planes, data, fit_ids[:2])
        ]
        sigma = impulse_free_sigma(planes, excls, max_patches=MAX_PATCHES)
        imask = np.zeros(shape, dtype=bool)
        for i in range(n_lead):
            hit = np.flatnonzero(fit_ids == i)
            if hit.size:
                m = data[int(hit[0])].impulses.mask
            else:
                m = detect_impulses(np.asarray(plane_of(arr, i), dtype=np.float64)).mask
            if lead:
                imask[np.unravel_index(i, lead)] = m
            else:
                imask[...] = m
        sigma_map = np.full(shape, sigma, dtype=np.float32)
        scores = {"salt_and_pepper": s_imp, "gaussian": 1.0 - s_imp}
        return report(
            "salt_and_pepper",
            scores,
            sigma,
            0.0,
            sigma**2,
            sigma_map,
            imask,
            np.empty(0),
            np.empty(0),
        )

    # --- constant (or nearly so) image
    spread = float(sample.values.std()) if len(sample) else 0.0
    if len(sample) < 2 * p * p or not spread > 1e-10 * float(
        np.abs(sample.values).max(initial=0.0)
    ):
        if len(sample) >= 2 * p * p or not float(np.ptp(arr)) > 0:
            sigma_map = np.zeros(shape, dtype=np.float32)
            return report(
                "none",
                {"none": 1.0},
                0.0,
                0.0,
                0.0,
                sigma_map,
                None,
                np.empty(0),
                np.empty(0),
            )
        raise ValueError(
            f"too few usable {p}x{p} patches ({len(sample)}) to estimate noise: the image or "
            "the roi is too small or mostly clipped"
        )

    # --- 3: global weak-texture PCA (Gaussian σ) and per-patch band energies
    sigma_gauss = gaussian_sigma(sample, clip_low=clip_low, clip_high=clip_high)
    bands = bands_for(p)
    energy, structure = band_energies(sample, bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(energy > 0, structure / energy, np.inf)
    weak = ratio < bands.ratio_threshold
    overlap = min(sample.stride**2, p * p) / (p * p)
    details["weak_fraction"] = float(weak.mean())
    details["sigma_weak_texture"] = sigma_gauss

    # --- 4: variance-versus-mean curve
    n_bins = int(np.clip(len(sample) // 500, 4, CURVE_BINS))
    quant_var = quantization_variance(sample.values)
    details["quantization_variance"] = quant_var
    fit, cm, cv, _ = estimate_curve(
        sample,
        energy,
        weak,
        bands,
        n_bins=n_bins,
        clip_low=clip_low,
        clip_high=clip_high,
        min_variance=quant_var,
    )
    details["count_floor"] = 0.0
    if clip_low is not None:  # photon counts piling up at an offset, or a clamp?
        unclipped = estimate_curve(
            sample,
            energy,
            weak,
            bands,
            n_bins=n_bins,
            clip_low=None,
            clip_high=clip_high,
            min_variance=quant_var,
        )
        if count_floor(unclipped[1], unclipped[2], unclipped[3], clip_low, clip_high=clip_high):
            fit, cm, cv, _ = unclipped
            details["count_floor"] = 1.0
            details["count_floor_level"] = float(clip_low)
            clip_low = None
    good = np.isfinite(cv) & np.isfinite(cm)
    curve_means, curve_vars = cm[good], cv[good]
    details["curve_chi2"] = fit.chi2_per_dof

    # --- 5: classification on the (cell x level set) table
    tgrid = cell_grid_shape(hw, TABLE_CELLS, min_cell=max(24, 4 * p))
    n_cells = tgrid[0] * tgrid[1]
    cells = cell_index(sample, hw, tgrid)
    _, tbins = curve_bins(sample.mean, TABLE_BINS)
    n_tbins = int(tbins.max()) + 1
    groups = cells * n_tbins + tbins
    n_groups = n_cells * n_tbins
    tv, tdof, tm = group_noise_variance(energy, weak, groups, n_groups, bands, values=sample.mean)
    tcell = np.arange(n_groups) // n_tbins
    ty = ((tcell // tgrid[1]) + 0.5) / tgrid[0] * 2.0 - 1.0
    tx = ((tcell % tgrid[1]) + 0.5) / tgrid[1] * 2.0 - 1.0
    # texture index: median structure/noise energy ratio of an entry's weak patches, relative
    # to its value under pure noise (texture that passed the test still raises it)
    tindex = group_median(ratio[weak], groups[weak], n_groups) / bands.ratio_median
    cls = classify_table(
        tm, tv, tdof * overlap, ty, tx, texture=tindex, clip_low=clip_low, clip_high=clip_high
    )
    for name, effect in cls.effects.items():
        details[f"effect_{name}"] = effect
    for name, b in cls.bic.items():
        details[f"cost_{name}"] = b
    scores = {name: (1.0 - s_imp) * s for name, s in cls.scores.items()}
    scores["salt_and_pepper"] = s_imp
    kind = max(scores, key=lambda name: scores[name])

    # --- 6: the σ map, plane by plane
    used = cm[fit.used] if fit.used.any() else curve_means
    m_lo = float(used.min()) if used.size else 0.0
    fit_masks = {int(i): d.impulses.mask for i, d in zip(fit_ids, data)}

    def plane_map(i: int) -> np.ndarray:
        plane = np.asarray(plane_of(arr, i), dtype=np.float64)
        if kind == "poisson":
            return curve_sigma_map(
                plane,
                fit,
                darkest=m_lo,
                smoothing=SIGNAL_SMOOTHING,
                levels=(curve_means, curve_vars),
            )
        impulses = fit_masks[i] if i in fit_masks else detect_impulses(plane).mask
        return local_sigma_map(
            plane, patch=p, bands=bands, exclude=impulses, max_patches=MAX_PATCHES
        )

    if kind == "gaussian":
        sigma = sigma_gauss
        sigma_map = np.full(shape, sigma, dtype=np.float32)
    else:
        sigma_map = np.empty(shape, dtype=np.float32)
        for i in range(n_lead):
            sigma_map[np.unravel_index(i, lead) if lead else ...] = plane_map(i)
        fit_maps = sigma_map[np.unravel_index(fit_ids, lead)] if lead else sigma_map
        sigma = float(np.mean(fit_maps, dtype=np.float64))
        if kind == "spatially_variant":
            # the level-set variances average the quieter half of each level set's patches
            # (robust to texture): with noise that depends on the position, that is the quiet
            # region only (10x below the mean variance on the spatially variant sample). The
            # points show the σ map² averaged over each level set's patches instead.
            curve_means, curve_vars = _sigma_map_curve(data, fit_ids, lead, sigma_map, weak)
    return report(
        kind, scores, sigma, fit.gain, fit.baseline, sigma_map, None, curve_means, curve_vars
    )
