"""The sections of ``bench_denoise.py``, one module each, and their common code.

Each section module has ``TITLE`` and ``run(cfg) -> Outcome`` (markdown lines and the targets
that ``--check`` evaluates). ``SECTIONS`` lists them in the report's order.
"""

from __future__ import annotations

from . import gaussian, impulse, pairs, poisson, speed, steps, textures, variant, wiener

SECTIONS = {
    "gaussian": gaussian,
    "poisson": poisson,
    "pairs": pairs,
    "impulse": impulse,
    "variant": variant,
    "textures": textures,
    "wiener": wiener,
    "steps": steps,
    "speed": speed,
}
