"""Section ``steps``: PSNR and time against the number of steps for each sampler (Set12,
known σ = 25), and the calibration of the stochastic sampler's spread. Target: one step of
every sampler equals ``direct`` (|ΔPSNR| ≤ 0.01 dB)."""

from __future__ import annotations

import numpy as np
from targets import Target

from .common import (
    SET12,
    Config,
    Outcome,
    describe_images,
    load_set12,
    log,
    psnr,
    seed_for,
    ssim,
)
from .ours import ours

TITLE = "Samplers and steps (σ = 25, known σ)"


def run(cfg: Config) -> Outcome:
    from napari_diffdenoise import add_noise

    names = SET12[: cfg.steps_images]
    images = load_set12(cfg, names)
    sigma = 25.0
    configs: list[tuple[str, str, float, int, int]] = [("direct", "direct", 0.0, 1, 1)]
    for sampler in ("origin", "cold", "indi"):
        for k in cfg.steps_ks:
            configs.append(
                (f"{sampler}" + (" η=0" if sampler == "indi" else ""), sampler, 0.0, k, 1)
            )
    configs.append(("indi η=0.5, 1 sample", "indi", 0.5, 4, 1))
    configs.append(("indi η=0.5, mean of 4", "indi", 0.5, 4, 4))
    configs.append(("indi η=1, mean of 4", "indi", 1.0, 4, 4))
    rows, calibration = [], []
    mean_psnr: dict[tuple[str, int], float] = {}
    for label, sampler, eta, k, samples in configs:
        ps, ss, ts = [], [], []
        err_all, std_all = [], []
        for name, img in images:
            clean = img.astype(np.float64)
            noisy = add_noise(clean, "gaussian", sigma=sigma, seed=seed_for("gaussian", name, 25))
            res, sec = ours(
                noisy, cfg, sigma=sigma, sampler=sampler, steps=k, eta=eta, samples=samples, seed=0
            )
            e = np.clip(res.image, 0, 255)
            ps.append(psnr(clean, e, 255))
            ss.append(ssim(clean, e, 255))
            ts.append(sec)
            if res.std is not None:
                err_all.append(np.abs(res.image.astype(np.float64) - clean).ravel())
                std_all.append(res.std.astype(np.float64).ravel())
        mean_psnr[label, k] = float(np.mean(ps))
        log(f"steps {label} K={k}: {np.mean(ps):.2f} dB")
        if std_all:
            err, std = np.concatenate(err_all), np.concatenate(std_all)
            # per-pixel correlation of the spread with the actual error, and whether its size
            # matches the error (mean std against the RMS error: 1 = calibrated)
            r = float(np.corrcoef(std, err)[0, 1])
            rmse = float(np.sqrt(np.mean(err**2)))
            calibration.append(
                f"| {label} | {r:.2f} | {std.mean():.2f} | {rmse:.2f} | {std.mean() / rmse:.2f} |"
            )
        rows.append(
            f"| {label} | {k} | {samples} | {k * samples} | {np.mean(ps):.2f} | "
            f"{np.mean(ss):.4f} | {np.mean(ts):.2f} |"
        )
    # --check: one step of every sampler is one network call from τ to 0, i.e. `direct`
    direct = mean_psnr["direct", 1]
    targets = [
        Target(f"steps: |{label} K=1 − direct|", abs(p - direct), 0.01, op="<=", unit="dB")
        for (label, k), p in mean_psnr.items()
        if k == 1 and label != "direct"
    ]
    lines = [
        f"Images: Set12 {describe_images(images)}, Gaussian σ = 25 (same noise as the gaussian "
        "section), known σ, seed 0 for stochastic sampling. NFE = network evaluations.",
        "",
        "| sampler | K steps | samples | NFE | PSNR | SSIM | s / image |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "K = 1 of origin / cold / indi is one network call from τ to 0, i.e. the same as "
        "direct (a consistency check).",
        *(
            [
                "",
                "Uncertainty of the stochastic runs (all pixels of these images, grey levels): "
                "Pearson r between the per-pixel spread of the samples (`return_std`) and the "
                "actual error of their mean, and the mean spread against the RMS error.",
                "",
                "| sampler | r(std, abs err) | mean std | RMS error | mean std / RMS error |",
                "|---|---|---|---|---|",
                *calibration,
            ]
            if calibration
            else []
        ),
    ]
    return Outcome(lines, targets)
