"""Classical denoising baselines for ``bench_denoise.py`` (benchmark-only code, not shipped).

Every function takes a float image in its own intensity units and returns a float64 image in
the same units; none of them clips its output. Noise levels (``sigma``) are standard deviations
in the image's units.

Parameter rules
---------------
NLM, TV and wavelet need a smoothing strength. They get a *rule* linear in σ, with one constant
per method tuned once on images that are NOT in Set12 (``train400/test_001..004``, the first
four of the 400 training images, 180×180, Gaussian σ 15/25/50, mean PSNR over the 12 cases).
``python benchmarks/baselines.py --tune`` re-runs that sweep and prints the table; the chosen
constants are the ``*_FACTOR`` / ``WAVELET`` values below.

- NLM: ``skimage.restoration.denoise_nl_means(fast_mode=True, patch_size=7,
  patch_distance=11, sigma=σ, h=NLM_H_FACTOR·σ)``.
- TV: ``denoise_tv_chambolle(weight=TV_WEIGHT_FACTOR·σ)`` (the TV weight is in the data's
  units: the problem is scale-equivariant, so a rule linear in σ is unit-free).
- Wavelet: ``denoise_wavelet(method="BayesShrink", mode="soft", wavelet=WAVELET,
  wavelet_levels=WAVELET_LEVELS, sigma=σ)``; BayesShrink sets its own per-sub-band thresholds
  from σ (the sweep picks the wavelet and the number of levels).
- BM3D: ``bm3d.bm3d(noisy, sigma_psd=σ)`` (bm3d 4.x, default profile), no tuning.

VST + BM3D
----------
For ``Var[y | E y] = a·E[y] + b`` (gain ``a``, baseline variance ``b``; with a camera offset
``o`` and read noise ``r``: ``b = r² − a·o``) the generalized Anscombe transform (GAT)
``D = (2/a)·sqrt(max(a·y + 3/8·a² + b, 0))`` has unit variance; BM3D then runs at σ = 1, and
the result is mapped back with the closed-form approximation of the *exact unbiased* inverse
of Mäkitalo & Foi (IEEE TIP 2013), ``(D/2)² + ¼·√(3/2)·D⁻¹ − 11/8·D⁻² + 5/8·√(3/2)·D⁻³ − 1/8``
(made monotone below its minimum at D ≈ 0.76, where the series breaks down), minus the Gaussian
part and clipped at the camera offset when the offset is known (as in their code).

Impulse noise
-------------
``adaptive_median``: the Hwang–Haddad adaptive median filter (IEEE TIP 1995; the version in
Gonzalez & Woods), vectorised over window sizes 3, 5, …, ``max_window`` with scipy.ndimage.
Only pixels detected as impulses are replaced (see the function's docstring).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = [
    "NLM_H_FACTOR",
    "TV_WEIGHT_FACTOR",
    "WAVELET",
    "WAVELET_LEVELS",
    "bm3d_denoise",
    "nlm",
    "tv",
    "wavelet",
    "gat_forward",
    "gat_inverse_unbiased",
    "gat_inverse_algebraic",
    "vst_bm3d",
    "oracle_noise_fit",
    "median3",
    "adaptive_median",
    "tune",
]

#: Tuned on train400/test_001..004 (Gaussian σ 15/25/50), see ``tune``.
NLM_H_FACTOR = 0.5  # best 0.5-0.6 (skimage's gallery uses 0.8 without the sigma argument)
TV_WEIGHT_FACTOR = 0.8  # best per σ: 0.7 / 0.8 / 1.0 at σ 15 / 25 / 50; 0.8 is the best single rule
WAVELET = "sym4"
WAVELET_LEVELS = 4  # skimage's default (max level − 3) gives 1 level for sym8 on small images


# --------------------------------------------------------------------------- Gaussian denoisers
def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (bm3d package, default 'np' profile) at noise std ``sigma`` (image units).

    The image is divided by ``scale = 255`` only to keep the library in its usual range; BM3D
    is scale-equivariant given σ in the same units.
    """
    import bm3d

    scale = 255.0
    out = bm3d.bm3d(np.asarray(noisy, np.float64) / scale, sigma_psd=float(sigma) / scale)
    return np.asarray(out, np.float64) * scale


def nlm(noisy: np.ndarray, sigma: float, h_factor: float | None = None) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    h = (NLM_H_FACTOR if h_factor is None else h_factor) * float(sigma)
    return denoise_nl_means(
        np.asarray(noisy, np.float64),
        h=h,
        sigma=float(sigma),
        fast_mode=True,
        patch_size=7,
        patch_distance=11,
    )


def tv(noisy: np.ndarray, sigma: float, factor: float | None = None) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    weight = (TV_WEIGHT_FACTOR if factor is None else factor) * float(sigma)
    return denoise_tv_chambolle(np.asarray(noisy, np.float64), weight=weight)


