"""Section ``pairs``: the real noisy/clean microscopy pairs, intensity-affine-fitted PSNR (as
CARE does). Ours blind against VST+BM3D (estimated and oracle parameters), BM3D, NLM, TV and
wavelet. No target."""

from __future__ import annotations

import baselines as B
import numpy as np

from .cache import cached_baseline
from .common import Config, Outcome, Scores, load_pairs, log
from .ours import ENSEMBLE_ROW, QUALITY_ROW, ours

TITLE = "Real microscopy pairs (affine-fitted PSNR)"


def run(cfg: Config) -> Outcome:
    from skimage.restoration import estimate_sigma

    from napari_diffdenoise import estimate_noise

    pairs = load_pairs(cfg.data, cfg.pairs_crop)
    sc = Scores()
    notes = []
    for name, noisy_u8, clean_u8 in pairs:
        clean = clean_u8.astype(np.float64)
        noisy = noisy_u8.astype(np.float64)
        rng = float(clean.max() - clean.min())
        log(f"pairs {name}")

        score = sc.scorer(name, name, clean, rng, affine=True)
        score("noisy input", noisy)
        res, sec = ours(noisy_u8, cfg)
        score("ours blind (default)", res.image, sec)
        for label, kw in (ENSEMBLE_ROW, QUALITY_ROW):
            other, sec = ours(noisy_u8, cfg, **kw)
            score(label, other.image, sec)
        rep = res.report if res.report is not None else estimate_noise(noisy_u8)
        sig = float(estimate_sigma(noisy))
        note = (
            f"{name}: ours {rep.kind}, σ̂ = {rep.sigma:.3g}, gain = {rep.gain:.4g}, "
            f"baseline variance = {rep.baseline_variance:.4g}"
        )
        if rep.gain > 0:
            est, sec = cached_baseline(B.vst_bm3d, noisy, rep.gain, rep.baseline_variance)
            score("VST+BM3D (gain/baseline from estimate_noise)", est, sec)
        else:
            note += " (no VST: gain ≤ 0)"
        gain, base = B.oracle_noise_fit(noisy, clean, saturated=255.0)
        note += f"; oracle fit gain = {gain:.4g}, baseline = {base:.4g}; estimate_sigma {sig:.3g}"
        notes.append(note)
        if gain > 0:
            est, sec = cached_baseline(B.vst_bm3d, noisy, gain, base)
            score("VST+BM3D (oracle gain/baseline, fitted on clean)", est, sec)
        for label, fn in (
            ("BM3D (σ̂)", B.bm3d_denoise),
            ("NLM (σ̂)", B.nlm),
            ("TV (σ̂)", B.tv),
            ("wavelet BayesShrink (σ̂)", B.wavelet),
        ):
            est, sec = cached_baseline(fn, noisy, sig)
            score(label, est, sec)

    names = [n for n, _, _ in pairs]
    mean_col = "mean"
    sc.add_mean_column(names, mean_col)
    shape = pairs[0][1].shape
    lines = [
        f"Pairs: {', '.join(names)} ({shape[0]}×{shape[1]}"
        + (", centre crops" if cfg.pairs_crop else "")
        + ", uint8; fmd_bpae_r: channel 0). "
        "Every output (and the noisy input) is affine-fitted to the clean image by least "
        "squares before PSNR/SSIM (data range = clean max − min), as in CARE.",
        "VST+BM3D gets gain and baseline variance from `estimate_noise(noisy)` (the report of "
        "our blind run; no VST where it finds no signal-dependent part), and, as a reference, "
        "from a fit against the clean image (oracle: clean mapped affinely onto the noisy "
        "scale, residual variance vs mean in 32 quantile bins, bins near 255 left out). "
        "BM3D/NLM/TV/wavelet get σ̂ = `skimage.restoration.estimate_sigma(noisy)` (wavelet "
        "MAD, independent of our estimator). MP/s exclude the estimates' time.",
        "",
        *sc.table(names + [mean_col]),
        "",
        "Noise estimates: " + "; ".join(notes) + ".",
    ]
    return Outcome(lines)
