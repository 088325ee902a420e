"""The report around the sections: the header (machine, libraries, model, conventions), the
warm-up call and the atomic writes of ``--out``."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import baselines as B
import numpy as np

from .common import Config, log

REPO = Path(__file__).resolve().parents[2]


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
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
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
        f"- Data: {cfg.data}"
        + (
            f"; quick mode: {cfg.n_images} images per section, centre "
            f"crops {cfg.crop}² (speed {cfg.speed_size}²), one noise level "
            "for gaussian/poisson, fewer for the others"
            if cfg.quick
            else ""
        ),
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