def wavelet(noisy: np.ndarray, sigma: float, spec: tuple[str, int] | None = None) -> np.ndarray:
    """BayesShrink soft thresholding; ``spec = (wavelet name, levels)``, default the tuned one.

    The number of levels is capped at PyWavelets' maximum for the image size.
    """
    import pywt
    from skimage.restoration import denoise_wavelet

    name, levels = (WAVELET, WAVELET_LEVELS) if spec is None else spec
    x = np.asarray(noisy, np.float64)
    max_level = pywt.dwt_max_level(min(x.shape), pywt.Wavelet(name).dec_len)
    return denoise_wavelet(
        x,
        sigma=float(sigma),
        wavelet=name,
        wavelet_levels=max(1, min(levels, max_level)),
        method="BayesShrink",
        mode="soft",
        rescale_sigma=True,
    )


# --------------------------------------------------------------------------- Poisson-Gaussian
def gat_forward(y: np.ndarray, gain: float, baseline_variance: float) -> np.ndarray:
    """Generalized Anscombe transform for ``Var[y] = gain·E[y] + baseline_variance``."""
    a, b = float(gain), float(baseline_variance)
    if a <= 0:
        raise ValueError(f"gain must be > 0, got {a}")
    arg = a * np.asarray(y, np.float64) + 0.375 * a * a + b
    return (2.0 / a) * np.sqrt(np.maximum(arg, 0.0))


_C = math.sqrt(1.5)


def _unbiased_series(d: np.ndarray) -> np.ndarray:
    return d * d / 4 + 0.25 * _C / d - 11 / 8 / d**2 + 5 / 8 * _C / d**3 - 1 / 8


def _series_minimum() -> float:
    grid = np.linspace(0.3, 2.0, 17001)
    return float(grid[np.argmin(_unbiased_series(grid))])


_D_MIN = _series_minimum()  # ≈ 0.76


