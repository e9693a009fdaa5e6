"""A missing stream or a deleted lease table is an error the application sees (issue 13, 3 and 5).

In-process consumers on kinesalite + dynalite with short lease timings (failover 1 s).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from integration.test_consumer import consumer, put, wait_for
from kinesis_actors import LeaseTableMissingError, StreamNotFoundError
from kinesis_actors._models import ConsumerEvent


def table_names(dynamodb: Any) -> set[str]:
    return set(dynamodb.list_tables()["TableNames"])


def test_consumer_on_a_missing_stream_fails_before_creating_a_table(dynamodb: Any) -> None:
    app = f"app-{uuid.uuid4().hex[:6]}"
    stream = f"no-such-stream-{uuid.uuid4().hex[:6]}"
    before = table_names(dynamodb)
    future = consumer(stream, app, lambda event: None).start()
    with pytest.raises(StreamNotFoundError, match=stream) as failed:
        future.result(timeout=30)
    assert failed.value.stream == stream
    assert f"{app}-{stream}" not in table_names(dynamodb)
    assert table_names(dynamodb) - before == set()


def test_deleted_lease_table_stops_the_consumer_with_a_typed_error(
    kinesis: Any,
    dynamodb: Any,
    make_stream: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = make_stream(2)
    app = f"app-{uuid.uuid4().hex[:6]}"
    table = f"{app}-{stream}"
    seen: list[str] = []

    def process(event: ConsumerEvent) -> None:
        seen.append(event.payload_as_string())

    running = consumer(stream, app, process)
    future = running.start()
    try:
        put(kinesis, stream, 10, "before")
        wait_for(lambda: len(seen) >= 10, 30, "records before the deletion")
        with caplog.at_level(logging.WARNING, logger="kinesis_actors"):
            dynamodb.delete_table(TableName=table)
            with pytest.raises(LeaseTableMissingError, match=table) as failed:
                future.result(timeout=30)  # failover 1 s: fails after about 2 s
        assert failed.value.table == table
        processed = len(seen)
        put(kinesis, stream, 10, "after")
        time.sleep(0.5)
        assert len(seen) == processed  # stopped processing
        assert table not in table_names(dynamodb)  # not recreated
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
    finally:
        running.stop(timeout=10)
