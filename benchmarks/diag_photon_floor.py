"""Diagnostic: the photon floor of the shot-noise start map (``NoiseReport.start_sigma_map``).

    python benchmarks/diag_photon_floor.py [model] [threads] [floors...]

Denoises each image from the blind σ map floored at ``floor · gain`` (one photon's step in
image units; ``PHOTON_FLOOR`` is the product's choice) for each floor given (default
0 0.5 1 1.25 1.5 2). Images: the three real microscopy pairs (affine-fitted PSNR, as in the
benchmark); photon counts simulated on ``fmd_r1``'s clean image (gain 3.56, offset 3, uint8:
its estimate) with pulses of one height and of gamma-spread heights (shape 4, variance gain
kept); Set12 01-08 under Poisson noise of gain 4 (float); and synthetic fluorescence under
Poisson-Gaussian noise (peak 100 photons, gain 3, read noise 0.5, offset 10), as generated
and with the background lowered to zero (20th percentile subtracted). Prints mean PSNR per
group and floor.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_denoise import affine_fit, load_pairs, mean_table  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"


def counts_on(clean: np.ndarray, gain: float, offset: float, shape: float | None,
              seed: int) -> np.ndarray:
    """uint8 photon counts above ``offset``: pulses of height ``gain`` (``shape`` None) or of
    gamma-distributed heights (``shape``, the variance per unit signal kept at ``gain``)."""
    rng = np.random.default_rng(seed)
    signal = np.clip(clean - offset, 0, None)
    if shape is None:
        y = offset + gain * rng.poisson(signal / gain)
    else:
        scale = gain / (shape + 1.0)
        n = rng.poisson(signal / (shape * scale))
        y = offset + np.where(n > 0, rng.gamma(np.maximum(n * shape, 1e-9), scale), 0.0)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def main() -> int:
    import torch
    from skimage import io

    from napari_diffdenoise import add_noise, denoise, estimate_noise, synthetic_fluorescence

    model = sys.argv[1] if len(sys.argv) > 1 else "default"
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    floors = [float(f) for f in sys.argv[3:]] or [0.0, 0.5, 1.0, 1.25, 1.5, 2.0]
    rows: dict[str, dict[float, list[float]]] = {}

    def run(group: str, noisy: np.ndarray, clean: np.ndarray, peak: float | None) -> None:
        rep = estimate_noise(noisy)
        if rep.kind != "poisson":
            print(f"  {group}: estimated {rep.kind}, skipped", file=sys.stderr)
            return
        for f in floors:
            out = denoise(noisy, sigma=np.maximum(rep.sigma_map, np.float32(f * rep.gain)),
                          model=model, output_dtype=np.float32).astype(np.float64)
            if peak is None:  # affine-fitted, data range of the clean image
                out, rng = affine_fit(out, clean), clean.max() - clean.min()
            else:
                rng = peak
            rows.setdefault(group, {}).setdefault(f, []).append(
                10 * np.log10(rng**2 / np.mean((out - clean) ** 2)))

    for pair, noisy, clean in load_pairs(DATA):
        run(pair, noisy, clean.astype(np.float64), None)
    fmd = io.imread(DATA / "microscopy_pairs" / "fmd_r1_clean.png").astype(np.float64)
    for label, shape in (("one height", None), ("gamma heights, shape 4", 4.0)):
        run(f"counts on fmd_r1's clean image, {label}", counts_on(fmd, 3.56, 3.0, shape, 0),
            fmd, None)
    for f in sorted((DATA / "set12").glob("*.png"))[:8]:
        im = io.imread(f).astype(np.float64)
        run("Set12 01-08, Poisson gain 4", add_noise(im, "poisson", gain=4.0, seed=1), im, 255.0)
    for i in range(4):
        s = synthetic_fluorescence((256, 256), kind="mixed", seed=i).astype(np.float64)
        for label, photons in (("as generated", 100 * s),
                               ("background at 0", 100 * np.clip(s - np.percentile(s, 20), 0, None))):
            noisy = add_noise(3 * photons, "poisson_gaussian", gain=3.0, read_noise=0.5,
                              offset=10.0, seed=i)
            run(f"fluorescence, gain 3, read 0.5, {label}", noisy, 10 + 3 * photons,
                float(3 * photons.max()))
    print("\n".join(mean_table(rows, floors, [f"floor {f:g}·gain" for f in floors])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
