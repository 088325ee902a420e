"""Patch sampling and weak-texture PCA noise estimation.

The Gaussian noise estimator follows Liu, Tanaka & Okutomi, "Single-image noise level
estimation for blind denoising" (IEEE TIP 2013): patches whose gradient energy is below the
level noise alone would give (a gamma-distributed statistic) are "weak-texture" patches; the
noise variance is read from the small eigenvalues of their covariance. Instead of the single
smallest eigenvalue (biased low by the finite sample, Marchenko-Pastur) we take the mean of the
tail of eigenvalues whose mean and median agree (Chen, Zhu & Heng, ICCV 2015).

Local analyses (level sets, cells) use per-patch energies from fixed DCT bands instead, see
:mod:`.bands`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.linalg
from scipy.special import gammaincinv

__all__ = [
    "PATCH_SIZE",
    "PatchSample",
    "eigen_tail_variance",
    "gaussian_sigma",
    "impulse_free_sigma",
    "sample_patches",
    "texture_threshold",
    "weak_texture_pca",
]

PATCH_SIZE = 7
#: Quantile of the noise-only gradient-energy distribution used as the weak-texture threshold.
TEXTURE_QUANTILE = 0.99


@dataclass
class PatchSample:
    """Patches drawn from one or more planes (rows are flattened ``p x p`` patches)."""

    values: np.ndarray  # (n, p*p) float64
    mean: np.ndarray  # (n,) patch means
    texture: np.ndarray  # (n,) gradient energy, sum of squared neighbour differences
    cy: np.ndarray  # (n,) patch centre row, pixels
    cx: np.ndarray  # (n,) patch centre column, pixels
    stride: int
    patch: int

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def subset(self, keep: np.ndarray) -> PatchSample:
        return PatchSample(
            self.values[keep],
            self.mean[keep],
            self.texture[keep],
            self.cy[keep],
            self.cx[keep],
            self.stride,
            self.patch,
        )

    @staticmethod
    def concatenate(samples: list[PatchSample]) -> PatchSample:
        first = samples[0]
        return PatchSample(
            np.concatenate([s.values for s in samples]),
            np.concatenate([s.mean for s in samples]),
            np.concatenate([s.texture for s in samples]),
            np.concatenate([s.cy for s in samples]),
            np.concatenate([s.cx for s in samples]),
            first.stride,
            first.patch,
        )


def sample_patches(
    plane: np.ndarray,
    *,
    patch: int = PATCH_SIZE,
    max_patches: int = 60_000,
    exclude: np.ndarray | None = None,
) -> PatchSample:
    """Draw ``patch x patch`` patches on a regular grid (stride chosen to stay under budget).

    Patches touching a pixel of ``exclude`` (impulses, clipped pixels, outside the ROI) are
    dropped.
    """
    h, w = plane.shape
    p = int(patch)
    ny, nx = h - p + 1, w - p + 1
    if ny < 1 or nx < 1:
        empty = np.empty((0, p * p))
        e1 = np.empty(0)
        return PatchSample(empty, e1, e1, e1, e1, 1, p)
    stride = max(1, int(np.ceil(np.sqrt(ny * nx / max(max_patches, 1)))))
    ys = np.arange(0, ny, stride)
    xs = np.arange(0, nx, stride)
    win = np.lib.stride_tricks.sliding_window_view(plane, (p, p))[::stride, ::stride]
    values = np.asarray(win, dtype=np.float64).reshape(-1, p * p)
    cy = np.repeat(ys + (p - 1) / 2.0, len(xs))
    cx = np.tile(xs + (p - 1) / 2.0, len(ys))
    if exclude is not None and exclude.any():
        ex = np.lib.stride_tricks.sliding_window_view(exclude, (p, p))[::stride, ::stride]
        ok = ~ex.any(axis=(2, 3)).ravel()
        values, cy, cx = values[ok], cy[ok], cx[ok]
    blocks = values.reshape(-1, p, p)
    texture = (np.diff(blocks, axis=1) ** 2).sum(axis=(1, 2))
    texture += (np.diff(blocks, axis=2) ** 2).sum(axis=(1, 2))
    return PatchSample(values, values.mean(axis=1), texture, cy, cx, stride, p)


@lru_cache(maxsize=16)
def texture_threshold(patch: int = PATCH_SIZE, quantile: float = TEXTURE_QUANTILE) -> float:
    """Gradient energy of a flat patch under unit-variance white noise, at ``quantile``.

    The energy is ``n^T M n`` with ``M = Dh^T Dh + Dv^T Dv``; it is approximated by a gamma
    distribution with the exact mean ``tr(M)`` and variance ``2 tr(M^2)``. Multiply by σ².
    """
    p = int(patch)
    eye = np.eye(p)
    diff = np.diff(eye, axis=0)  # (p-1, p)
    dv = np.kron(diff, eye)  # vertical differences
    dh = np.kron(eye, diff)  # horizontal differences
    m = dv.T @ dv + dh.T @ dh
    tr1 = float(np.trace(m))
    tr2 = float(np.trace(m @ m))
    shape = tr1**2 / (2.0 * tr2)
    scale = 2.0 * tr2 / tr1
    return float(gammaincinv(shape, quantile) * scale)


def eigen_tail_variance(cov: np.ndarray) -> float:
    """Noise variance from a patch covariance.

    Eigenvalues sorted descending; the noise variance is the mean of the longest tail whose
    mean does not exceed its median (Chen et al. 2015).
    """
    # scipy's LAPACK driver: numpy's eigh is ~100x slower at this size on busy machines
    evals = scipy.linalg.eigh(cov, eigvals_only=True, driver="evr", check_finite=False)
    evals = np.maximum(evals[::-1], 0.0)
    d = evals.shape[0]
    start = d - 1
    for i in range(d):
        tail = evals[i:]
        if tail.mean() <= np.median(tail):
            start = i
            break
    return float(evals[start:].mean())


# Tall-skinny products are done in row blocks small enough for OpenBLAS to stay
# single-threaded: its threads buy nothing at this size and, on a busy machine, add latency
# spikes of hundreds of milliseconds.
_ROW_BLOCK = 96


def _project(values: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``values @ basis`` in float32 row blocks."""
    a = np.ascontiguousarray(values, dtype=np.float32)
    b = np.ascontiguousarray(basis, dtype=np.float32)
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    for i in range(0, a.shape[0], _ROW_BLOCK):
        np.matmul(a[i : i + _ROW_BLOCK], b, out=out[i : i + _ROW_BLOCK])
    return out


