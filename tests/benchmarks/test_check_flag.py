"""The benchmarks' ``--check`` flag: targets evaluated, a miss makes the run exit non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from targets import Target, check_report  # noqa: E402


def test_targets_pass_and_miss():
    assert Target("gain", 2.5, 2.0).met
    assert not Target("gain", 1.5, 2.0).met
    assert Target("error", 0.04, 0.05, op="<=").met
    assert not Target("nan", float("nan"), 0.0).met
    with pytest.raises(ValueError, match="op"):
        Target("bad", 1.0, 1.0, op="==")


def test_check_report_exit_status():
    lines, status = check_report([Target("a", 3, 2), Target("b", 1, 2)])
    assert status == 1
    assert any(line.startswith("- MISS: b") for line in lines)
    assert "1 of 2 targets met." in lines
    assert check_report([Target("a", 3, 2)])[1] == 0
    assert check_report([Target("a", 3, 2)], not_evaluated=["pairs: no data"])[1] == 1


@pytest.mark.slow
def test_bench_denoise_check_runs_a_section(shared_data, tmp_path):
    out = tmp_path / "bench.md"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_denoise.py",
            "--quick",
            "--sections",
            "impulse",
            "--crop",
            "64",
            "--check",
            "--no-cache",
            "--data",
            str(shared_data),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2 of 2 targets met." in result.stdout
    assert "adaptive median" in out.read_text()
