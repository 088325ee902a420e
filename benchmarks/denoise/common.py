"""Common code of the denoising benchmark's sections: configuration, seeds, data, metrics, the
per-method score tables and the section outcome (tables + targets)."""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from targets import Target

SET12 = [f"{i:02d}" for i in range(1, 13)]

_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def seed_for(*keys) -> int:
    """A fixed seed per (section, image, level): the same noise in every run and every mode."""
    return zlib.crc32("/".join(map(str, keys)).encode()) & 0x7FFFFFFF


@dataclass
class Outcome:
    """What a section returns: its markdown lines and the targets ``--check`` evaluates."""

    lines: list[str]
    targets: list[Target] = field(default_factory=list)


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
    wiener_sigmas: tuple[int, ...]

    @classmethod
    def make(cls, args) -> Config:
        q = args.quick
        crop = args.crop if args.crop is not None else (128 if q else None)
        return cls(
            quick=q,
            model=args.model,
            data=args.data,
            per_image=args.per_image,
            crop=crop,
            pairs_crop=crop,
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
            wiener_sigmas=(25,) if q else (15, 25),
        )


# --------------------------------------------------------------------------- metrics
def psnr(ref: np.ndarray, est: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((np.asarray(ref, np.float64) - np.asarray(est, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim(ref: np.ndarray, est: np.ndarray, data_range: float) -> float:
    """SSIM with the settings of Wang et al. 2004 (11×11 Gaussian window, σ 1.5)."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(ref, np.float64),
            np.asarray(est, np.float64),
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def affine_fit(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a·est + b`` with (a, b) the least-squares fit to ``ref`` (CARE's affine-fitted PSNR)."""
    x = np.asarray(est, np.float64).ravel()
    A = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.asarray(ref, np.float64).ravel(), rcond=None)
    return a * np.asarray(est, np.float64) + b


def timed(fn: Callable, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


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

    def add(
        self,
        method: str,
        column: str,
        image: str,
        p: float,
        s: float,
        seconds: float | None = None,
        pixels: int = 0,
    ) -> None:
        e = self._d.setdefault(method, {}).setdefault(column, Entry())
        e.images.append(image)
        e.psnr.append(p)
        e.ssim.append(s)
        if seconds is not None:
            e.seconds += seconds
            e.pixels += pixels

    def scorer(
        self,
        column: str,
        image: str,
        clean: np.ndarray,
        data_range: float,
        *,
        clip: tuple[float, float] | None = None,
        affine: bool = False,
    ):
        """``score(method, estimate, seconds=None)`` for one image and column: clips the estimate
        to ``clip`` or affine-fits it to ``clean`` (CARE), then records PSNR/SSIM and the time."""
        clean = np.asarray(clean, np.float64)

        def score(method: str, est: np.ndarray, seconds: float | None = None) -> None:
            e = np.asarray(est, np.float64)
            if affine:
                e = affine_fit(e, clean)
            elif clip is not None:
                e = np.clip(e, *clip)
            self.add(
                method,
                column,
                image,
                psnr(clean, e, data_range),
                ssim(clean, e, data_range),
                seconds,
                clean.size,
            )

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
                cols[name] = Entry(
                    images=[name],
                    psnr=[float(np.mean([np.mean(e.psnr) for e in ents]))],
                    ssim=[float(np.mean([np.mean(e.ssim) for e in ents]))],
                )

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
                for name in e.images if e else []:
                    if name not in images:
                        images.append(name)
            lines += [
                "",
                f"Per image, {c} (PSNR dB):",
                "",
                "| method | " + " | ".join(images) + " |",
                "|---" * (len(images) + 1) + "|",
            ]
            for m in self.methods:
                e = self.get(m, c)
                vals = dict(zip(e.images, e.psnr, strict=True)) if e else {}
                lines.append(
                    f"| {m} | "
                    + " | ".join(f"{vals[i]:.2f}" if i in vals else "—" for i in images)
                    + " |"
                )
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
    return x[r0 : r0 + size, c0 : c0 + size]


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
        pairs.append(
            (
                name,
                np.ascontiguousarray(centre_crop(noisy, crop)),
                np.ascontiguousarray(centre_crop(clean, crop)),
            )
        )
    if not pairs:
        raise Skip(f"no pairs in {folder}")
    return pairs


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
            out.append(
                (
                    f"{period:g} px, {deg:g}°",
                    128 + 60 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period),
                )
            )
    return out
