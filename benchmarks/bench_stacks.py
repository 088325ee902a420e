"""Stacks of any size: memory, throughput, tiling and resume of the streaming engine.

    python benchmarks/bench_stacks.py                 # writes docs/bench_stacks.md
    python benchmarks/bench_stacks.py --quick --out /tmp/stacks.md --check

Sections (all measured in this run, on synthetic fluorescence stacks written to a temporary
folder as zarr, uint16):

- **memory**: peak RSS of ``napari-diffdenoise denoise STACK -o OUT.zarr`` (a subprocess,
  sampled every 50 ms) for a 4-plane and a 16-plane stack, and while it works through a stack
  of ``--big-gb`` GB (stopped after ``--big-seconds``: what matters is that memory does not grow
  with the stack). Targets: growth 4 → 16 planes ≤ 15 %, peak < 1.5 GB, the big stack's peak
  within 15 % of the 16-plane one.
- **throughput**: the network alone on one whole plane in a single pass (the device's limit;
  with a per-pixel time map, as the engine gets from the blind estimate on these planes)
  against the engine on the 16-plane stack (reading, the blind noise estimate, tiling, writing
  included), in MP/s. Target: engine ≥ 90 % of the network.
- **tiling**: one plane denoised whole and in 256-pixel tiles: largest difference.
- **resume**: the 16-plane job killed (SIGKILL) after half its planes, then run again: output
  identical to an uninterrupted run; time of the rerun against the full run (target ≤ 60 %).
- **gpu** (only where CUDA is available): MP/s per preset, the batch chosen, memory used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Target, check_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "napari_diffdenoise.cli", "denoise"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_stack(path: Path, planes: int, size: int, seed: int = 0) -> Path:
    """A zarr stack of noisy synthetic fluorescence planes (Poisson-Gaussian, uint16)."""
    import zarr

    from napari_diffdenoise import add_noise, synthetic_fluorescence

    if path.exists():  # (--keep: a stack from an earlier run with the same size is reused)
        existing = zarr.open_array(str(path), mode="r")
        if existing.shape == (planes, size, size):
            return path
        shutil.rmtree(path)
    rng = np.random.default_rng(seed)
    base = [synthetic_fluorescence((size, size), seed=int(s)) for s in rng.integers(0, 1 << 30, 4)]
    array = zarr.create_array(
        str(path),
        shape=(planes, size, size),
        chunks=(1, size, size),
        dtype=np.uint16,
        zarr_format=2,
    )
    noisy = []
    for i in range(min(planes, 8)):  # a larger stack repeats these 8 planes (its noise too)
        clean = 100 + 2000 * base[i % len(base)]
        noisy.append(
            np.clip(
                add_noise(clean, "poisson_gaussian", gain=4.0, read_noise=6.0, seed=i), 0, 65535
            ).astype(np.uint16)
        )
    for i in range(planes):
        array[i] = noisy[i % len(noisy)]
    return path


def peak_rss(command: list[str], *, stop_after: float | None = None) -> tuple[float, float, int]:
    """Run ``command``; returns (peak RSS in MB of the process and its children, seconds, return
    code). ``stop_after``: stop it (SIGTERM, which the CLI handles like Ctrl-C; SIGINT is ignored
    by a job started in the background) after that many seconds."""
    import psutil

    start = time.perf_counter()
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = psutil.Process(job.pid)
    peak = 0
    while job.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        if stop_after is not None and time.perf_counter() - start > stop_after:
            job.send_signal(signal.SIGTERM)
            job.wait()
            break
        time.sleep(0.05)
    return peak / 1e6, time.perf_counter() - start, job.returncode


def network_mps(size: int, per_pixel: bool) -> float:
    """The network alone on one whole ``size``² plane in one pass, best of three (MP/s).

    ``per_pixel``: a time map that varies over the plane, as the blind estimate gives for shot
    noise (the engine's case here); else one time for the whole plane, which the network
    embeds once (the Gaussian-noise case, faster)."""
    import torch

    from napari_diffdenoise import load_model

    net = load_model("default").net
    x = torch.rand(1, 1, size, size)
    if per_pixel:
        t = 0.05 + 0.1 * torch.rand(1, 1, size, size)
    else:
        t = torch.full((1, 1, size, size), 0.1)
    best = float("inf")
    with torch.inference_mode():
        net(x, x, t)
        for _ in range(3):
            start = time.perf_counter()
            net(x, x, t)
            best = min(best, time.perf_counter() - start)
    return size * size / best / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="256² planes and a 0.25 GB big stack")
    parser.add_argument(
        "--size", type=int, default=None, help="plane side (default 1024; --quick 256)"
    )
    parser.add_argument(
        "--big-gb", type=float, default=None, help="size of the big stack (default 4)"
    )
    parser.add_argument(
        "--big-seconds", type=float, default=90.0, help="how long the big stack runs"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "bench_stacks.md"))
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--keep", default=None, help="keep the stacks in this folder (else a temp one)"
    )
    args = parser.parse_args(argv)
    size = args.size or (256 if args.quick else 1024)
    big_gb = args.big_gb if args.big_gb is not None else (0.25 if args.quick else 4.0)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_stacks_"))
    folder.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        ["python benchmarks/bench_stacks.py", *(argv if argv is not None else sys.argv[1:])]
    )
    lines = [
        "# Stacks of any size: memory, throughput, tiling, resume",
        "",
        f"Command: `{command}`. Machine: {os.cpu_count()} CPU cores, "
        f"{__import__('psutil').virtual_memory().total / 2**30:.0f} GiB; planes {size}², uint16, "
        "synthetic fluorescence with Poisson-Gaussian noise, blind, the `default` model; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
    ]
    targets: list[Target] = []
    try:
        stacks = {n: make_stack(folder / f"s{n}.zarr", n, size, seed=n) for n in (4, 16)}
        log("stacks written")
        # ---------------------------------------------------------------- memory
        log("memory")
        rows, peaks = [], {}
        for n, path in stacks.items():
            out = folder / f"o{n}.zarr"
            shutil.rmtree(out, ignore_errors=True)
            peaks[n], seconds, rc = peak_rss([*CLI, str(path), "-o", str(out)])
            if rc != 0:
                raise RuntimeError(f"the CLI failed on {path} (exit {rc})")
            rows.append(
                f"| {n} planes ({n * size * size * 2 / 2**20:.0f} MB) | {peaks[n]:.0f} | {seconds:.1f} |"
            )
        big_planes = max(1, int(big_gb * 2**30 / (size * size * 2)))
        log(f"big stack: {big_planes} planes")
        big = make_stack(folder / "big.zarr", big_planes, size, seed=99)
        shutil.rmtree(folder / "obig.zarr", ignore_errors=True)
        peaks["big"], seconds, _ = peak_rss(
            [*CLI, str(big), "-o", str(folder / "obig.zarr")], stop_after=args.big_seconds
        )
        done = len(os.listdir(folder / "obig.zarr" / ".napari_diffdenoise" / "done"))
        rows.append(
            f"| {big_planes} planes ({big_planes * size * size * 2 / 2**30:.2f} GB), "
            f"stopped after {seconds:.0f} s at plane {done} | {peaks['big']:.0f} | {seconds:.1f} |"
        )
        growth = peaks[16] / peaks[4] - 1
        lines += [
            "## Memory (peak RSS through the CLI)",
            "",
            "| stack | peak RSS (MB) | wall (s) |",
            "|---|---|---|",
            *rows,
            "",
            f"Growth 4 → 16 planes: {100 * growth:+.1f} %; big stack against 16 planes: "
            f"{100 * (peaks['big'] / peaks[16] - 1):+.1f} %.",
            "",
        ]
        targets += [
            Target("memory growth 4 → 16 planes", 100 * growth, 15, "<=", "%"),
            Target("peak RSS, 16 planes", peaks[16], 1500, "<", "MB"),
            Target(
                "big stack peak against 16 planes",
                100 * (peaks["big"] / peaks[16] - 1),
                15,
                "<=",
                "%",
            ),
        ]
        # ---------------------------------------------------------------- throughput
        log("throughput")
        from napari_diffdenoise import denoise

        own = network_mps(size, per_pixel=True)
        uniform = network_mps(size, per_pixel=False)
        denoise(np.zeros((64, 64), np.float32) + 1)  # load the model (not part of the rate)
        out = folder / "t16.zarr"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        denoise(stacks[16], out=out)
        engine = 16 * size * size / (time.perf_counter() - start) / 1e6
        lines += [
            "## Throughput",
            "",
            "| | MP/s |",
            "|---|---|",
            f"| network alone, one {size}² plane in one pass, per-pixel time map | {own:.3f} |",
            f"| network alone, one {size}² plane in one pass, one time for it | {uniform:.3f} |",
            f"| engine, 16-plane stack (read, blind estimate, tiles, write) | {engine:.3f} |",
            "",
            f"Engine / network with a per-pixel time map (what the blind estimate gives for "
            f"these shot-noise planes): {engine / own:.2f}.",
            "",
        ]
        targets.append(Target("stack throughput / network's own", engine / own, 0.9, ">="))
        # ---------------------------------------------------------------- tiling
        log("tiling")
        import zarr

        plane = np.asarray(zarr.open_array(str(stacks[4]))[0])
        whole = denoise(plane, output_dtype=np.float32)
        tiled = denoise(plane, output_dtype=np.float32, tile_size=256)
        diff = float(np.abs(whole - tiled).max())
        lines += [
            "## Tiling",
            "",
            f"One {size}² plane whole against 256-pixel tiles (48 px context, "
            f"32 px blended overlap): largest difference {diff:.4f} grey levels "
            f"(plane range {plane.min()}–{plane.max()}).",
            "",
        ]
        targets.append(
            Target("tiled against whole, largest difference", diff, 0.05, "<=", "grey levels")
        )
        # ---------------------------------------------------------------- resume
        log("resume")
        target = folder / "r16.zarr"
        shutil.rmtree(target, ignore_errors=True)
        full = [*CLI, str(stacks[16]), "-o", str(target), "--batch", "1"]
        start = time.perf_counter()
        subprocess.run(full, check=True, capture_output=True)
        t_full = time.perf_counter() - start
        reference = np.asarray(zarr.open_array(str(target)))
        shutil.rmtree(target)
        job = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marks = target / ".napari_diffdenoise" / "done"
        while job.poll() is None and (not marks.is_dir() or len(os.listdir(marks)) < 8):
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
        job.wait()
        killed_at = len(os.listdir(marks))
        start = time.perf_counter()
        subprocess.run(full, check=True, capture_output=True)
        t_resume = time.perf_counter() - start
        same = np.array_equal(np.asarray(zarr.open_array(str(target))), reference)
        lines += [
            "## Resume",
            "",
            "| run | wall (s) |",
            "|---|---|",
            f"| uninterrupted, 16 planes | {t_full:.1f} |",
            f"| rerun after a kill at plane {killed_at} | {t_resume:.1f} |",
            "",
            f"Resumed output identical to the uninterrupted one: {'yes' if same else 'NO'}; "
            f"rerun / full: {t_resume / t_full:.2f} (process start and model load included).",
            "",
        ]
        targets += [
            Target("resumed output identical", float(same), 1, ">="),
            Target("resume time / full run", t_resume / t_full, 0.6, "<="),
        ]
        # ---------------------------------------------------------------- gpu
        import torch

        if torch.cuda.is_available():
            log("gpu")
            from napari_diffdenoise.engine.options import DenoiseOptions

            rows = []
            for preset in ("default", "fast", "quality"):
                torch.cuda.reset_peak_memory_stats()
                settings = DenoiseOptions(model=preset).resolve()
                start = time.perf_counter()
                denoise(stacks[16], model=preset)
                torch.cuda.synchronize()
                mps = 16 * size * size / (time.perf_counter() - start) / 1e6
                batch = settings.choose_batch_size(size * size)
                rows.append(
                    f"| {preset} | {mps:.2f} | {batch} | "
                    f"{torch.cuda.max_memory_allocated() / 2**20:.0f} |"
                )
            lines += [
                "## GPU",
                "",
                f"{torch.cuda.get_device_name()}",
                "",
                "| preset | MP/s | batch | GPU memory (MB) |",
                "|---|---|---|---|",
                *rows,
                "",
            ]
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report, status = check_report(targets)
    lines += report
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return status if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
