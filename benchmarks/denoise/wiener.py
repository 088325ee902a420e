"""Section ``wiener``: how much of the non-local (collaborative Wiener) estimate to blend in.

On Set12 and the texture section's gratings at the known σ (``--quick``: σ 25; full: σ 15 and
25), with the quality preset's 8-fold ensemble: fixed weights ``w`` of the Wiener estimate
guided by the network alone, ``wiener="auto"`` (SURE's weights, the thresholding in the pilot)
and the best fixed weight per image (an oracle: it reads the clean image). Then the real pairs,
blind, affine-fitted PSNR, with auto's weights ``w`` (Wiener), ``b`` (thresholding in the
pilot) and ``c`` (the 4 × 4-patch share). No target. Formerly ``diag_wiener_weight.py``.
"""

from __future__ import annotations

import numpy as np

from .common import (
    Config,
    Outcome,
    Skip,
    affine_fit,
    gratings,
    load_pairs,
    load_set12,
    log,
    psnr,
    seed_for,
)
from .ours import ours

TITLE = "The non-local step's weight (`wiener=`)"
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
ENSEMBLE = 8  # the quality preset's


def _blends(noisy: np.ndarray, cfg: Config, **kw):
    """The network alone, the Wiener step at weight 1 and ``"auto"`` (with its weights)."""
    net = ours(noisy, cfg, ensemble=ENSEMBLE, wiener=0.0, **kw)[0].image.astype(np.float64)
    cw = ours(noisy, cfg, ensemble=ENSEMBLE, wiener=1.0, **kw)[0].image.astype(np.float64)
    auto = ours(noisy, cfg, ensemble=ENSEMBLE, wiener="auto", **kw)[0]
    weights = (auto.wiener_weights[0], auto.threshold_weights[0], auto.fine_weights[0])
    return net, cw, auto.image, weights


def _known_sigma(cfg: Config, sigma: int) -> list[str]:
    from napari_diffdenoise import add_noise

    images = [("Set12", n, img.astype(np.float64)) for n, img in load_set12(cfg)]
    images += [("gratings", n, g) for n, g in gratings(cfg.crop or 256)]
    cols = [f"w = {a:g}" for a in WEIGHTS] + ['`"auto"`', "best w per image"]
    means: dict[str, dict[str, list[float]]] = {}
    per_image = []
    for group, name, clean in images:
        key = ("gaussian", name, sigma) if group == "Set12" else ("textures", name)
        noisy = add_noise(clean, "gaussian", sigma=sigma, seed=seed_for(*key))
        log(f"wiener σ={sigma} {name}")
        net, cw, auto, (w, b, c) = _blends(noisy.astype(np.float32), cfg, sigma=float(sigma))

        def score(est, clean=clean):
            return psnr(clean, np.clip(est, 0, 255), 255.0)

        best = max(np.linspace(0, 1, 21), key=lambda a: score((1 - a) * net + a * cw))
        vals = [score((1 - a) * net + a * cw) for a in WEIGHTS]
        vals += [score(auto), score((1 - best) * net + best * cw)]
        for col, v in zip(cols, vals, strict=True):
            means.setdefault(group, {}).setdefault(col, []).append(v)
        per_image.append(
            f"| {group} | {name} | "
            + " | ".join(f"{v:.2f}" for v in vals)
            + f" | {w:.2f} | {b:.2f} | {c:.2f} | {best:.2f} |"
        )
    lines = [
        f"Known σ = {sigma}, ×{ENSEMBLE} ensemble; mean PSNR dB:",
        "",
        "| images | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for group, by in means.items():
        lines.append(
            f"| {group} ({len(by[cols[0]])}) | "
            + " | ".join(f"{np.mean(by[c]):.3f}" for c in cols)
            + " |"
        )
    if cfg.per_image:
        lines += [
            "",
            f"Per image, σ = {sigma} (auto's weights w, b, c; the oracle's w):",
            "",
            "| set | image | " + " | ".join(cols) + " | w | b | c | best w |",
            "|---" * (len(cols) + 6) + "|",
            *per_image,
        ]
    return lines


def _pairs(cfg: Config) -> list[str]:
    cols = [f"w = {a:g}" for a in WEIGHTS]
    lines = [
        f"Real pairs, blind, ×{ENSEMBLE} ensemble, affine-fitted PSNR dB:",
        "",
        "| pair | " + " | ".join(cols) + ' | `"auto"` (w, b, c) |',
        "|---" * (len(cols) + 2) + "|",
    ]
    for name, noisy_u8, clean_u8 in load_pairs(cfg.data, cfg.pairs_crop):
        clean = clean_u8.astype(np.float64)
        rng = float(clean.max() - clean.min())
        log(f"wiener pairs {name}")
        net, cw, auto, (w, b, c) = _blends(noisy_u8, cfg)

        def score(est, clean=clean, rng=rng):
            return psnr(clean, affine_fit(est, clean), rng)

        vals = [score((1 - a) * net + a * cw) for a in WEIGHTS]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{v:.2f}" for v in vals)
            + f" | {score(auto):.2f} ({w:.2f}, {b:.2f}, {c:.2f}) |"
        )
    return lines


def run(cfg: Config) -> Outcome:
    lines = [
        "Fixed weights `w` blend the network's estimate with the Wiener estimate guided by "
        "it alone; `\"auto\"` is the quality preset's non-local step (SURE's weights, the "
        'collaborative thresholding in the pilot); "best w per image" is the best fixed '
        "weight per image on a 0.05 grid (an oracle: it reads the clean image). Noise seeds "
        "as in the gaussian and textures sections; outputs clipped to 0..255.",
        "",
    ]
    for sigma in cfg.wiener_sigmas:
        lines += [*_known_sigma(cfg, sigma), ""]
    try:
        lines += _pairs(cfg)
    except Skip as exc:
        lines.append(f"_Real pairs skipped: {exc}_")
    return Outcome(lines)
