"""leaseTableMustExist on dynalite: start() fails fast naming the table, and creates nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kinesis_actors import KinesisConsumer, load_config
from kinesis_actors._errors import LeaseTableMissingError


def test_a_lease_table_that_must_exist_fails_start(
    make_stream: Callable[..., str], dynamodb: Any
) -> None:
    stream = make_stream(1)
    application = f"app-{uuid.uuid4().hex[:6]}"
    config = load_config(
        f"""
        kinesis {{
          application-name = "{application}"
          c {{ stream-name = "{stream}", worker.gracefulShutdownHook = false,
               kcl.leaseTableMustExist = true }}
        }}
        """
    )
    consumer = KinesisConsumer(lambda event: None, config, "c")
    with pytest.raises(LeaseTableMissingError, match=f"{application}-{stream}"):
        consumer.start().result(timeout=60)
    consumer.stop()
    tables = dynamodb.list_tables()["TableNames"]
    assert not [t for t in tables if t.startswith(application)]
