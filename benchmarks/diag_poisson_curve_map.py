"""Diagnostic: does a σ map that follows the estimator's own level-set measurements beat the
fitted Poisson-Gaussian line (what ``estimate_noise`` handed the denoiser until 2026-12-01)?

    python benchmarks/diag_poisson_curve_map.py [model] [threads]

For every image with signal-dependent noise the blind estimate is turned into three σ maps at
the smoothed observation (Gaussian σ 1.5 px, as ``curve_sigma_map``): the fitted line
``gain·x + baseline``, the level-set variances interpolated piecewise-linearly (the report's
``sigma_map`` now: ``curve_sigma_map(levels=...)``), and a robust weighted quadratic through
the level sets. Each map is passed to ``denoise(sigma=...)``; PSNR as in the benchmark (the
real pairs affine-fitted).
Images: the three real microscopy pairs, the benchmark's six synthetic fluorescence images at
peak 50 and 200, and Set12 01-08 under Poisson-Gaussian noise (peak 20 and 100 photons, read
noise 1, offset 10): natural textures, where level sets can carry structure.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_denoise import affine_fit, load_pairs, mean_table, seed_for  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"


def quadratic(cm: np.ndarray, cv: np.ndarray, rep) -> np.ndarray:
    """``a + b·m + c·m²`` through the level sets, relative weights, 3-MAD outlier rejection."""
    lin = np.maximum(np.abs(rep.gain * cm + rep.baseline_variance), 1e-3 * cv.max())
    a = np.stack([np.ones_like(cm), cm, cm**2], 1)
    keep = np.ones(cm.size, bool)
    coef = np.zeros(3)
    for _ in range(10):
        coef, *_ = np.linalg.lstsq(a[keep] / lin[keep, None], cv[keep] / lin[keep], rcond=None)
        pred = a @ coef
        r = (cv - pred) / np.maximum(np.abs(pred), 1e-3 * cv.max())
        spread = max(1.4826 * float(np.median(np.abs(r[keep]))), 0.02)
        new = np.abs(r) < 3 * spread
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return coef


def maps(noisy: np.ndarray, rep) -> dict[str, np.ndarray]:
    from napari_diffdenoise.noise.poisson import CurveFit, curve_points, curve_sigma_map

    cm, cv = curve_points(rep.curve_means, rep.curve_variances)
    line = CurveFit(rep.gain, rep.baseline_variance, np.ones(cm.size, bool), 0.0)
    positive = cm[line.variance(cm) > 0]
    darkest = float(positive.min()) if positive.size else float(cm.min())
    fitted = curve_sigma_map(noisy, line, darkest=darkest)
    floor = 0.25 * float((fitted.astype(np.float64) ** 2).min()) + 1e-6
    x = ndimage.gaussian_filter(noisy.astype(np.float32), 1.5, truncate=3.0)
    c = quadratic(cm, cv, rep)
    xc = np.clip(x, cm.min(), cm.max())  # the quadratic is not extrapolated
    quad = c[0] + c[1] * xc + c[2] * xc**2
    return {"fitted line": fitted,
            "level sets (the report's sigma_map)": rep.sigma_map.astype(np.float32),
            "quadratic": np.sqrt(np.maximum(quad, floor)).astype(np.float32)}


def main() -> int:
    import torch
    from skimage import io

    from napari_diffdenoise import add_noise, denoise, estimate_noise, synthetic_fluorescence

    model = sys.argv[1] if len(sys.argv) > 1 else "default"
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    rows: dict[str, dict[str, list[float]]] = {}

    def run(group: str, noisy: np.ndarray, score) -> None:
        rep = estimate_noise(noisy)
        if rep.kind != "poisson":
            print(f"  {group}: estimated {rep.kind}, skipped", file=sys.stderr)
            return
        for name, m in maps(noisy, rep).items():
            out = denoise(noisy, sigma=m, model=model, output_dtype=np.float32)
            rows.setdefault(group, {}).setdefault(name, []).append(score(out.astype(np.float64)))

    for pair, noisy, clean in load_pairs(DATA):
        clean = clean.astype(np.float64)
        rng = clean.max() - clean.min()
        run(pair, noisy, lambda e, c=clean, r=rng: 10 * np.log10(
            r**2 / np.mean((affine_fit(e, c) - c) ** 2)))
    for peak in (50, 200):
        for i in range(6):
            photons = peak * synthetic_fluorescence((256, 256), kind="mixed", seed=i).astype(np.float64)
            noisy = add_noise(photons, "poisson_gaussian", gain=1.0, read_noise=2.0, offset=100.0,
                              seed=seed_for("poisson", i, peak))
            run(f"synthetic fluorescence, peak {peak}", noisy,
                lambda e, c=100 + photons, r=float(photons.max()): 10 * np.log10(
                    r**2 / np.mean((e - c) ** 2)))
    for peak in (20, 100):
        for f in sorted((DATA / "set12").glob("*.png"))[:8]:
            photons = peak * io.imread(f).astype(np.float64) / 255.0
            noisy = add_noise(photons, "poisson_gaussian", gain=1.0, read_noise=1.0, offset=10.0,
                              seed=seed_for("pn", f.stem, peak))
            run(f"Set12 01-08, Poisson peak {peak}", noisy,
                lambda e, c=10 + photons, r=float(peak): 10 * np.log10(r**2 / np.mean((e - c) ** 2)))
    names = list(next(iter(rows.values())))
    print("\n".join(mean_table(rows, names, names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