def _unit_scale(centred: np.ndarray) -> float:
    """A scale that brings centred values near 1 (float32 products neither overflow nor
    lose the noise to rounding, whatever the image's units)."""
    scale = float(np.max(np.abs(centred), initial=0.0))
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def _cov(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(axis=0)
    scale = _unit_scale(centred)
    centred = np.ascontiguousarray(centred / scale, dtype=np.float32)
    d = centred.shape[1]
    acc = np.zeros((d, d), dtype=np.float64)
    block = max(8, (_ROW_BLOCK * 2500) // (d * d))
    for i in range(0, centred.shape[0], block):
        a = centred[i : i + block]
        acc += a.T @ a
    return acc * (scale * scale) / max(values.shape[0] - 1, 1)


@dataclass
class WeakTextureResult:
    variance: float
    selected: np.ndarray  # (n,) bool
    iterations: int


def weak_texture_pca(
    sample: PatchSample, *, max_iter: int = 10, min_patches: int | None = None
) -> WeakTextureResult:
    """Iterative weak-texture patch selection and PCA noise variance (Liu et al. 2013)."""
    n, d = sample.values.shape
    min_patches = max(2 * d, 50) if min_patches is None else min_patches
    selected = np.ones(n, dtype=bool)
    thr_unit = texture_threshold(sample.patch)
    variance = eigen_tail_variance(_cov(sample.values))
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        new_sel = sample.texture < variance * thr_unit
        if new_sel.sum() < min_patches:
            break
        selected = new_sel
        new_var = eigen_tail_variance(_cov(sample.values[selected]))
        converged = abs(new_var - variance) <= 1e-3 * max(variance, 1e-300)
        variance = new_var
        if converged:
            break
    return WeakTextureResult(variance, selected, it)


#: Patches whose mean is within this many σ of a clipping level do not count for the Gaussian σ.
CLIP_MARGIN = 2.5


def impulse_free_sigma(
    planes: list[np.ndarray], excludes: list[np.ndarray], *, max_patches: int = 40_000
) -> float:
    """Std of the noise besides impulses: PCA on impulse-free patches, as large as possible."""
    for p in (7, 5, 4, 3, 2):
        samples = [
            sample_patches(pl, patch=p, max_patches=max_patches // len(planes), exclude=ex)
            for pl, ex in zip(planes, excludes)
        ]
        sample = PatchSample.concatenate(samples)
        if len(sample) >= max(500, 20 * p * p):
            return float(np.sqrt(weak_texture_pca(sample).variance))
    return 0.0


def gaussian_sigma(
    sample: PatchSample, *, clip_low: float | None = None, clip_high: float | None = None
) -> float:
    """Weak-texture PCA σ; with clipping, patches whose mean lies within ``CLIP_MARGIN``
    σ of a clipping level are left out (their noise is censored), iteratively."""
    variance = weak_texture_pca(sample).variance
    if clip_low is None and clip_high is None:
        return float(np.sqrt(variance))
    for _ in range(4):
        margin = CLIP_MARGIN * np.sqrt(variance)
        ok = np.ones(len(sample), dtype=bool)
        if clip_low is not None:
            ok &= sample.mean > clip_low + margin
        if clip_high is not None:
            ok &= sample.mean < clip_high - margin
        if ok.sum() < max(500, 4 * sample.values.shape[1]):
            break
        new = weak_texture_pca(sample.subset(ok)).variance
        done = abs(new - variance) <= 1e-3 * variance
        variance = new
        if done:
            break
    return float(np.sqrt(variance))
