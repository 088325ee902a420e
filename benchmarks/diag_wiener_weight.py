"""How much of the non-local (collaborative Wiener) estimate to blend in: fixed weights (the
Wiener filter guided by the network's estimate), ``wiener="auto"`` (guided by the network's
estimate blended with the hard-thresholding one; both weights by SURE), and the best fixed
weight per image (an oracle that reads the clean image), on Set12 and on the gratings of the
benchmark's texture section. ``SURE's a`` and ``SURE's b`` are auto's Wiener and thresholding
weights, ``c`` the share of its 4 × 4-patch Wiener estimate.

    python benchmarks/diag_wiener_weight.py [sigma] [ensemble] [model]
    python benchmarks/diag_wiener_weight.py pairs [ensemble] [model]

Defaults: σ 25, the quality preset's 8-fold ensemble, the bundled model; the noise is the
benchmark's (same seeds), σ is given (known), outputs are clipped to 0..255. About 4 minutes
on 2 CPU cores. Prints per-image rows and a mean table. ``pairs``: the real microscopy pairs
instead, blind (the noise estimated), the benchmark's affine-fitted PSNR (about 2 minutes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_denoise as bd  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def images(data: Path, sigma: float):
    from skimage import io

    from napari_diffdenoise import add_noise

    for n in bd.SET12:
        img = io.imread(data / "set12" / f"{n}.png").astype(np.float64)
        img = img[..., 0] if img.ndim == 3 else img
        yield "Set12", n, img, add_noise(img, "gaussian", sigma=sigma,
                                         seed=bd.seed_for("gaussian", n, int(sigma)))
    for name, clean in bd.gratings(256):
        yield "gratings", name, clean, add_noise(clean, "gaussian", sigma=sigma,
                                                 seed=bd.seed_for("textures", name))


def pairs(argv: list[str]) -> int:
    from napari_diffdenoise import denoise

    ensemble = int(argv[0]) if argv else 8
    model = argv[1] if len(argv) > 1 else "default"
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    print(f"real pairs, blind, ×{ensemble} ensemble, model {model}, affine-fitted PSNR")
    print("| pair | " + " | ".join(f"a={a:g}" for a in WEIGHTS) + " | SURE (auto) | SURE's a | SURE's b | c |")
    print("|---" * (len(WEIGHTS) + 5) + "|")
    for name, noisy_u8, clean_u8 in bd.load_pairs(data):
        clean = clean_u8.astype(np.float64)
        rng = float(clean.max() - clean.min())
        kw = dict(model=model, ensemble=ensemble, output_dtype=np.float32)
        net = denoise(noisy_u8, wiener=0.0, **kw).astype(np.float64)
        cw = denoise(noisy_u8, wiener=1.0, **kw).astype(np.float64)
        auto = denoise(noisy_u8, wiener="auto", return_details=True, **kw)

        def score(est):
            return bd.psnr(clean, bd.affine_fit(est, clean), rng)

        vals = [score((1 - a) * net + a * cw) for a in WEIGHTS] + [score(auto.image)]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals)
              + f" | {auto.wiener_weights[0]:.2f} | {auto.threshold_weights[0]:.2f}"
              + f" | {auto.fine_weights[0]:.2f} |", flush=True)
    return 0


def main(argv: list[str]) -> int:
    from napari_diffdenoise import denoise

    if argv and argv[0] == "pairs":
        return pairs(argv[1:])
    sigma = float(argv[0]) if argv else 25.0
    ensemble = int(argv[1]) if len(argv) > 1 else 8
    model = argv[2] if len(argv) > 2 else "default"
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    cols = [f"a={a:g}" for a in WEIGHTS] + ["SURE (auto)", "best a per image"]
    rows: dict[str, dict] = {}
    print(f"σ = {sigma:g}, ×{ensemble} ensemble, model {model}")
    print("| set | image | " + " | ".join(cols) + " | SURE's a | SURE's b | c | best a |")
    print("|---" * (len(cols) + 6) + "|")
    for group, name, clean, noisy in images(data, sigma):
        kw = dict(sigma=sigma, model=model, ensemble=ensemble, output_dtype=np.float32)
        x = noisy.astype(np.float32)
        net = denoise(x, wiener=0.0, **kw).astype(np.float64)
        cw = denoise(x, wiener=1.0, **kw).astype(np.float64)
        auto = denoise(x, wiener="auto", return_details=True, **kw)

        def score(est):
            return bd.psnr(clean, np.clip(est, 0, 255), 255.0)

        fixed = [score((1 - a) * net + a * cw) for a in WEIGHTS]
        grid = np.linspace(0, 1, 21)
        best = max(grid, key=lambda a: score((1 - a) * net + a * cw))
        vals = fixed + [score(auto.image), score((1 - best) * net + best * cw)]
        for c, v in zip(cols, vals):
            rows.setdefault(group, {}).setdefault(c, []).append(v)
        print(f"| {group} | {name} | " + " | ".join(f"{v:.2f}" for v in vals)
              + f" | {auto.wiener_weights[0]:.2f} | {auto.threshold_weights[0]:.2f}"
              + f" | {auto.fine_weights[0]:.2f} | {best:.2f} |", flush=True)
    print()
    print("| set | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for group, r in rows.items():
        print(f"| {group} (mean of {len(r[cols[0]])}) | "
              + " | ".join(f"{np.mean(r[c]):.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
