"""Device selection: ``"auto"`` picks CUDA, then Apple MPS, then the CPU."""
from __future__ import annotations

__all__ = ["resolve_device", "available_devices"]


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
        raise TypeError(f"device must be a string like 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
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
        raise ValueError(f"unknown device {device!r}; available: {', '.join(available_devices())}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; "
                             f"available: {', '.join(available_devices())}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist; available: {', '.join(available_devices())}")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device 'mps' requested but Apple MPS is not available; "
                             f"available: {', '.join(available_devices())}")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; available: {', '.join(available_devices())}")
    return dev