def gat_inverse_unbiased(
    d: np.ndarray, gain: float, baseline_variance: float, offset: float | None = None
) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse GAT (Mäkitalo & Foi 2013).

    In photon units ``u = (y − o)/a`` the inverse is ``I(D) − σ'²`` with ``σ' = r/a``; in image
    units that is ``a·I(D) − b/a`` (only ``b = r² − a·o`` is needed). With ``offset`` known the
    result is clipped at it (``u ≥ 0``), as in the reference implementation.
    """
    a, b = float(gain), float(baseline_variance)
    d = np.maximum(np.asarray(d, np.float64), _D_MIN)
    z = a * _unbiased_series(d) - b / a
    if offset is not None:
        z = np.maximum(z, float(offset))
    return z


def gat_inverse_algebraic(d: np.ndarray, gain: float, baseline_variance: float) -> np.ndarray:
    """Plain algebraic inverse of :func:`gat_forward` (biased at low counts; for reference)."""
    a, b = float(gain), float(baseline_variance)
    d = np.asarray(d, np.float64)
    return a * d * d / 4 - 0.375 * a - b / a


def vst_bm3d(
    noisy: np.ndarray, gain: float, baseline_variance: float, offset: float | None = None
) -> np.ndarray:
    """GAT → BM3D at σ = 1 → exact-unbiased inverse (closed form)."""
    import bm3d

    d = gat_forward(noisy, gain, baseline_variance)
    dd = np.asarray(bm3d.bm3d(d, sigma_psd=1.0), np.float64)
    return gat_inverse_unbiased(dd, gain, baseline_variance, offset)


def oracle_noise_fit(
    noisy: np.ndarray, clean: np.ndarray, bins: int = 32, saturated: float | None = None
) -> tuple[float, float]:
    """Fit ``Var[noisy | clean] = gain·E[noisy] + baseline`` using the clean reference (an oracle).

    The clean image is first mapped affinely onto the noisy one (least squares: references are
    often scaled differently), the residual variance is measured in ``bins`` quantile bins of
    the expected value, and a straight line is fitted (weights √count). Bins whose expected
    value is within 3 residual std of ``saturated`` (e.g. 255 for uint8) are left out.
    Returns ``(gain, baseline)``.
    """
    y = np.asarray(noisy, np.float64).ravel()
    c = np.asarray(clean, np.float64).ravel()
    A = np.stack([c, np.ones_like(c)], axis=1)
    (s, o), *_ = np.linalg.lstsq(A, y, rcond=None)
    mu = s * c + o
    r = y - mu
    edges = np.unique(np.quantile(mu, np.linspace(0.0, 1.0, bins + 1)))
    idx = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, len(edges) - 2)
    cnt = np.bincount(idx, minlength=len(edges) - 1).astype(np.float64)
    ok = cnt >= 50
    cnt_safe = np.maximum(cnt, 1)
    m = np.bincount(idx, mu, minlength=len(cnt)) / cnt_safe
    rm = np.bincount(idx, r, minlength=len(cnt)) / cnt_safe
    v = np.bincount(idx, r * r, minlength=len(cnt)) / cnt_safe - rm**2
    if saturated is not None:
        ok &= m + 3 * np.sqrt(np.maximum(v, 0)) < saturated
    if ok.sum() < 3:
        return 0.0, float(np.var(r))
    gain, baseline = np.polyfit(m[ok], v[ok], 1, w=np.sqrt(cnt[ok]))
    return float(gain), float(baseline)


# --------------------------------------------------------------------------- impulse noise
def median3(noisy: np.ndarray) -> np.ndarray:
    """Plain 3×3 median filter (replaces every pixel)."""
    return ndimage.median_filter(np.asarray(noisy), size=3, mode="reflect")


def adaptive_median(noisy: np.ndarray, max_window: int = 11) -> np.ndarray:
    """Hwang–Haddad adaptive median filter, vectorised over window sizes 3..``max_window``.

    For each pixel ``z`` and growing window ``S`` (3, 5, …) with ``zmin``, ``zmed``, ``zmax``:

    - Stage A: if ``zmin < zmed < zmax`` the median is not itself an impulse: go to stage B
      with this window; otherwise grow the window.
    - Stage B: ``z`` is an impulse iff it is not strictly inside ``(zmin, zmax)``; impulses are
      replaced by ``zmed``, every other pixel is left unchanged.
    - Window limit reached without passing stage A: ``z`` is replaced by the largest window's
      median only if it is an extreme of that window (so only detected impulses change; the
      textbook version replaces it unconditionally).

    Windows are computed for the whole image at each size with ``scipy.ndimage`` (reflect
    boundary); the result has the input's dtype.
    """
    x = np.asarray(noisy)
    if x.ndim != 2:
        raise ValueError("adaptive_median expects a 2D image")
    if max_window < 3 or max_window % 2 == 0:
        raise ValueError("max_window must be odd and >= 3")
    out = x.copy()
    undecided = np.ones(x.shape, dtype=bool)
    zmin = zmax = zmed = x
    for size in range(3, max_window + 1, 2):
        zmin = ndimage.minimum_filter(x, size=size, mode="reflect")
        zmax = ndimage.maximum_filter(x, size=size, mode="reflect")
        zmed = ndimage.median_filter(x, size=size, mode="reflect")
        stage_b = undecided & (zmin < zmed) & (zmed < zmax)
        impulse = stage_b & ((x <= zmin) | (x >= zmax))
        out[impulse] = zmed[impulse]
        undecided &= ~stage_b
        if not undecided.any():
            break
    last = undecided & ((x <= zmin) | (x >= zmax))
    out[last] = zmed[last]
    return out


# --------------------------------------------------------------------------- tuning
def _holdout_images(data_dir: Path, n: int = 4) -> list[tuple[str, np.ndarray]]:
    from skimage import io

    paths = sorted((data_dir / "train400").glob("*.png"))[:n]
    return [(p.name, io.imread(p).astype(np.float64)) for p in paths]


def tune(data_dir: Path, sigmas=(15, 25, 50)) -> None:
    """Sweep the NLM/TV/wavelet constants on hold-out images (outside Set12) and print PSNRs."""
    images = _holdout_images(data_dir)
    if not images:
        raise SystemExit(f"no train400 images under {data_dir}")
    grids = {
        "nlm h/σ": (nlm, [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2]),
        "tv weight/σ": (tv, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5]),
        "wavelet, levels": (
            wavelet,
            [(w, lv) for w in ("db1", "db2", "sym4", "sym8") for lv in (3, 4, 5)],
        ),
    }
    print(f"hold-out images: {', '.join(n for n, _ in images)} (train400), σ = {sigmas}")
    for label, (fn, values) in grids.items():
        print(f"\n{label:16s} " + " ".join(f"σ={s:<5d}" for s in sigmas) + "  mean")
        for v in values:
            row = []
            for s in sigmas:
                ps = []
                for i, (_, clean) in enumerate(images):
                    noisy = clean + np.random.default_rng(1000 * s + i).normal(0, s, clean.shape)
                    est = np.clip(fn(noisy, s, v), 0, 255)
                    ps.append(10 * np.log10(255**2 / np.mean((est - clean) ** 2)))
                row.append(float(np.mean(ps)))
            print(f"{str(v):16s} " + " ".join(f"{p:7.2f}" for p in row) + f"  {np.mean(row):.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="re-run the parameter sweep")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    args = parser.parse_args(argv)
    if args.tune:
        tune(args.data)
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
