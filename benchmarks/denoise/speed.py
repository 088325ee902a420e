"""Section ``speed``: wall time and megapixels/s of every method on one 512² image (Set12 08,
σ 25). Target: BM3D time / ours default (blind) ≥ 10×."""

from __future__ import annotations

from collections.abc import Callable

import baselines as B
import numpy as np
from targets import Target

from .common import Config, Outcome, Skip, centre_crop, log, seed_for, timed
from .ours import QUALITY_ROW

TITLE = "Speed"


def _median_time(fn: Callable, repeats: int, warmup: bool) -> float:
    if warmup:
        fn()
    return float(np.median([timed(fn)[1] for _ in range(repeats)]))


def run(cfg: Config) -> Outcome:
    import torch
    from skimage import io

    from napari_diffdenoise import add_noise, denoise

    path = cfg.data / "set12" / "08.png"
    if not path.is_file():
        raise Skip(f"{path} not found")
    img = centre_crop(io.imread(path), cfg.speed_size).astype(np.float64)
    noisy = add_noise(img, "gaussian", sigma=25, seed=seed_for("gaussian", "08", 25))
    x32 = noisy.astype(np.float32)
    mp = img.size / 1e6
    rows: list[tuple[str, float, str]] = []

    def run(label, fn, repeats, warmup, note=""):
        log(f"speed {label}")
        t = _median_time(fn, repeats, warmup)
        rows.append((label, t, note))
        return t

    r = cfg.repeats
    t_def = run(
        "ours default, blind (incl. noise estimation)",
        lambda: denoise(x32, model=cfg.model, device="cpu"),
        r,
        True,
        f"median of {r} after a warm-up",
    )
    t_known = run(
        "ours default, known σ",
        lambda: denoise(x32, sigma=25.0, model=cfg.model, device="cpu"),
        r,
        False,
        f"median of {r}",
    )
    run(
        "ours fast, blind",
        lambda: denoise(x32, model="fast", device="cpu"),
        r,
        True,
        f"median of {r} after a warm-up",
    )
    from napari_diffdenoise import estimate_noise

    run(
        "noise estimation only (`estimate_noise`)",
        lambda: estimate_noise(x32),
        r,
        False,
        f"median of {r}",
    )
    rq = 1 if cfg.quick else r
    run(
        "ours ×8 ensemble, no non-local step, blind",
        lambda: denoise(x32, model=cfg.model, ensemble=8, wiener=0.0, device="cpu"),
        rq,
        False,
        f"median of {rq}",
    )
    run(
        f"ours quality ({QUALITY_ROW[0].split(', ', 1)[1].removesuffix(' (quality)')}), blind",
        lambda: denoise(x32, model=cfg.model, device="cpu", **QUALITY_ROW[1]),
        rq,
        False,
        f"median of {rq}",
    )
    from napari_diffdenoise.engine.collaborative import (
        collaborative_threshold,
        collaborative_wiener,
    )

    pilot = denoise(x32, sigma=25.0, model=cfg.model, device="cpu")
    run(
        "collaborative Wiener step alone (`engine.collaborative`)",
        lambda: collaborative_wiener(x32, pilot, 25.0),
        r,
        False,
        f"median of {r}",
    )
    run(
        "collaborative hard thresholding alone (`engine.collaborative`)",
        lambda: collaborative_threshold(x32, 25.0),
        r,
        False,
        f"median of {r}",
    )
    if torch.cuda.is_available():
        run(
            "ours default, blind, CUDA",
            lambda: denoise(x32, model=cfg.model, device="cuda"),
            r,
            True,
            f"median of {r} after a warm-up",
        )
        run(
            "ours quality, blind, CUDA",
            lambda: denoise(x32, model=cfg.model, device="cuda", **QUALITY_ROW[1]),
            r,
            True,
            f"median of {r} after a warm-up",
        )
    t_bm3d = run(
        "BM3D (true σ)",
        lambda: B.bm3d_denoise(noisy, 25.0),
        cfg.bm3d_repeats,
        False,
        f"median of {cfg.bm3d_repeats}",
    )
    run("NLM (true σ)", lambda: B.nlm(noisy, 25.0), r, False, f"median of {r}")
    run("TV (true σ)", lambda: B.tv(noisy, 25.0), r, False, f"median of {r}")
    run("wavelet BayesShrink (true σ)", lambda: B.wavelet(noisy, 25.0), r, False, f"median of {r}")

    lines = [
        f"Image: Set12 08.png{' (centre crop)' if cfg.speed_size < 512 else ''}, "
        f"{img.shape[0]}×{img.shape[1]} ({mp:.3f} MP), Gaussian σ = 25; device cpu, "
        f"torch threads {torch.get_num_threads()}; wall time with `time.perf_counter`.",
        "",
        "| method | wall s | MP/s | BM3D time / this | timing |",
        "|---|---|---|---|---|",
    ]
    for label, t, note in rows:
        lines.append(f"| {label} | {t:.2f} | {mp / t:.3f} | {t_bm3d / t:.2f}× | {note} |")
    ratio = t_bm3d / t_def
    lines += [
        "",
        f"BM3D time / ours default (blind) time = **{ratio:.2f}×** "
        f"(target ≥ 10×: {'✅' if ratio >= 10 else '❌'}); "
        f"with known σ: {t_bm3d / t_known:.2f}×.",
    ]
    if not torch.cuda.is_available():
        lines.append("CUDA not available: no GPU timing.")
    return Outcome(
        lines, [Target("speed: BM3D time / ours default (blind)", ratio, 10.0, unit="×")]
    )
