#!/usr/bin/env python
"""Benchmark the napari-diffdenoise denoiser against classical baselines run in the same process.

Sections (``--sections``, comma-separated; one module each in ``benchmarks/denoise/``):

- ``gaussian``: Set12, additive Gaussian σ 15/25/50 on float images in 0..255 (noisy data not
  clipped); ours blind / the presets / known σ vs BM3D (true σ), NLM, TV, wavelet.
- ``poisson``: Poisson-Gaussian noise on synthetic fluorescence (camera-like: gain 1, read
  noise 2, offset 100); ours blind vs VST+BM3D (true parameters), BM3D, NLM, TV, wavelet.
- ``pairs``: real noisy/clean microscopy pairs, intensity-affine-fitted PSNR (as CARE does).
- ``impulse``: salt-and-pepper 10/20/50 % on Set12 uint8; ours blind vs adaptive/3×3 median.
- ``variant``: σ ramp 5→50 along the columns on Set12; estimated time map vs the true σ map vs
  the best single global σ (oracle sweep) vs BM3D at the map's RMS σ.
- ``textures``: fine periodic structure at Gaussian σ 25: plain sinusoidal gratings (periods
  3.5-12 px) and the striped 256² crop of Set12's Barbara; ours blind vs BM3D and NLM.
- ``wiener``: the non-local step's weight: fixed blends, ``wiener="auto"`` and the best weight
  per image (oracle) on Set12 and the gratings at the known σ, and on the real pairs (blind).
- ``steps``: PSNR and time vs number of steps for each sampler (known σ = 25).
- ``speed``: wall time and megapixels/s on one 512² image (σ 25).

Run ``python benchmarks/bench_denoise.py --quick`` for a development run (a few minutes), and
without ``--quick`` for the full benchmark (tens of minutes on a 2-core CPU). Progress goes to
stderr, the markdown tables to stdout and (atomically, after every section) to ``--out``.
``--check`` then lists the targets of the sections run and exits 1 if one was missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # baselines.py, targets.py and the denoise/ package

from denoise import SECTIONS as SECTION_MODULES  # noqa: E402
from denoise import cache, ours  # noqa: E402
from denoise.common import Config, Skip, log  # noqa: E402
from denoise.report import header, warm_up, write_atomic  # noqa: E402
from targets import Target, check_report  # noqa: E402

SECTIONS = tuple(SECTION_MODULES)
START = time.perf_counter()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark napari-diffdenoise against classical denoisers (markdown tables)."
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="development run: 3 images per section, 128² crops, fewer levels",
    )
    p.add_argument("--model", default="default", help="model name or .safetensors path")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown output (written atomically after every section); default "
        "docs/bench_denoise.md, or benchmarks/.cache/baselines_only.md with "
        "--baselines-only (its stand-in rows must not replace the published tables)",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=(REPO.parent / "shared" / "data"),
        help="data folder (default: <repo>/../shared/data)",
    )
    p.add_argument(
        "--crop",
        type=int,
        default=None,
        help="centre-crop test images (Set12, pairs) and size synthetic ones to N×N; "
        "default: full size (synthetic 256²), quick: 128",
    )
    p.add_argument("--per-image", action="store_true", help="also print per-image PSNR tables")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute the classical baselines instead of reusing benchmarks/.cache "
        "(the speed section never uses the cache)",
    )
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="fill the baseline cache only (skip our denoiser), e.g. while a model trains",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="after the tables, list the targets of the sections run (PASS/MISS) and "
        "exit 1 if one was missed or its section could not run",
    )
    args = p.parse_args(argv)
    if args.check and args.baselines_only:
        p.error("--check needs our denoiser; it cannot be combined with --baselines-only")
    if args.out is None:
        args.out = (
            REPO / "benchmarks" / ".cache" / "baselines_only.md"
            if args.baselines_only
            else REPO / "docs" / "bench_denoise.md"
        )
    args.data = args.data.resolve()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad or not chosen:
        p.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    args.sections = chosen
    return args


def section_command(key: str, raw: Sequence[str]) -> str:
    """The command that reruns one section with this run's other options."""
    rest, skip = [], False
    for a in raw:
        if skip:
            skip = False
        elif a in ("--sections", "--out"):  # options with a separate value
            skip = True
        elif not a.startswith(("--sections=", "--out=", "--check")):
            rest.append(a)
    return " ".join(["python benchmarks/bench_denoise.py", "--sections", key, *rest])


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.no_cache:
        cache.CACHE_DIR = None
    ours.BASELINES_ONLY = args.baselines_only
    cfg = Config.make(args)
    np.random.seed(0)  # noqa: NPY002  (the legacy global RNG, for any library drawing on it)
    import torch

    torch.manual_seed(0)
    doc = header(cfg, [Path(sys.argv[0]).as_posix() if argv is None else "bench_denoise.py", *raw])
    warm_up(cfg)
    print("\n".join(doc), flush=True)
    write_atomic(args.out, "\n".join(doc) + "\n")
    failed = 0
    targets: list[Target] = []
    not_evaluated: list[str] = []
    for key in args.sections:
        if args.baselines_only and key in ("wiener", "steps", "speed"):
            log(f"section {key}: nothing to cache, skipped")  # no baselines; timings never cached
            continue
        section = SECTION_MODULES[key]
        log(f"section {key} …")
        t0 = time.perf_counter()
        try:
            outcome = section.run(cfg)
            body = outcome.lines
            targets += outcome.targets
        except Skip as exc:
            body = [f"_Skipped: {exc}_"]
            not_evaluated.append(f"{key} (skipped: {exc})")
            log(f"section {key} skipped: {exc}")
        except Exception as exc:  # keep going: a long run should not lose the other sections
            failed += 1
            traceback.print_exc()
            body = [f"_Failed: {type(exc).__name__}: {exc}_"]
            not_evaluated.append(f"{key} (failed: {type(exc).__name__})")
        dt = time.perf_counter() - t0
        block = [
            f"## {section.TITLE}",
            "",
            f"Command: `{section_command(key, raw)}`",
            "",
            *body,
            "",
            f"_Section time: {dt:.0f} s._",
            "",
        ]
        print("\n".join(block), flush=True)
        doc += block
        write_atomic(args.out, "\n".join(doc) + "\n")
        log(f"section {key} done in {dt:.0f} s")
    total = time.perf_counter() - START
    doc += [f"_Total time: {total:.0f} s._", ""]
    print(doc[-2], flush=True)
    write_atomic(args.out, "\n".join(doc) + "\n")
    log(f"wrote {args.out}")
    status = 1 if failed else 0
    if args.check:  # printed, not written to --out: the published tables carry ✅/❌ already
        lines, check_status = check_report(targets, not_evaluated)
        print("\n".join(["", *lines]), flush=True)
        status = max(status, check_status)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
