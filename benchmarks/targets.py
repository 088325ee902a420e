"""Targets that a benchmark's ``--check`` flag evaluates (benchmark-only code, not shipped).

A section of a benchmark returns ``Target`` objects next to its tables; with ``--check`` the
script prints one PASS/MISS line per target and exits 1 if any was missed. The thresholds are
the ones the docs state (``docs/bench_denoise.md``, ``docs/noise.md``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Target:
    """``value op threshold`` must hold; a NaN value is a miss."""

    name: str
    value: float
    threshold: float
    op: str = ">="
    unit: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {sorted(_OPS)}, got {self.op!r}")

    @property
    def met(self) -> bool:
        v = float(self.value)
        return not math.isnan(v) and bool(_OPS[self.op](v, float(self.threshold)))

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (
            f"- {'PASS' if self.met else 'MISS'}: {self.name}: {self.value:.4g}{unit} "
            f"(target {self.op} {self.threshold:.4g}{unit})"
        )


def check_report(
    targets: Iterable[Target], not_evaluated: Iterable[str] = ()
) -> tuple[list[str], int]:
    """Markdown lines listing every target as PASS/MISS, and the exit status: 1 if a target was
    missed or a section with targets could not run (``not_evaluated``), else 0."""
    targets = list(targets)
    skipped = list(not_evaluated)
    missed = [t for t in targets if not t.met]
    lines = ["## Targets (--check)", "", *(t.line() for t in targets)]
    lines += [f"- NOT EVALUATED: {s}" for s in skipped]
    lines += [
        "",
        f"{len(targets) - len(missed)} of {len(targets)} targets met"
        + (f"; {len(skipped)} section(s) not evaluated" if skipped else "")
        + ".",
    ]
    return lines, int(bool(missed or skipped))
