"""Section ``textures``: fine periodic structure at Gaussian σ 25: plain sinusoidal gratings
(periods 3.5-12 px) and the striped 256² crop of Set12's Barbara. Ours blind against BM3D and
NLM. No target (docs/denoising.md, "Where it is weaker")."""

from __future__ import annotations

from dataclasses import replace

import baselines as B
import numpy as np

from .cache import cached_baseline
from .common import (
    GRATING_PERIODS,
    Config,
    Outcome,
    Scores,
    Skip,
    gratings,
    load_set12,
    log,
    seed_for,
)
from .ours import ENSEMBLE_ROW, QUALITY_ROW, ours

TITLE = "Fine periodic structure (σ = 25)"


def run(cfg: Config) -> Outcome:
    from napari_diffdenoise import add_noise

    sigma = 25.0
    size = cfg.crop or 256
    images = gratings(size)
    try:
        barbara = [img for _, img in load_set12(replace(cfg, crop=None), ["09"])]
    except Skip:
        barbara = []
    if barbara and min(barbara[0].shape) >= 2 * size:
        # the bottom-right quarter: the striped trousers and scarf (stripes of 3-5 px)
        b = barbara[0].astype(np.float64)
        images.append(("Barbara 256² crop (stripes)", b[256 : 256 + size, 256 : 256 + size]))
    sc = Scores()
    col = "σ=25"
    for name, clean in images:
        noisy = add_noise(clean, "gaussian", sigma=sigma, seed=seed_for("textures", name))
        log(f"textures {name}")
        score = sc.scorer(col, name, clean, 255.0, clip=(0.0, 255.0))
        score("noisy input", noisy)
        res, sec = ours(noisy, cfg)
        score("ours blind (default)", res.image, sec)
        res, sec = ours(noisy, cfg, sigma=sigma)  # the network without the noise estimate
        score("ours known σ (default)", res.image, sec)
        for label, kw in (ENSEMBLE_ROW, QUALITY_ROW):
            res, sec = ours(noisy, cfg, **kw)
            score(label, res.image, sec)
        for label, fn in (("BM3D (true σ)", B.bm3d_denoise), ("NLM (true σ)", B.nlm)):
            est, sec = cached_baseline(fn, noisy, sigma)
            score(label, est, sec)
    lines = [
        f"Images: {len(GRATING_PERIODS) * 2} sinusoidal gratings {size}² (periods "
        f"{', '.join(f'{p:g}' for p in GRATING_PERIODS)} px at 0° and 34°; 0..255, "
        "amplitude 60)"
        + (" and Barbara's striped 256² crop" if barbara else "")
        + f", Gaussian σ = {sigma:g}, seeds `crc32('textures/<image>')`; outputs clipped "
        "to 0..255.",
        "",
        *sc.table([col]),
        "",
    ]
    lines += sc.per_image_tables([col])
    return Outcome(lines)
