"""The producer example runs as documented (in memory here; integration runs it on kinesalite)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "produce_with_engine.py"


def test_the_producer_example_puts_every_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert runpy.run_path(str(EXAMPLE))["main"](["--in-memory"]) == 0
    out = capsys.readouterr().out
    assert "rejected: partition key must be 1..256 Unicode characters, got 0" in out
    assert "put 20001 user records" in out
    assert "failed: 0" in out
