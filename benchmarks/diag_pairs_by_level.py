"""Diagnostic: where on the real pairs our error sits against VST+BM3D, by clean-signal level.

    python benchmarks/diag_pairs_by_level.py [model] [threads]

For each pair (the blind start map ``start_sigma_map``, one pass; VST+BM3D with the
gain/baseline of ``estimate_noise``, from the benchmark's cache when it has run) prints, per band of the clean image's quantiles,
each method's share of the mean squared error after the affine fit (the shares sum to the
MSE), then the darkest 40 %'s statistics: the noisy grey values there and the mean / std of
the clean image and of both outputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines as B  # noqa: E402
from bench_denoise import affine_fit, cached_baseline, load_pairs  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"


def main() -> int:
    import torch

    from napari_diffdenoise import denoise, estimate_noise

    model = sys.argv[1] if len(sys.argv) > 1 else "default"
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    for name, noisy, clean in load_pairs(DATA):
        clean = clean.astype(np.float64)
        rep = estimate_noise(noisy)
        ours = denoise(noisy, sigma=rep.start_sigma_map, model=model, output_dtype=np.float32)
        bm3d, _ = cached_baseline(B.vst_bm3d, noisy, rep.gain, rep.baseline_variance)
        rng = clean.max() - clean.min()
        e_ours = (affine_fit(ours, clean) - clean) ** 2
        e_bm3d = (affine_fit(bm3d, clean) - clean) ** 2
        print(f"{name}: PSNR ours {10 * np.log10(rng**2 / e_ours.mean()):.2f}, "
              f"VST+BM3D {10 * np.log10(rng**2 / e_bm3d.mean()):.2f}")
        edges = np.quantile(clean, [0, 0.4, 0.6, 0.8, 0.9, 0.97, 1.0])
        band = np.clip(np.searchsorted(edges, clean, side="right") - 1, 0, len(edges) - 2)
        for k in range(len(edges) - 1):
            s = band == k
            print(f"  clean {edges[k]:6.1f}-{edges[k + 1]:6.1f} ({s.mean():4.0%} of pixels): "
                  f"MSE share ours {e_ours[s].sum() / e_ours.size:8.3f}, "
                  f"VST+BM3D {e_bm3d[s].sum() / e_bm3d.size:8.3f}")
        dark = clean <= edges[1]
        values, counts = np.unique(noisy[dark], return_counts=True)
        top = np.argsort(counts)[::-1][:6]
        print("  darkest 40 %: noisy values " + ", ".join(
            f"{values[i]}: {counts[i] / dark.sum():.1%}" for i in sorted(top)))
        for label, arr in (("clean", clean), ("ours", ours), ("VST+BM3D", bm3d)):
            print(f"    {label}: mean {arr[dark].mean():.3f}, std {arr[dark].std():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
