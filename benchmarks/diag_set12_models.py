"""Diagnostic: Set12 mean PSNR (blind, Gaussian σ 15/25/50, the benchmark's noise seeds) for
several models, quick enough to follow a training run (no baselines: those are in
``bench_denoise.py``'s cache and tables).

    python benchmarks/diag_set12_models.py default runs/deep_stage5/deep.safetensors
    python benchmarks/diag_set12_models.py --ensemble 8 --sigmas 25 quality

Prints one markdown row per model (and ensemble size).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_denoise import seed_for  # noqa: E402  (the benchmark's noise seeds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="model names or .safetensors paths")
    p.add_argument("--sigmas", default="15,25,50")
    p.add_argument("--ensemble", type=int, default=None, help="self-ensemble size (1/2/4/8)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import torch
    from skimage import io

    from napari_diffdenoise import add_noise, denoise

    torch.set_num_threads(a.threads)
    files = sorted((a.data / "set12").glob("*.png"))
    if not files:
        print(f"no Set12 images under {a.data / 'set12'}", file=sys.stderr)
        return 1
    images = [(f.stem, io.imread(f).astype(np.float64)) for f in files]
    sigmas = [int(s) for s in a.sigmas.split(",")]
    print("| model | " + " | ".join(f"σ={s}" for s in sigmas) + " |")
    print("|---" * (len(sigmas) + 1) + "|")
    for model in a.models:
        cells = []
        for s in sigmas:
            scores = []
            for name, clean in images:
                noisy = add_noise(clean, "gaussian", sigma=s, seed=seed_for("gaussian", name, s))
                out = denoise(noisy.astype(np.float32), model=model, ensemble=a.ensemble,
                              output_dtype=np.float32)
                mse = np.mean((np.clip(out, 0, 255) - clean) ** 2)
                scores.append(10 * np.log10(255.0**2 / mse))
            cells.append(f"{np.mean(scores):.2f}")
        label = model + (f" ×{a.ensemble}" if a.ensemble else "")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
