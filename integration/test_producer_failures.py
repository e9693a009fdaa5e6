"""The producer side against kinesalite when things go wrong (issue 12).

A stream that does not exist fails the first record at once with its error code, in a
handful of log lines; a script that forgets ``stop()`` exits on its own, and what it buffered
is in the stream (read back with boto3).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from integration.test_producer_actor import read_back
from kinesis_actors._errors import UserRecordFailedError
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer import KinesisProducer
from kinesis_actors.testing._local import LocalKinesis

EXIT_GUARD = 90.0  # seconds: a hang guard, not a timing assertion


def test_a_missing_stream_fails_the_first_record_fast_with_its_code(
    local_kinesis: LocalKinesis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kinesis_actors")
    with KinesisProducer({"RecordTtl": 120_000}, "no-such-stream") as producer:
        futures = [producer.add_user_record(ProducerEvent(f"k{i}", b"x")) for i in range(50)]
        # Retrying until the TTL would take two minutes; the guard is far below that.
        errors = [future.exception(timeout=30) for future in futures]
    for error in errors:
        assert isinstance(error, UserRecordFailedError)
        assert "ResourceNotFoundException" in str(error)
        assert error.result.attempts[-1].error_code == "ResourceNotFoundException"
    producer_lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(producer_lines) <= 6, [r.getMessage()[:200] for r in producer_lines]
    assert all(len(r.getMessage()) < 2048 for r in caplog.records)


_ENGINE_SCRIPT = """
    from kinesis_actors import KinesisProducer, ProducerEvent
    producer = KinesisProducer({{"RecordMaxBufferedTime": 60000, "RateLimit": 100000}}, {stream!r})
    for i in range(200):
        producer.add_user_record(ProducerEvent(f"k{{i}}", f"forgotten-{{i}}"))
    print("added", flush=True)
    # no stop(): the records wait up to a minute in the buffer, the exit hook must flush them
"""

_ACTOR_SCRIPT = """
    from kinesis_actors import KinesisProducerActor, ProducerEvent, load_config
    from kinesis_actors.messages import Send
    stream = {stream!r}
    config = load_config(
        'kinesis {{ p {{ stream-name = "' + stream + '", '
        'kpl {{ RecordMaxBufferedTime = 60000, RateLimit = 100000 }} }} }}'
    )
    producer = KinesisProducerActor.start(config["kinesis"], "p")
    for i in range(200):
        producer.tell(Send(ProducerEvent(f"k{{i}}", f"forgotten-{{i}}")))
    print("added", flush=True)
    # no stop(): Pykka's threads would hold the interpreter forever; the library's do not
"""


@pytest.mark.parametrize("script", [_ENGINE_SCRIPT, _ACTOR_SCRIPT], ids=["engine", "actor"])
def test_a_script_that_forgets_stop_exits_and_its_records_are_in_the_stream(
    local_kinesis: LocalKinesis, make_stream: Callable[..., str], kinesis: Any, script: str
) -> None:
    stream = make_stream(2)
    code = textwrap.dedent(script.format(stream=stream))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=EXIT_GUARD,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "added" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "interpreter exit" in line]
    assert len(warnings) == 1, done.stderr[-3000:]
    stored = sorted(data for _, _, data in read_back(kinesis, stream))
    assert stored == sorted(f"forgotten-{i}".encode() for i in range(200))
