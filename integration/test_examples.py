"""Every script in examples/ runs against the local servers and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kinesis_actors.testing._local import LocalKinesis

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
VARIANTS = [
    (path, args)
    for path in EXAMPLES
    for args in (
        [["--processor", "function"], ["--processor", "actor"]]
        if path.name == "consume_orders.py"
        else [[]]
    )
]


@pytest.mark.parametrize(
    ("example", "args"), VARIANTS, ids=lambda v: v.name if isinstance(v, Path) else " ".join(v)
)
def test_example_runs_against_local_servers(
    example: Path, args: list[str], local_kinesis: LocalKinesis
) -> None:
    result = subprocess.run(
        [sys.executable, str(example), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **local_kinesis.environ()},
    )
    assert result.returncode == 0, (
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert _uncaught_errors(result.stderr) == [], result.stderr[-3000:]


#: The failure the consumer example raises on purpose (its processor's "payment service busy"),
#: logged by the library with its traceback; any other traceback is a bug.
EXPECTED_LOGGED_ERROR = "RuntimeError: payment service busy"


def _uncaught_errors(stderr: str) -> list[str]:
    """The last line of every traceback in ``stderr`` that is not the expected logged one."""
    errors: list[str] = []
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            end = next(
                (text for text in lines[index + 1 :] if text and not text.startswith(" ")),
                "<no exception line>",
            )
            if end != EXPECTED_LOGGED_ERROR:
                errors.append(end)
    return errors
