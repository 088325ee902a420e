"""Device selection: ``"auto"`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import time
from functools import cache

__all__ = [
    "resolve_device",
    "available_devices",
    "PRECISIONS",
    "resolve_precision",
    "fast_bfloat16",
]

#: Arithmetic of the network's convolutions: full float32, or autocast to a 16-bit type.
PRECISIONS = ("float32", "bfloat16", "float16")


def available_devices() -> list[str]:
    import torch

    devs = ["cpu"]
    if torch.cuda.is_available():
        devs = [f"cuda:{i}" for i in range(torch.cuda.device_count())] + devs
        devs.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devs.insert(0, "mps")
    return devs


def resolve_device(device="auto"):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a torch.device into a
    usable ``torch.device``; ``ValueError`` for unknown or unavailable devices."""
    import torch

    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise TypeError(
            f"device must be a string like 'auto', 'cpu', 'cuda' or 'mps', got {device!r}"
        )
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(
            f"unknown device {device!r}; available: {', '.join(available_devices())}"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available; "
                f"available: {', '.join(available_devices())}"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} does not exist; available: {', '.join(available_devices())}"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device 'mps' requested but Apple MPS is not available; "
                f"available: {', '.join(available_devices())}"
            )
    elif dev.type != "cpu":
        raise ValueError(
            f"unsupported device {device!r}; available: {', '.join(available_devices())}"
        )
    return dev


def fast_bfloat16(dev) -> bool:
    """Whether ``dev`` runs the network's bfloat16 convolutions faster than float32: CUDA GPUs
    with bf16 support; on a CPU with oneDNN bf16 kernels, whatever a one-off timing says.

    CPU features alone do not tell: bfloat16 took 0.69 against 0.57 s per 512² image on a
    2-core Intel Xeon with AVX-512 BF16, 0.24 against 0.41 s on a 2-core AMD EPYC with the
    same flags (``docs/bench_denoise.md``, speed section), and ran 1.8× faster on a CPU with
    AMX. So the CPU answer is measured once per process (:func:`_cpu_bfloat16_is_faster`).
    """
    import torch

    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        try:
            native = bool(
                torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported()
            )
        except (AttributeError, RuntimeError):
            return False
        return native and _cpu_bfloat16_is_faster(torch.get_num_threads())
    return False


@cache
def _cpu_bfloat16_is_faster(threads: int) -> bool:
    """Time a 3×3 convolution like the network's (32 channels, channels-last, 96², no grad) in
    float32 and under bfloat16 autocast, best of 3 after a warm-up; bfloat16 must win by 20 %
    (about 50 ms once per process and thread count)."""
    import torch

    conv = torch.nn.Conv2d(32, 32, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 32, 96, 96).contiguous(memory_format=torch.channels_last)

    def best(bf16: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i in range(4):
                t0 = time.perf_counter()
                for _ in range(3):
                    conv(x)
                if i:
                    times.append(time.perf_counter() - t0)
        return min(times)

    return best(True) < 0.8 * best(False)


def resolve_precision(precision, dev, *, preferred: bool = False):
    """The torch dtype to autocast the network to on ``dev`` (``None`` = float32).

    ``precision`` is one of :data:`PRECISIONS`. An explicit request is honoured where the
    device can run it at all (``ValueError`` for float16 on the CPU); with ``preferred=True``
    (a preset's choice, not the user's) a 16-bit type the device would only emulate, slower
    than float32, falls back to float32.
    """
    import torch

    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return None
    if precision == "float16":
        if dev.type == "cpu":
            if preferred:
                return None
            raise ValueError(
                "precision='float16' needs a GPU (cuda or mps); use 'bfloat16' on the CPU"
            )
        return torch.float16
    if preferred and not fast_bfloat16(dev):
        return None
    return torch.bfloat16
