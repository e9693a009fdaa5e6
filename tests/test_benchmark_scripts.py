"""Every benchmark script at least starts: its imports resolve and its options parse.

The benchmarks are not run by ``make test`` (they take minutes and need quiet cores), so a
module they import that moved would otherwise only show at the next ``make benchmarks``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("[!_]*.py"))


def test_there_are_benchmark_scripts() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_script_starts_and_describes_its_options(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: "), result.stdout[:500]
