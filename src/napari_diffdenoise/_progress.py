"""Driving the core's progress generators.

Long-running work in the core is a generator that yields progress and returns its result (see
``docs/design/architecture.md``). :func:`run_to_end` is the one way to drive such a generator
synchronously: the public functions use it, and a widget wraps the same generator in a
``thread_worker`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["relay", "run_to_end"]

R = TypeVar("R")


def run_to_end(steps: Generator[Any, Any, R], on_step: Callable[[Any], Any] | None = None) -> R:
    """Drive ``steps`` to its end and return its return value.

    Each yielded item is passed to ``on_step`` (when given) before the next one is requested,
    so a callback that raises stops the work between two steps.
    """
    while True:
        try:
            item = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(item)


def relay(
    steps: Generator[Any, Any, R], transform: Callable[[Any], Any]
) -> Generator[Any, None, R]:
    """Re-yield what ``steps`` yields, each item passed through ``transform``; returns the
    value ``steps`` returns (for ``yield from`` inside a larger progress generator)."""
    while True:
        try:
            item = next(steps)
        except StopIteration as stop:
            return stop.value
        yield transform(item)
