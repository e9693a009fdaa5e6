"""The producer actor examples run as documented (in memory here; integration: kinesalite)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_within_an_actor_example(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLES / "producer_actor_within_actor.py"))["main"]
    assert main(["--in-memory"]) == 0
    out = capsys.readouterr().out
    assert out.count("Successfully sent ") == 10
    assert "10 sends answered, 0 failed" in out


def test_from_plain_code_example(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLES / "producer_actor_from_plain_code.py"))["main"]
    assert main(["--in-memory"]) == 0
    out = capsys.readouterr().out
    assert "sent " in out and " to shardId-" in out
    assert "asked 1000: 1000 sent, 0 failed" in out
