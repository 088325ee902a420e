"""Diagnostic: real pairs denoised with the blind σ map scaled by k (is the estimate the limit?).

    python benchmarks/diag_pairs_sigma_scale.py [model] [threads]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_denoise import affine_fit, load_pairs  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"


def main() -> int:
    import torch

    from napari_diffdenoise import denoise, estimate_noise

    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    model = sys.argv[1] if len(sys.argv) > 1 else "default"
    for name, n, c in load_pairs(DATA):
        c = c.astype(np.float64)
        rng = c.max() - c.min()

        def ps(e, c=c, rng=rng):
            return 10 * np.log10(rng**2 / np.mean((affine_fit(e, c) - c) ** 2))

        rep = estimate_noise(n)
        sm = rep.sigma_map.astype(np.float32)
        row = [round(ps(denoise(n, sigma=k * sm, model=model, output_dtype=np.float32)), 2)
               for k in (0.7, 1.0, 1.3, 1.6, 2.0, 2.5)]
        row.append(round(ps(denoise(n, sigma=float(np.sqrt(np.mean(sm**2))), model=model,
                                    output_dtype=np.float32)), 2))
        print(name, rep.kind, "scales 0.7,1,1.3,1.6,2,2.5, const:", row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
