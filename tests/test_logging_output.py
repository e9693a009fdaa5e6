"""Logging like a Python library (issue 13, item 7), each case in a fresh interpreter: the root
conftest sets the ``kinesis_actors`` logger to DEBUG for every test, a subprocess has no such
setting."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_USE_THE_LIBRARY = """
from kinesis_actors import KinesisProducer, ProducerEvent
from kinesis_actors.testing import InMemoryKinesis

stream = InMemoryKinesis(shard_count=2)
with KinesisProducer({"Region": "us-east-1"}, "logged", client=stream.client()) as producer:
    producer.add_user_record(ProducerEvent("k", b"x")).result(timeout=30)
"""


def run_python(setup: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(setup) + _USE_THE_LIBRARY
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_using_the_library_prints_nothing_when_nothing_is_configured() -> None:
    result = run_python("")
    assert result.stdout == ""
    assert result.stderr == ""  # INFO events stay below Python's last-resort WARNING


def test_basic_config_governs_the_library_events() -> None:
    setup = """
    import logging, sys
    logging.basicConfig(level=logging.{level}, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
    """
    at_info = run_python(setup.format(level="INFO")).stdout.splitlines()
    assert any(
        line.startswith("INFO kinesis_actors._producer.engine") and "producer started" in line
        for line in at_info
    ), at_info
    assert run_python(setup.format(level="WARNING")).stdout == ""


def test_structured_fields_survive_with_structlog_stdlib_integration() -> None:
    setup = """
    import logging, sys
    import structlog

    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
    )
    logging.basicConfig(handlers=[handler], level=logging.INFO)
    """
    events = [json.loads(line) for line in run_python(setup).stdout.splitlines()]
    started = [event for event in events if event["event"] == "producer started"]
    assert started, events
    assert started[0]["stream"] == "logged"
    assert started[0]["level"] == "info"
