"""The documented REPL steps of the reliability test, typed into two real Python interpreters."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import pytest

from kinesis_actors.testing._local import LocalKinesis

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "reliability.rst"


def repl_blocks() -> list[list[str]]:
    """The two terminals of the reliability guide: its first two runs of ``>>>`` lines.

    A run ends at a comment line or at text that is not a ``>>>`` line; later runs (the guide's
    other REPL examples) are not the terminals.
    """
    section = GUIDE.read_text()
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in section.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>> "):
            current.append(stripped[4:])
        elif current and stripped:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks[:2]


class Interpreter:
    """``python -i`` fed line by line, its output collected as it comes."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-i", "-q", "-u"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.output.append(line)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while sum(bool(re.search(pattern, line)) for line in list(self.output)) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"{pattern!r} x{count} not seen; output:\n{''.join(self.output[-60:])}"
                )
            time.sleep(0.1)

    def close(self) -> None:
        self.type("exit()")
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)


def test_readme_has_the_two_terminals() -> None:
    consumer, producer = repl_blocks()
    assert consumer == [
        "import logging; logging.basicConfig(level=logging.INFO)  # show the test's progress",
        "from kinesis_actors.reliability import *",
        "consumer = SimpleKinesisConsumer.start(load_reliability_config())",
    ]
    assert producer[-1] == "producer.tell(Start())"


@pytest.mark.timeout(240)
def test_the_readme_repl_session_succeeds(local_kinesis: LocalKinesis, tmp_path: Path) -> None:
    stream = f"repl-{uuid.uuid4().hex[:8]}"
    kinesis = local_kinesis.kinesis_client()
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    (tmp_path / "application.conf").write_text(
        f"""
        kinesis {{
          application-name = "Repl-{uuid.uuid4().hex[:6]}"
          testProducer.stream-name = "{stream}"
          testConsumer.stream-name = "{stream}"
          test {{
            expectedNumberOfMessages = 4000
            consumer.pitstopCount = 1000
            consumer.finishQuietMillis = 5000
            producer.batchSize = 500
          }}
        }}
        """
    )
    env = {**os.environ, "KINESIS_ACTORS_CONFIG": str(tmp_path / "application.conf")}
    consumer_lines, producer_lines = repl_blocks()
    consumer = Interpreter(env, tmp_path)
    producer = None
    try:
        for line in consumer_lines:
            consumer.type(line)
        consumer.wait_for("Initializing record processor for shard", count=2)
        producer = Interpreter(env, tmp_path)
        for line in producer_lines:
            producer.type(line)
        consumer.wait_for(r"\*\*\*\* PIT STOP OK")
        consumer.wait_for("Test Succeeded: Found 4000 entries")
        producer.wait_for(r"\*\*\*\*Finished Producer\*\*\*\*")
        producer.type("producer.stop()")
        consumer.type("consumer.stop()")
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
        kinesis.delete_stream(StreamName=stream)
    assert consumer.process.returncode == 0
    assert not any("Traceback" in line for line in consumer.output), "".join(consumer.output)
