"""Every Python code block of README.rst and docs/*.rst runs, against the local servers, and succeeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinesis_actors.testing._local import LocalKinesis

ROOT = Path(__file__).resolve().parent.parent
#: The documents whose Python blocks are run: the README and every page of the docs.
DOCUMENTS = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]
_BLOCK = re.compile(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)")


def python_blocks() -> list[tuple[str, str]]:
    """(where, code) of every ``.. code-block:: python`` in the documents."""
    blocks = []
    for document in DOCUMENTS:
        for number, match in enumerate(_BLOCK.finditer(document.read_text()), start=1):
            lines = [line[4:] for line in match.group(1).splitlines()]
            blocks.append((f"{document.name}#{number}", "\n".join(lines).strip() + "\n"))
    return blocks


def test_the_readme_renders_without_warnings() -> None:
    import docutils.core

    docutils.core.publish_string(
        (ROOT / "README.rst").read_text(),
        writer="null",
        settings_overrides={"halt_level": 2, "report_level": 2},
    )


@pytest.fixture(scope="module")
def application_dir(
    local_kinesis: LocalKinesis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """An application.conf whose producer and consumer names are the README's, on a real stream."""
    folder = tmp_path_factory.mktemp("readme")
    stream = f"orders-{uuid.uuid4().hex[:8]}"
    kinesis = local_kinesis.kinesis_client()
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    (folder / "application.conf").write_text(
        f"""
        kinesis {{
          application-name = "Readme-{uuid.uuid4().hex[:6]}"
          orders-producer {{ stream-name = "{stream}" }}
          testProducer {{ stream-name = "{stream}" }}
          orders-consumer {{
            stream-name = "{stream}"
            worker {{ gracefulShutdownHook = false, shutdownTimeoutSeconds = 10 }}
            kcl {{ failoverTimeMillis = 2000, idleTimeBetweenReadsInMillis = 100 }}
          }}
        }}
        """
    )
    yield folder
    kinesis.delete_stream(StreamName=stream)


@pytest.mark.parametrize(("where", "block"), python_blocks(), ids=[w for w, _ in python_blocks()])
def test_documented_block_runs(
    where: str, block: str, application_dir: Path, local_kinesis: LocalKinesis
) -> None:
    env = {**os.environ, **local_kinesis.environ()}
    env.pop("KINESIS_ACTORS_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", block],
        check=False,
        cwd=application_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{where}\n{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
