"""Diagnostic: fine periodic structure with the TRUE σ (25), for one or more models.

    python benchmarks/diag_textures.py [model_or_path ...]      # default: the bundled model

Prints PSNR (dB) on the benchmark's 8 sinusoidal gratings (``bench_denoise.gratings``, same
seeds as its ``textures`` section), Barbara's striped 256² quarter and the whole Barbara, then
the gratings' mean. The benchmark section itself runs blind; this isolates the network from
the noise estimate. About 10 s per model on 2 cores.
"""
import sys
from pathlib import Path

import numpy as np
from skimage import io

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_denoise import gratings, seed_for  # noqa: E402

from napari_diffdenoise import add_noise, denoise  # noqa: E402


def psnr(e, c):
    return 10 * np.log10(255**2 / np.mean((np.clip(e, 0, 255) - c) ** 2))


def main() -> None:
    models = sys.argv[1:] or ["default"]
    images = gratings(256)
    barbara = io.imread(HERE.parent.parent / "shared" / "data" / "set12" / "09.png").astype(float)
    images += [("Barbara 256² crop (stripes)", barbara[256:, 256:]), ("Barbara", barbara)]
    print("model | " + " | ".join(name for name, _ in images) + " | gratings mean")
    for m in models:
        r = []
        for name, clean in images:
            noisy = add_noise(clean, "gaussian", sigma=25, seed=seed_for("textures", name))
            r.append(psnr(denoise(noisy.astype(np.float32), sigma=25, model=m,
                                  output_dtype=np.float32), clean))
        print(f"{m} | " + " | ".join(f"{x:.2f}" for x in r) + f" | {np.mean(r[:8]):.2f}")


if __name__ == "__main__":
    main()
