"""Denoising speed on every device this machine has (CPU, CUDA, MPS), in one run.

    python benchmarks/bench_devices.py                  # 512² and 2048², all presets
    python benchmarks/bench_devices.py --sizes 256 --repeats 2   # a quick check

Needs no data (a synthetic fluorescence image with Gaussian noise σ = 25 grey levels), so it
also runs on a lent GPU machine (``scripts/device_train.sh`` calls it after training). Prints a
markdown table: wall time per call (median of ``--repeats`` after a warm-up; ``denoise``
returns a numpy array, so GPU work is finished when the clock stops), megapixels per second,
and the speed-up over the CPU's ``default`` preset measured in the same run on the same image.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def _image(size: int) -> np.ndarray:
    from napari_diffdenoise import add_noise, synthetic_fluorescence

    clean = 255.0 * synthetic_fluorescence((size, size), kind="mixed", seed=size)
    return add_noise(clean.astype(np.float32), "gaussian", sigma=25.0, seed=1)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: model load, cuDNN autotuning, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    import torch

    from napari_diffdenoise import denoise
    from napari_diffdenoise.engine.device import available_devices, fast_bfloat16

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512,2048", help="comma-separated image sizes (square)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", default=None, help="comma-separated (default: all available)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    devices = (args.devices.split(",") if args.devices
               else [d for d in available_devices() if d in ("cpu", "cuda", "mps")])
    print(f"- Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        print(f"- CUDA: {torch.cuda.get_device_name(0)}, native bfloat16: "
              f"{fast_bfloat16(torch.device('cuda'))}")
    print(f"- CPU bfloat16 faster than float32 (one-off timing): {fast_bfloat16(torch.device('cpu'))}")
    print("- Image: synthetic fluorescence, Gaussian noise σ = 25; blind = noise estimated "
          "in the call\n")
    print("| device | preset | mode | size | wall s | MP/s | × CPU default |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        img = _image(size)
        mp = img.size / 1e6
        base = None
        for dev in devices:
            for preset in ("default", "fast", "quality"):
                if preset == "quality" and size > 1024 and dev == "cpu":
                    continue  # 8 network calls per tile on 2 cores: minutes, and no news
                for mode, kw in (("blind", {}), ("known σ", {"sigma": 25.0})):
                    t = _time(lambda: denoise(img, model=preset, device=dev, **kw),  # noqa: B023
                              args.repeats)
                    if dev == "cpu" and preset == "default" and mode == "blind":
                        base = t
                    ratio = f"{base / t:.2f}×" if base else "—"
                    print(f"| {dev} | {preset} | {mode} | {size}² | {t:.3f} | {mp / t:.2f} | "
                          f"{ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
