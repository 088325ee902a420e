#!/usr/bin/env python
"""Benchmark the napari-diffdenoise denoiser against classical baselines run in the same process.

Sections (``--sections``, comma-separated):

- ``gaussian``: Set12, additive Gaussian σ 15/25/50 on float images in 0..255 (noisy data not
  clipped); ours blind / ×8 self-ensemble blind / known σ vs BM3D (true σ), NLM, TV, wavelet.
- ``poisson``: Poisson-Gaussian noise on synthetic fluorescence (camera-like: gain 1, read
  noise 2, offset 100); ours blind vs VST+BM3D (true parameters), BM3D, NLM, TV, wavelet.
- ``pairs``: real noisy/clean microscopy pairs, intensity-affine-fitted PSNR (as CARE does).
- ``impulse``: salt-and-pepper 10/20/50 % on Set12 uint8; ours blind vs adaptive/3×3 median.
- ``variant``: σ ramp 5→50 along the columns on Set12; estimated time map vs the true σ map vs
  the best single global σ (oracle sweep) vs BM3D at the map's RMS σ.
- ``textures``: fine periodic structure at Gaussian σ 25: plain sinusoidal gratings (periods
  3.5-12 px) and the striped 256² crop of Set12's Barbara; ours blind vs BM3D and NLM.
- ``steps``: PSNR and time vs number of steps for each sampler (known σ = 25).
- ``speed``: wall time and megapixels/s on one 512² image (σ 25).

Run ``python benchmarks/bench_denoise.py --quick`` for a development run (a few minutes), and
without ``--quick`` for the full benchmark (tens of minutes on a 2-core CPU). Progress goes to
stderr, the markdown tables to stdout and (atomically, after every section) to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import baselines as B  # noqa: E402  (benchmark-only helpers next to this file)

SECTIONS = ("gaussian", "poisson", "pairs", "impulse", "variant", "textures", "steps", "speed")
SET12 = [f"{i:02d}" for i in range(1, 13)]

#: Published Set12 PSNR (dB) at σ = 15 / 25 / 50 (docs/method.md, "What better means here").
ANCHORS = {
    "BM3D (published)": (32.37, 29.97, 26.72),
    "DnCNN (published)": (32.86, 30.44, 27.18),
    "FFDNet (published)": (32.75, 30.43, 27.32),
    "DRUNet (published)": (33.25, 30.94, 27.90),
}
ANCHOR_SIGMAS = (15, 25, 50)
TARGET_GAIN_DB = 0.3  # the Gaussian target: BM3D + 0.3 dB
IMPULSE_TARGET_DB = 2.0  # the impulse target: adaptive median + 2 dB

_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def seed_for(*keys) -> int:
    """A fixed seed per (section, image, level): the same noise in every run and every mode."""
    return zlib.crc32("/".join(map(str, keys)).encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------- configuration
@dataclass
class Config:
    quick: bool
    model: str
    data: Path
    per_image: bool
    crop: int | None  # centre crop of Set12 / size of synthetic images (None: full size)
    pairs_crop: int | None
    n_images: int
    sigmas: tuple[int, ...]
    poisson_peaks: tuple[float, ...]
    impulse_amounts: tuple[float, ...]
    variant_sweep: tuple[float, ...]
    steps_images: int
    steps_ks: tuple[int, ...]
    speed_size: int
    repeats: int
    bm3d_repeats: int

    @classmethod
    def make(cls, args) -> Config:
        q = args.quick
        crop = args.crop if args.crop is not None else (128 if q else None)
        return cls(
            quick=q, model=args.model, data=args.data, per_image=args.per_image,
            crop=crop, pairs_crop=crop,
            n_images=3 if q else 12,
            sigmas=(25,) if q else (15, 25, 50),
            poisson_peaks=(50.0,) if q else (50.0, 200.0),
            impulse_amounts=(0.2, 0.5) if q else (0.1, 0.2, 0.5),
            variant_sweep=(15, 25, 35) if q else (10, 15, 20, 25, 30, 35, 40),
            steps_images=1 if q else 4,
            steps_ks=(1, 2, 4) if q else (1, 2, 4, 8),
            speed_size=128 if q else 512,
            repeats=1 if q else 3,
            bm3d_repeats=1 if q else 2,
        )


# --------------------------------------------------------------------------- metrics
def psnr(ref: np.ndarray, est: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((np.asarray(ref, np.float64) - np.asarray(est, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim(ref: np.ndarray, est: np.ndarray, data_range: float) -> float:
    """SSIM with the settings of Wang et al. 2004 (11×11 Gaussian window, σ 1.5)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(ref, np.float64), np.asarray(est, np.float64),
                                       data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def affine_fit(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a·est + b`` with (a, b) the least-squares fit to ``ref`` (CARE's affine-fitted PSNR)."""
    x = np.asarray(est, np.float64).ravel()
    A = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.asarray(ref, np.float64).ravel(), rcond=None)
    return a * np.asarray(est, np.float64) + b


def mean_table(rows: dict[str, dict], columns: list, headers: list[str]) -> list[str]:
    """Markdown rows of the diagnostics: per group (``rows[group][column]``, a list of PSNRs)
    the mean PSNR in each column, under ``headers``."""
    lines = ["| images (mean PSNR, dB) | " + " | ".join(headers) + " |",
             "|---" * (len(headers) + 1) + "|"]
    for group, by in rows.items():
        lines.append(f"| {group} (n={len(by[columns[0]])}) | "
                     + " | ".join(f"{np.mean(by[c]):.2f}" for c in columns) + " |")
    return lines


def timed(fn: Callable, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


#: where deterministic baseline outputs are cached (see ``baseline``); ``--no-cache`` disables it
CACHE_DIR: Path | None = Path(__file__).resolve().parent / ".cache"


def cached_baseline(fn: Callable, noisy: np.ndarray, *args):
    """``timed(fn, noisy, *args)`` for a deterministic classical baseline, cached on disk.

    The key is the function, its arguments and the exact bytes of the noisy input, so a cached
    output is the output this run would compute (same image, same noise realisation). The
    quality sections reuse it (BM3D on all of Set12 takes most of an hour on 2 cores); the
    speed section never does: its timings are always measured in the run that reports them.
    The time recorded is the one measured when the output was computed.
    """
    if CACHE_DIR is None:
        return timed(fn, noisy, *args)
    import hashlib

    h = hashlib.sha256()
    h.update(f"{fn.__module__}.{fn.__qualname__}{args!r}{noisy.dtype}{noisy.shape}".encode())
    h.update(np.ascontiguousarray(noisy).tobytes())
    path = CACHE_DIR / f"{h.hexdigest()[:32]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as d:
            return d["est"], float(d["seconds"])
    est, sec = timed(fn, noisy, *args)
    CACHE_DIR.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, est=np.asarray(est), seconds=np.float64(sec))
    os.replace(tmp, path)
    return est, sec


@dataclass
class Entry:
    images: list[str] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0
    pixels: int = 0


class Scores:
    """PSNR/SSIM (and time) per method × column (a noise level), per image."""

    def __init__(self) -> None:
        self._d: dict[str, dict[str, Entry]] = {}

    def add(self, method: str, column: str, image: str, p: float, s: float,
            seconds: float | None = None, pixels: int = 0) -> None:
        e = self._d.setdefault(method, {}).setdefault(column, Entry())
        e.images.append(image)
        e.psnr.append(p)
        e.ssim.append(s)
        if seconds is not None:
            e.seconds += seconds
            e.pixels += pixels

    def scorer(self, column: str, image: str, clean: np.ndarray, data_range: float, *,
               clip: tuple[float, float] | None = None, affine: bool = False):
        """``score(method, estimate, seconds=None)`` for one image and column: clips the estimate
        to ``clip`` or affine-fits it to ``clean`` (CARE), then records PSNR/SSIM and the time."""
        clean = np.asarray(clean, np.float64)

        def score(method: str, est: np.ndarray, seconds: float | None = None) -> None:
            e = np.asarray(est, np.float64)
            if affine:
                e = affine_fit(e, clean)
            elif clip is not None:
                e = np.clip(e, *clip)
            self.add(method, column, image, psnr(clean, e, data_range),
                     ssim(clean, e, data_range), seconds, clean.size)

        return score

    def get(self, method: str, column: str) -> Entry | None:
        return self._d.get(method, {}).get(column)

    def mean_psnr(self, method: str, column: str) -> float:
        e = self.get(method, column)
        return float(np.mean(e.psnr)) if e and e.psnr else float("nan")

    def mps(self, method: str) -> float:
        ents = self._d.get(method, {}).values()
        sec = sum(e.seconds for e in ents)
        px = sum(e.pixels for e in ents)
        return px / sec / 1e6 if sec > 0 and px else float("nan")

    def add_mean_column(self, columns: Sequence[str], name: str = "mean") -> None:
        """A column with the mean over ``columns`` of the per-column means, for the methods that
        have every column (others get no value: a mean over a different set would mislead)."""
        for cols in self._d.values():
            ents = [cols.get(c) for c in columns]
            if all(ents):
                cols[name] = Entry(images=[name],
                                   psnr=[float(np.mean([np.mean(e.psnr) for e in ents]))],
                                   ssim=[float(np.mean([np.mean(e.ssim) for e in ents]))])

    @property
    def methods(self) -> list[str]:
        return list(self._d)

    def table(self, columns: Sequence[str], speed: bool = True) -> list[str]:
        head = "| method | " + " | ".join(f"{c} PSNR / SSIM" for c in columns)
        head += " | MP/s |" if speed else " |"
        lines = [head, "|---" * (len(columns) + 1 + speed) + "|"]
        for m in self.methods:
            cells = []
            for c in columns:
                e = self.get(m, c)
                cells.append(f"{np.mean(e.psnr):.2f} / {np.mean(e.ssim):.4f}" if e else "—")
            row = f"| {m} | " + " | ".join(cells)
            if speed:
                v = self.mps(m)
                row += f" | {v:.3f}" if np.isfinite(v) else " | —"
            lines.append(row + " |")
        return lines

    def per_image_tables(self, columns: Sequence[str]) -> list[str]:
        lines: list[str] = []
        for c in columns:
            images: list[str] = []
            for m in self.methods:
                e = self.get(m, c)
                for name in (e.images if e else []):
                    if name not in images:
                        images.append(name)
            lines += ["", f"Per image, {c} (PSNR dB):", "",
                      "| method | " + " | ".join(images) + " |",
                      "|---" * (len(images) + 1) + "|"]
            for m in self.methods:
                e = self.get(m, c)
                vals = dict(zip(e.images, e.psnr, strict=True)) if e else {}
                lines.append(f"| {m} | " + " | ".join(
                    f"{vals[i]:.2f}" if i in vals else "—" for i in images) + " |")
        return lines


def fmt_db(x: float) -> str:
    return f"{x:+.2f} dB" if np.isfinite(x) else "n/a"


# --------------------------------------------------------------------------- data
def centre_crop(x: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return x
    h, w = x.shape[:2]
    if h <= size and w <= size:
        return x
    r0, c0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[r0:r0 + size, c0:c0 + size]


class Skip(Exception):
    """A section cannot run (missing data); the message goes into the report."""


def load_set12(cfg: Config, names: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """Set12 images as uint8 arrays (centre-cropped in quick mode)."""
    from skimage import io

    folder = cfg.data / "set12"
    if not folder.is_dir():
        raise Skip(f"Set12 not found at {folder}")
    names = list(names) if names is not None else SET12[: cfg.n_images]
    out = []
    for n in names:
        p = folder / f"{n}.png"
        if not p.is_file():
            raise Skip(f"{p} missing")
        img = io.imread(p)
        if img.ndim == 3:
            img = img[..., 0]
        out.append((n, np.ascontiguousarray(centre_crop(img, cfg.crop))))
    return out


def describe_images(images: Sequence[tuple[str, np.ndarray]]) -> str:
    shapes = sorted({f"{a.shape[0]}×{a.shape[1]}" for _, a in images})
    return f"{', '.join(n for n, _ in images)} ({' / '.join(shapes)})"


# --------------------------------------------------------------------------- our denoiser
BASELINES_ONLY = False


def ours(noisy: np.ndarray, cfg: Config, **kwargs):
    """Run ``denoise`` with float32 output (no uint8 rounding); returns (DenoiseResult, seconds)."""
    from napari_diffdenoise import denoise

    if BASELINES_ONLY:  # cache-filling run: a cheap stand-in keeps every section's code path
        from napari_diffdenoise.engine.denoise import DenoiseResult

        x = np.asarray(noisy, np.float32)
        return DenoiseResult(x, None, np.zeros_like(x), None), 0.0

    x = noisy.astype(np.float32) if noisy.dtype.kind == "f" else noisy
    return timed(denoise, x, model=cfg.model, output_dtype=np.float32, return_details=True,
                 **kwargs)


#: the `fast` preset's arithmetic, forced (the preset itself falls back to float32 on CPUs
#: without native bfloat16; the header says whether this one has it)
FAST_ROW = ("ours blind, bfloat16 (fast)", {"precision": "bfloat16"})
#: the `quality` preset's settings applied to ``--model`` (the preset uses the bundled weights)
def _quality_row() -> tuple[str, dict]:
    from napari_diffdenoise.model.registry import PRESETS

    q = PRESETS["quality"]
    weight = q.wiener if isinstance(q.wiener, str) else f"{q.wiener:g}"
    return (f"ours blind, ×{q.ensemble} ensemble + non-local {weight} (quality)",
            {"ensemble": q.ensemble, "wiener": q.wiener})


QUALITY_ROW = _quality_row()
#: the self-ensemble alone (the quality preset without its non-local step)
ENSEMBLE_ROW = ("ours blind, ×8 ensemble, no non-local step", {"ensemble": 8, "wiener": 0.0})
#: our blind rows besides ``default``: the other presets
PRESET_ROWS = (FAST_ROW, ENSEMBLE_ROW, QUALITY_ROW)


# --------------------------------------------------------------------------- sections
def section_gaussian(cfg: Config) -> list[str]:
    from napari_diffdenoise import add_noise

    images = load_set12(cfg)
    sc = Scores()
    sigma_err: list[float] = []
    for sigma in cfg.sigmas:
        col = f"σ={sigma}"
        for name, img in images:
            clean = img.astype(np.float64)
            noisy = add_noise(clean, "gaussian", sigma=sigma, seed=seed_for("gaussian", name, sigma))
            log(f"gaussian σ={sigma} {name}")

            score = sc.scorer(col, name, clean, 255.0, clip=(0.0, 255.0))
            score("noisy input", noisy)
            res, sec = ours(noisy, cfg)
            score("ours blind (default)", res.image, sec)
            if res.report is not None:
                sigma_err.append(abs(res.report.sigma - sigma) / sigma)
            for label, kw in PRESET_ROWS:
                res, sec = ours(noisy, cfg, **kw)
                score(label, res.image, sec)
            res, sec = ours(noisy, cfg, sigma=float(sigma))
            score("ours known σ", res.image, sec)
            for label, fn in (("BM3D (true σ)", B.bm3d_denoise), ("NLM (true σ)", B.nlm),
                              ("TV (true σ)", B.tv), ("wavelet BayesShrink (true σ)", B.wavelet)):
                est, sec = cached_baseline(fn, noisy, sigma)
                score(label, est, sec)

    cols = [f"σ={s}" for s in cfg.sigmas]
    lines = [f"Images: Set12 {describe_images(images)}; noise seeds `crc32('gaussian/<image>/<σ>')`.",
             "", *sc.table(cols), ""]
    full_set12 = len(images) == 12 and cfg.crop is None
    anchor_cols = [s for s in cfg.sigmas if s in ANCHOR_SIGMAS]
    lines += ["Published Set12 anchors (PSNR dB, not measured here"
              + ("" if full_set12 else "; NOT comparable: this run uses a subset/crops") + "):", "",
              "| method | " + " | ".join(f"σ={s}" for s in anchor_cols) + " |",
              "|---" * (len(anchor_cols) + 1) + "|"]
    for label, vals in ANCHORS.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{vals[ANCHOR_SIGMAS.index(s)]:.2f}" for s in anchor_cols) + " |")
    pub = {s: ANCHORS["BM3D (published)"][ANCHOR_SIGMAS.index(s)] + TARGET_GAIN_DB
           for s in anchor_cols}
    run = {s: sc.mean_psnr("BM3D (true σ)", f"σ={s}") + TARGET_GAIN_DB for s in anchor_cols}
    lines += ["", f"Target: BM3D + {TARGET_GAIN_DB} dB (PSNR; cells: ours, then the margin to the "
              "published-BM3D target / to this run's BM3D target):", "",
              "| | " + " | ".join(f"σ={s}" for s in anchor_cols) + " |",
              "|---" * (len(anchor_cols) + 1) + "|",
              f"| target: published BM3D + {TARGET_GAIN_DB} | "
              + " | ".join(f"{pub[s]:.2f}" for s in anchor_cols) + " |",
              f"| target: this run's BM3D + {TARGET_GAIN_DB} | "
              + " | ".join(f"{run[s]:.2f}" for s in anchor_cols) + " |"]
    for m in ("ours blind (default)", *(label for label, _ in PRESET_ROWS), "ours known σ"):
        cells = []
        for s in anchor_cols:
            p = sc.mean_psnr(m, f"σ={s}")
            cells.append(f"{p:.2f} ({fmt_db(p - pub[s])} {'✅' if p >= pub[s] else '❌'} / "
                         f"{fmt_db(p - run[s])} {'✅' if p >= run[s] else '❌'})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if sigma_err:
        lines += ["", f"Blind noise estimate: mean |σ̂ − σ| / σ = {100 * np.mean(sigma_err):.1f} % "
                  f"(max {100 * np.max(sigma_err):.1f} %)."]
    if cfg.per_image:
        lines += sc.per_image_tables(cols)
    return lines


def section_poisson(cfg: Config) -> list[str]:
    from napari_diffdenoise import add_noise, synthetic_fluorescence

    size = cfg.crop or 256
    n = 3 if cfg.quick else 6
    gain, read, offset = 1.0, 2.0, 100.0
    baseline = read**2 - gain * offset  # Var[y | E y] = gain·E[y] + baseline
    sc = Scores()
    est_kinds: list[str] = []
    for peak in cfg.poisson_peaks:
        col = f"peak {peak:g}"
        for i in range(n):
            x = synthetic_fluorescence((size, size), kind="mixed", seed=i)
            photons = peak * x.astype(np.float64)
            clean = offset + photons
            noisy = add_noise(photons, "poisson_gaussian", gain=gain, read_noise=read,
                              offset=offset, seed=seed_for("poisson", i, peak))
            rng = float(photons.max())  # PSNR relative to the clean image's peak (in photons)
            sig_rms = float(np.sqrt(np.mean(gain * photons + read**2)))
            name = f"mixed seed {i}"
            log(f"poisson peak={peak:g} {name}")

            score = sc.scorer(col, name, clean, rng)
            score("noisy input", noisy)
            res, sec = ours(noisy, cfg)
            score("ours blind (default)", res.image, sec)
            if res.report is not None:
                est_kinds.append(res.report.kind)
            for label, kw in (ENSEMBLE_ROW, QUALITY_ROW):
                other, sec = ours(noisy, cfg, **kw)
                score(label, other.image, sec)
            est, sec = cached_baseline(B.vst_bm3d, noisy, gain, baseline, offset)
            score("VST+BM3D (true gain/read noise)", est, sec)
            for label, fn in (("BM3D (RMS σ)", B.bm3d_denoise), ("NLM (RMS σ)", B.nlm),
                              ("TV (RMS σ)", B.tv), ("wavelet BayesShrink (RMS σ)", B.wavelet)):
                est, sec = cached_baseline(fn, noisy, sig_rms)
                score(label, est, sec)

    cols = [f"peak {p:g}" for p in cfg.poisson_peaks]
    kinds = {k: est_kinds.count(k) for k in sorted(set(est_kinds))}
    lines = [
        f"Images: {n} × `synthetic_fluorescence(({size}, {size}), kind='mixed', seed=0..{n - 1})` "
        f"(values in [0, 1]) × peak photons; noise `add_noise(..., 'poisson_gaussian', gain={gain:g}, "
        f"read_noise={read:g}, offset={offset:g})`, seeds `crc32('poisson/<i>/<peak>')`. "
        "Clean reference = offset + photons; PSNR/SSIM data range = the clean image's peak "
        "(photons above the offset); no clipping.",
        "VST+BM3D: generalized Anscombe with the true gain and read noise, BM3D σ = 1, "
        "closed-form exact-unbiased inverse (Mäkitalo & Foi 2013), clipped at the offset. "
        "BM3D/NLM/TV/wavelet get the true RMS noise std over the image.",
        "", *sc.table(cols), "",
        f"Blind noise classification of ours: {kinds}.",
    ]
    if cfg.per_image:
        lines += sc.per_image_tables(cols)
    return lines


def load_pairs(data: Path, crop: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, noisy, clean)`` of the real pairs under ``data/microscopy_pairs`` (native
    dtype, fmd_bpae_r's channel 0, centre-cropped to ``crop``); the diagnostics use it too."""
    from skimage import io

    folder = data / "microscopy_pairs"
    if not folder.is_dir():
        raise Skip(f"microscopy pairs not found at {folder}")
    pairs = []
    for name in ("fmd_r1", "fmd_bpae_r", "w2s_010"):
        pn, pc = folder / f"{name}_noisy.png", folder / f"{name}_clean.png"
        if not (pn.is_file() and pc.is_file()):
            log(f"pairs: {name} missing, skipped")
            continue
        noisy, clean = io.imread(pn), io.imread(pc)
        if noisy.ndim == 3:  # fmd_bpae_r is stored as RGB: channel 0
            noisy, clean = noisy[..., 0], clean[..., 0]
        pairs.append((name, np.ascontiguousarray(centre_crop(noisy, crop)),
                      np.ascontiguousarray(centre_crop(clean, crop))))
    if not pairs:
        raise Skip(f"no pairs in {folder}")
    return pairs


def section_pairs(cfg: Config) -> list[str]:
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
        note = (f"{name}: ours {rep.kind}, σ̂ = {rep.sigma:.3g}, gain = {rep.gain:.4g}, "
                f"baseline variance = {rep.baseline_variance:.4g}")
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
        for label, fn in (("BM3D (σ̂)", B.bm3d_denoise), ("NLM (σ̂)", B.nlm), ("TV (σ̂)", B.tv),
                          ("wavelet BayesShrink (σ̂)", B.wavelet)):
            est, sec = cached_baseline(fn, noisy, sig)
            score(label, est, sec)

    names = [n for n, _, _ in pairs]
    mean_col = "mean"
    sc.add_mean_column(names, mean_col)
    shape = pairs[0][1].shape
    lines = [
        f"Pairs: {', '.join(names)} ({shape[0]}×{shape[1]}"
        + (", centre crops" if cfg.pairs_crop else "") + ", uint8; fmd_bpae_r: channel 0). "
        "Every output (and the noisy input) is affine-fitted to the clean image by least "
        "squares before PSNR/SSIM (data range = clean max − min), as in CARE.",
        "VST+BM3D gets gain and baseline variance from `estimate_noise(noisy)` (the report of "
        "our blind run; no VST where it finds no signal-dependent part), and, as a reference, "
        "from a fit against the clean image (oracle: clean mapped affinely onto the noisy "
        "scale, residual variance vs mean in 32 quantile bins, bins near 255 left out). "
        "BM3D/NLM/TV/wavelet get σ̂ = `skimage.restoration.estimate_sigma(noisy)` (wavelet "
        "MAD, independent of our estimator). MP/s exclude the estimates' time.",
        "", *sc.table(names + [mean_col]), "",
        "Noise estimates: " + "; ".join(notes) + ".",
    ]
    return lines


def section_impulse(cfg: Config) -> list[str]:
    from napari_diffdenoise import add_noise

    images = load_set12(cfg)
    sc = Scores()
    detect: list[str] = []
    for amount in cfg.impulse_amounts:
        col = f"{100 * amount:g} %"
        for name, img in images:
            clean = img.astype(np.float64)
            noisy = add_noise(img, "salt_and_pepper", amount=amount,
                              seed=seed_for("impulse", name, amount))
            log(f"impulse {col} {name}")

            score = sc.scorer(col, name, clean, 255.0, clip=(0.0, 255.0))
            score("noisy input", noisy)
            res, sec = ours(noisy, cfg)
            score("ours blind (default)", res.image, sec)
            if res.report is not None:
                detect.append(f"{col} {name}: {res.report.kind}, "
                              f"impulses {100 * res.report.impulse_fraction:.1f} %")
            est, sec = cached_baseline(B.adaptive_median, noisy, 11)
            score("adaptive median (Hwang–Haddad, 3..11)", est, sec)
            est, sec = cached_baseline(B.median3, noisy)
            score("median 3×3", est, sec)

    cols = [f"{100 * a:g} %" for a in cfg.impulse_amounts]
    lines = [f"Images: Set12 {describe_images(images)} as uint8; `add_noise(..., 'salt_and_pepper', "
             "amount=p)` (0/255 impulses), seeds `crc32('impulse/<image>/<p>')`. PSNR on 0..255.",
             "", *sc.table(cols), "", f"Target: ours ≥ adaptive median + {IMPULSE_TARGET_DB} dB:"]
    for c in cols:
        d = sc.mean_psnr("ours blind (default)", c) - sc.mean_psnr(
            "adaptive median (Hwang–Haddad, 3..11)", c)
        lines.append(f"- {c}: ours − adaptive median = {fmt_db(d)} "
                     f"{'✅' if d >= IMPULSE_TARGET_DB else '❌'}")
    not_sp = [d for d in detect if "salt_and_pepper" not in d]
    lines += ["", f"Blind detection: {len(detect) - len(not_sp)}/{len(detect)} images classified "
              "salt_and_pepper" + (f"; others: {'; '.join(not_sp)}" if not_sp else "") + "."]
    if cfg.per_image:
        lines += sc.per_image_tables(cols)
    return lines


def section_variant(cfg: Config) -> list[str]:
    from napari_diffdenoise import add_noise
    from napari_diffdenoise.noise.simulate import sigma_profile

    images = load_set12(cfg)
    lo, hi = 5.0, 50.0
    col = f"ramp σ {lo:g}→{hi:g}"
    sc = Scores()
    chosen: list[str] = []
    map_err: list[float] = []
    for name, img in images:
        clean = img.astype(np.float64)
        smap = sigma_profile(clean.shape, "ramp", lo, hi)
        noisy = add_noise(clean, "spatially_variant", profile="ramp", sigma_min=lo, sigma_max=hi,
                          seed=seed_for("variant", name))
        sig_rms = float(np.sqrt(np.mean(smap**2)))
        log(f"variant {name}")

        score = sc.scorer(col, name, clean, 255.0, clip=(0.0, 255.0))
        score("noisy input", noisy)
        res, sec = ours(noisy, cfg)
        score("ours blind (estimated time map)", res.image, sec)
        if res.report is not None:
            map_err.append(float(np.mean(np.abs(res.report.sigma_map - smap)) / np.mean(smap)))
        res, sec = ours(noisy, cfg, sigma=smap.astype(np.float32))
        score("ours true σ map", res.image, sec)
        res, sec = ours(noisy, cfg, sigma=sig_rms)
        score("ours global σ = RMS of the map", res.image, sec)
        best = None
        for s in cfg.variant_sweep:
            r, sec = ours(noisy, cfg, sigma=float(s))
            e = np.clip(r.image, 0, 255)
            p = psnr(clean, e, 255)
            if best is None or p > best[0]:
                best = (p, s, e)
        p, s, e = best
        sc.add("ours best global σ (oracle sweep)", col, name, p, ssim(clean, e, 255))
        chosen.append(f"{name}: {s:g}")
        est, sec = cached_baseline(B.bm3d_denoise, noisy, sig_rms)
        score("BM3D (global σ = RMS of the map)", est, sec)

    blind = sc.mean_psnr("ours blind (estimated time map)", col)
    oracle = sc.mean_psnr("ours best global σ (oracle sweep)", col)
    lines = [f"Images: Set12 {describe_images(images)} (float 0..255); σ map "
             f"`sigma_profile(shape, 'ramp', {lo:g}, {hi:g})` (rising along the columns), "
             "seeds `crc32('variant/<image>')`; estimates clipped to 0..255 for metrics. "
             f"Oracle sweep over σ ∈ {{{', '.join(f'{s:g}' for s in cfg.variant_sweep)}}} "
             "(known-σ mode, best PSNR per image; no MP/s: it is a search).",
             "", *sc.table([col]), "",
             f"Target: estimated time map beats the best single global σ: blind − oracle = "
             f"{fmt_db(blind - oracle)} {'✅' if blind > oracle else '❌'}.",
             f"Oracle σ per image: {', '.join(chosen)}."]
    if map_err:
        lines.append(f"Estimated σ map: mean |σ̂(p) − σ(p)| / mean σ = {100 * np.mean(map_err):.1f} %.")
    return lines


GRATING_PERIODS = (3.5, 5.0, 8.0, 12.0)


def gratings(size: int) -> list[tuple[str, np.ndarray]]:
    """Plain sinusoidal gratings, 0..255 (mean 128, amplitude 60), two orientations each:
    straight and constant-period, unlike the warped, masked mixtures the training textures
    (``synthetic_texture``) draw, though periods and profiles overlap."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = []
    for period in GRATING_PERIODS:
        for deg in (0.0, 34.0):
            a = np.deg2rad(deg)
            out.append((f"{period:g} px, {deg:g}°",
                        128 + 60 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period)))
    return out


def section_textures(cfg: Config) -> list[str]:
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
        for label, kw in (ENSEMBLE_ROW, QUALITY_ROW):
            res, sec = ours(noisy, cfg, **kw)
            score(label, res.image, sec)
        for label, fn in (("BM3D (true σ)", B.bm3d_denoise), ("NLM (true σ)", B.nlm)):
            est, sec = cached_baseline(fn, noisy, sigma)
            score(label, est, sec)
    lines = [f"Images: {len(GRATING_PERIODS) * 2} sinusoidal gratings {size}² (periods "
             f"{', '.join(f'{p:g}' for p in GRATING_PERIODS)} px at 0° and 34°; 0..255, "
             "amplitude 60)" + (" and Barbara's striped 256² crop" if barbara else "")
             + f", Gaussian σ = {sigma:g}, seeds `crc32('textures/<image>')`; outputs clipped "
             "to 0..255.", "", *sc.table([col]), ""]
    lines += sc.per_image_tables([col])
    return lines


def section_steps(cfg: Config) -> list[str]:
    from napari_diffdenoise import add_noise

    names = SET12[: cfg.steps_images]
    images = load_set12(cfg, names)
    sigma = 25.0
    configs: list[tuple[str, str, float, int, int]] = [("direct", "direct", 0.0, 1, 1)]
    for sampler in ("origin", "cold", "indi"):
        for k in cfg.steps_ks:
            configs.append((f"{sampler}" + (" η=0" if sampler == "indi" else ""), sampler, 0.0, k, 1))
    configs.append(("indi η=0.5, 1 sample", "indi", 0.5, 4, 1))
    configs.append(("indi η=0.5, mean of 4", "indi", 0.5, 4, 4))
    configs.append(("indi η=1, mean of 4", "indi", 1.0, 4, 4))
    rows, calibration = [], []
    for label, sampler, eta, k, samples in configs:
        ps, ss, ts = [], [], []
        err_all, std_all = [], []
        for name, img in images:
            clean = img.astype(np.float64)
            noisy = add_noise(clean, "gaussian", sigma=sigma, seed=seed_for("gaussian", name, 25))
            res, sec = ours(noisy, cfg, sigma=sigma, sampler=sampler, steps=k, eta=eta,
                            samples=samples, seed=0)
            e = np.clip(res.image, 0, 255)
            ps.append(psnr(clean, e, 255))
            ss.append(ssim(clean, e, 255))
            ts.append(sec)
            if res.std is not None:
                err_all.append(np.abs(res.image.astype(np.float64) - clean).ravel())
                std_all.append(res.std.astype(np.float64).ravel())
        log(f"steps {label} K={k}: {np.mean(ps):.2f} dB")
        if std_all:
            err, std = np.concatenate(err_all), np.concatenate(std_all)
            # per-pixel correlation of the spread with the actual error, and whether its size
            # matches the error (mean std against the RMS error: 1 = calibrated)
            r = float(np.corrcoef(std, err)[0, 1])
            rmse = float(np.sqrt(np.mean(err**2)))
            calibration.append(f"| {label} | {r:.2f} | {std.mean():.2f} | {rmse:.2f} | "
                               f"{std.mean() / rmse:.2f} |")
        rows.append(f"| {label} | {k} | {samples} | {k * samples} | {np.mean(ps):.2f} | "
                    f"{np.mean(ss):.4f} | {np.mean(ts):.2f} |")
    return [f"Images: Set12 {describe_images(images)}, Gaussian σ = 25 (same noise as the gaussian "
            "section), known σ, seed 0 for stochastic sampling. NFE = network evaluations.",
            "", "| sampler | K steps | samples | NFE | PSNR | SSIM | s / image |",
            "|---|---|---|---|---|---|---|", *rows, "",
            "K = 1 of origin / cold / indi is one network call from τ to 0, i.e. the same as "
            "direct (a consistency check).",
            *(["", "Uncertainty of the stochastic runs (all pixels of these images, grey levels): "
               "Pearson r between the per-pixel spread of the samples (`return_std`) and the "
               "actual error of their mean, and the mean spread against the RMS error.",
               "", "| sampler | r(std, abs err) | mean std | RMS error | mean std / RMS error |",
               "|---|---|---|---|---|", *calibration] if calibration else [])]


def _median_time(fn: Callable, repeats: int, warmup: bool) -> float:
    if warmup:
        fn()
    return float(np.median([timed(fn)[1] for _ in range(repeats)]))


def section_speed(cfg: Config) -> list[str]:
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
    t_def = run("ours default, blind (incl. noise estimation)",
                lambda: denoise(x32, model=cfg.model, device="cpu"), r, True,
                f"median of {r} after a warm-up")
    t_known = run("ours default, known σ", lambda: denoise(x32, sigma=25.0, model=cfg.model,
                                                            device="cpu"), r, False,
                  f"median of {r}")
    run("ours fast (bfloat16), blind", lambda: denoise(x32, model=cfg.model, device="cpu",
                                                         precision="bfloat16"), r, True,
        f"median of {r} after a warm-up")
    from napari_diffdenoise import estimate_noise
    run("noise estimation only (`estimate_noise`)", lambda: estimate_noise(x32), r, False,
        f"median of {r}")
    rq = 1 if cfg.quick else r
    run("ours ×8 ensemble, no non-local step, blind", lambda: denoise(x32, model=cfg.model, ensemble=8,
                                                               wiener=0.0, device="cpu"),
        rq, False, f"median of {rq}")
    run(f"ours quality ({QUALITY_ROW[0].split(', ', 1)[1].removesuffix(' (quality)')}), blind",
        lambda: denoise(x32, model=cfg.model, device="cpu", **QUALITY_ROW[1]), rq, False,
        f"median of {rq}")
    from napari_diffdenoise.engine.collaborative import collaborative_threshold, collaborative_wiener
    pilot = denoise(x32, sigma=25.0, model=cfg.model, device="cpu")
    run("collaborative Wiener step alone (`engine.collaborative`)",
        lambda: collaborative_wiener(x32, pilot, 25.0), r, False, f"median of {r}")
    run("collaborative hard thresholding alone (`engine.collaborative`)",
        lambda: collaborative_threshold(x32, 25.0), r, False, f"median of {r}")
    if torch.cuda.is_available():
        run("ours default, blind, CUDA", lambda: denoise(x32, model=cfg.model, device="cuda"),
            r, True, f"median of {r} after a warm-up")
        run("ours quality, blind, CUDA", lambda: denoise(x32, model=cfg.model, device="cuda",
                                                          **QUALITY_ROW[1]),
            r, True, f"median of {r} after a warm-up")
    t_bm3d = run("BM3D (true σ)", lambda: B.bm3d_denoise(noisy, 25.0), cfg.bm3d_repeats, False,
                 f"median of {cfg.bm3d_repeats}")
    run("NLM (true σ)", lambda: B.nlm(noisy, 25.0), r, False, f"median of {r}")
    run("TV (true σ)", lambda: B.tv(noisy, 25.0), r, False, f"median of {r}")
    run("wavelet BayesShrink (true σ)", lambda: B.wavelet(noisy, 25.0), r, False, f"median of {r}")

    lines = [f"Image: Set12 08.png{' (centre crop)' if cfg.speed_size < 512 else ''}, "
             f"{img.shape[0]}×{img.shape[1]} ({mp:.3f} MP), Gaussian σ = 25; device cpu, "
             f"torch threads {torch.get_num_threads()}; wall time with `time.perf_counter`.",
             "", "| method | wall s | MP/s | BM3D time / this | timing |", "|---|---|---|---|---|"]
    for label, t, note in rows:
        lines.append(f"| {label} | {t:.2f} | {mp / t:.3f} | {t_bm3d / t:.2f}× | {note} |")
    ratio = t_bm3d / t_def
    lines += ["", f"BM3D time / ours default (blind) time = **{ratio:.2f}×** "
              f"(target ≥ 10×: {'✅' if ratio >= 10 else '❌'}); "
              f"with known σ: {t_bm3d / t_known:.2f}×."]
    if not torch.cuda.is_available():
        lines.append("CUDA not available: no GPU timing.")
    return lines


SECTION_FUNCS: dict[str, tuple[str, Callable[[Config], list[str]]]] = {
    "gaussian": ("Gaussian noise, Set12", section_gaussian),
    "poisson": ("Poisson-Gaussian noise, synthetic fluorescence", section_poisson),
    "pairs": ("Real microscopy pairs (affine-fitted PSNR)", section_pairs),
    "impulse": ("Salt-and-pepper noise, Set12", section_impulse),
    "variant": ("Spatially variant Gaussian noise (σ ramp), Set12", section_variant),
    "textures": ("Fine periodic structure (σ = 25)", section_textures),
    "steps": ("Samplers and steps (σ = 25, known σ)", section_steps),
    "speed": ("Speed", section_speed),
}


# --------------------------------------------------------------------------- report
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + (" (with uncommitted changes)" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header(cfg: Config, argv: Sequence[str]) -> list[str]:
    import bm3d
    import pywt
    import scipy
    import skimage
    import torch

    from napari_diffdenoise import __version__, load_model

    m = load_model(cfg.model)
    tr = m.info.training or {}
    steps = tr.get("steps", "unknown")
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    cmd = "python " + " ".join(shlex.quote(a) for a in argv)
    bm3d_version = getattr(bm3d, "__version__", None)
    if bm3d_version is None:
        from importlib.metadata import version

        bm3d_version = version("bm3d")
    from napari_diffdenoise.engine.device import fast_bfloat16
    return [
        "# Denoising benchmark" + (" (quick mode)" if cfg.quick else ""),
        "",
        f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Command: `{cmd}`",
        f"- Model: `{m.name}` ({m.path.name}; {m.info.description or 'no description'}); "
        f"training steps: {steps}; data: {tr.get('data', 'unknown')}; "
        f"{m.net.parameter_count():,} parameters; σ_max {m.sigma_max:g}",
        f"- napari-diffdenoise {__version__}, git {git_revision()}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, device cpu, bfloat16 faster than float32 "
        f"here (so the `fast` preset uses it): "
        f"{'yes' if fast_bfloat16(torch.device('cpu')) else 'no (the `fast` preset runs float32)'}"
        + (f" (CUDA: {torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
        + f"; load average at start: {load}",
        f"- Libraries: numpy {np.__version__}, scipy {scipy.__version__}, scikit-image "
        f"{skimage.__version__}, bm3d {bm3d_version}, PyWavelets {pywt.__version__}",
        f"- Data: {cfg.data}" + (f"; quick mode: {cfg.n_images} images per section, centre "
                                 f"crops {cfg.crop}² (speed {cfg.speed_size}²), one noise level "
                                 "for gaussian/poisson, fewer for the others"
                                 if cfg.quick else ""),
        "",
        "Conventions. PSNR = 10·log10(range² / MSE); SSIM = skimage `structural_similarity` "
        "with the data range and Wang et al.'s settings (Gaussian window σ 1.5, population "
        "covariance). Noisy inputs are never clipped (float Gaussian protocol). For the Set12 "
        "sections (gaussian, impulse, variant, steps) every method's output is clipped to "
        "0..255 before the metrics (as the 8-bit conversion of the DnCNN/KAIR protocol does, "
        "without rounding); poisson and pairs outputs are not clipped. Our denoiser is called "
        "with `output_dtype=float32`, so integer inputs are not rounded. MP/s = megapixels "
        "per second of wall time per call (for ours including the blind noise estimation), "
        "measured on a shared machine: see the load average. Baseline parameters: "
        f"NLM h = {B.NLM_H_FACTOR}·σ (patch 7, distance 11, fast mode), TV weight = "
        f"{B.TV_WEIGHT_FACTOR}·σ, wavelet {B.WAVELET} with {B.WAVELET_LEVELS} levels "
        "(tuned on train400/test_001..004, see `benchmarks/baselines.py --tune`).",
        "",
    ]


def warm_up(cfg: Config) -> None:
    """Load the model and run torch once, so the first timed call does not pay for it."""
    from napari_diffdenoise import denoise

    log(f"warm-up: loading model {cfg.model!r}")
    x = np.random.default_rng(0).normal(0.5, 0.1, (64, 64)).astype(np.float32)
    denoise(x, sigma=0.1, model=cfg.model)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark napari-diffdenoise against classical "
                                            "denoisers (markdown tables).")
    p.add_argument("--quick", action="store_true",
                   help="development run: 3 images per section, 128² crops, fewer levels")
    p.add_argument("--model", default="default", help="model name or .safetensors path")
    p.add_argument("--out", type=Path, default=None,
                   help="markdown output (written atomically after every section); default "
                        "docs/bench_denoise.md, or benchmarks/.cache/baselines_only.md with "
                        "--baselines-only (its stand-in rows must not replace the published tables)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--data", type=Path, default=(REPO.parent / "shared" / "data"),
                   help="data folder (default: <repo>/../shared/data)")
    p.add_argument("--crop", type=int, default=None,
                   help="centre-crop test images (Set12, pairs) and size synthetic ones to N×N; "
                        "default: full size (synthetic 256²), quick: 128")
    p.add_argument("--per-image", action="store_true", help="also print per-image PSNR tables")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the classical baselines instead of reusing benchmarks/.cache "
                        "(the speed section never uses the cache)")
    p.add_argument("--baselines-only", action="store_true",
                   help="fill the baseline cache only (skip our denoiser), e.g. while a model trains")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = (REPO / "benchmarks" / ".cache" / "baselines_only.md" if args.baselines_only
                    else REPO / "docs" / "bench_denoise.md")
    args.data = args.data.resolve()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad or not chosen:
        p.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    args.sections = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    global CACHE_DIR, BASELINES_ONLY
    if args.no_cache:
        CACHE_DIR = None
    BASELINES_ONLY = args.baselines_only
    cfg = Config.make(args)
    np.random.seed(0)
    import torch

    torch.manual_seed(0)
    doc = header(cfg, [Path(sys.argv[0]).as_posix() if argv is None else "bench_denoise.py", *raw])
    warm_up(cfg)
    print("\n".join(doc), flush=True)
    write_atomic(args.out, "\n".join(doc) + "\n")
    failed = 0
    for key in args.sections:
        if BASELINES_ONLY and key in ("steps", "speed"):
            log(f"section {key}: nothing to cache, skipped")  # timings are never cached
            continue
        title, fn = SECTION_FUNCS[key]
        log(f"section {key} …")
        t0 = time.perf_counter()
        try:
            body = fn(cfg)
        except Skip as exc:
            body = [f"_Skipped: {exc}_"]
            log(f"section {key} skipped: {exc}")
        except Exception as exc:  # keep going: a long run should not lose the other sections
            failed += 1
            traceback.print_exc()
            body = [f"_Failed: {type(exc).__name__}: {exc}_"]
        dt = time.perf_counter() - t0
        block = [f"## {title}", "", *body, "", f"_Section time: {dt:.0f} s._", ""]
        print("\n".join(block), flush=True)
        doc += block
        write_atomic(args.out, "\n".join(doc) + "\n")
        log(f"section {key} done in {dt:.0f} s")
    total = time.perf_counter() - _T0
    doc += [f"_Total time: {total:.0f} s._", ""]
    print(doc[-2], flush=True)
    write_atomic(args.out, "\n".join(doc) + "\n")
    log(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
