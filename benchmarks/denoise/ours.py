"""Our denoiser as the benchmark calls it, and the rows of the presets."""

from __future__ import annotations

import numpy as np

from .common import Config, timed

#: set by ``--baselines-only``: a cheap stand-in replaces the denoiser (the cache-filling run)
BASELINES_ONLY = False


def ours(noisy: np.ndarray, cfg: Config, **kwargs):
    """Run ``denoise`` with float32 output (no uint8 rounding); returns (DenoiseResult, seconds)."""
    from napari_diffdenoise import denoise

    if BASELINES_ONLY:  # cache-filling run: a cheap stand-in keeps every section's code path
        from napari_diffdenoise.engine.denoise import DenoiseResult

        x = np.asarray(noisy, np.float32)
        return DenoiseResult(x, None, np.zeros_like(x), None), 0.0

    x = noisy.astype(np.float32) if noisy.dtype.kind == "f" else noisy
    kwargs = {"model": cfg.model, **kwargs}
    return timed(denoise, x, output_dtype=np.float32, return_details=True, **kwargs)


#: the `fast` preset (its bfloat16 network where the CPU has native bfloat16, else float32;
#: the header says whether this one has it)
FAST_ROW = ("ours blind (fast)", {"model": "fast"})


#: the `quality` preset's settings applied to ``--model`` (the preset uses the bundled weights)
def _quality_row() -> tuple[str, dict]:
    from napari_diffdenoise.model.registry import PRESETS

    q = PRESETS["quality"]
    weight = q.wiener if isinstance(q.wiener, str) else f"{q.wiener:g}"
    return (
        f"ours blind, ×{q.ensemble} ensemble + non-local {weight} (quality)",
        {"ensemble": q.ensemble, "wiener": q.wiener},
    )


QUALITY_ROW = _quality_row()
#: the self-ensemble alone (the quality preset without its non-local step)
ENSEMBLE_ROW = ("ours blind, ×8 ensemble, no non-local step", {"ensemble": 8, "wiener": 0.0})
#: our blind rows besides ``default``: the other presets
PRESET_ROWS = (FAST_ROW, ENSEMBLE_ROW, QUALITY_ROW)
