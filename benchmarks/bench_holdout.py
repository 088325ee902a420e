"""Score models and BM3D on the training run's validation set, with the validation's own noise.

The training loop logs ``val_psnr`` (EMA model, known σ, one step) on the last ``holdout``
images of ``train400`` at Gaussian σ 25 and 50. This script puts BM3D (true σ) on exactly the
same noisy images next to any number of weight files, so the logged curve has a baseline:

    python benchmarks/bench_holdout.py                       # bundled default model + BM3D
    python benchmarks/bench_holdout.py runs/default/default.safetensors other.safetensors

Prints a markdown table (PSNR in dB on [0, 1] images, clipped; mean over the images).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines as B  # noqa: E402


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(x, 0.0, 1.0) - ref) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "models", nargs="*", default=["default"], help="model names or .safetensors paths"
    )
    p.add_argument(
        "--train-dir", type=Path, default=None, help="train400 folder (default: shared data)"
    )
    p.add_argument("--holdout", type=int, default=8, help="number of held-out images (recipe: 8)")
    p.add_argument("--no-bm3d", action="store_true")
    args = p.parse_args(argv)

    import torch

    from napari_diffdenoise import load_model
    from napari_diffdenoise.diffusion.samplers import sample
    from napari_diffdenoise.training.data import load_clean_images
    from napari_diffdenoise.training.loop import VAL_SIGMAS, default_train_dir, validation_pairs

    images = load_clean_images(args.train_dir or default_train_dir())
    holdout = images[-args.holdout :]
    pairs = list(validation_pairs(holdout))
    rows: list[tuple[str, dict[int, float], float]] = []
    for name in args.models:
        m = load_model(name)
        scores: dict[int, list[float]] = {s: [] for s in VAL_SIGMAS}
        t0 = time.perf_counter()
        for sigma255, x0, y in pairs:
            tau = torch.full_like(x0, sigma255 / 255.0 / m.sigma_max)
            with torch.no_grad():
                x = sample(m.net, y, tau, sampler="direct")
            scores[sigma255].append(_psnr(x.numpy()[0, 0], x0.numpy()[0, 0]))
        rows.append(
            (
                f"{name} ({m.info.description})",
                {s: float(np.mean(v)) for s, v in scores.items()},
                time.perf_counter() - t0,
            )
        )
    if not args.no_bm3d:
        scores = {s: [] for s in VAL_SIGMAS}
        t0 = time.perf_counter()
        for sigma255, x0, y in pairs:
            out = (
                B.bm3d_denoise(y.numpy()[0, 0].astype(np.float64) * 255.0, float(sigma255)) / 255.0
            )
            scores[sigma255].append(_psnr(out, x0.numpy()[0, 0]))
        rows.append(
            (
                "BM3D (true σ)",
                {s: float(np.mean(v)) for s, v in scores.items()},
                time.perf_counter() - t0,
            )
        )
    head = "| method | " + " | ".join(f"σ {s}" for s in VAL_SIGMAS) + " | time (s) |"
    print(f"Validation holdout: last {len(holdout)} images of train400, PSNR (dB), known σ\n")
    print(head)
    print("|" + "---|" * (len(VAL_SIGMAS) + 2))
    for label, sc, secs in rows:
        print(f"| {label} | " + " | ".join(f"{sc[s]:.2f}" for s in VAL_SIGMAS) + f" | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
