"""The reliability run at CI size: 20 000 integers, 2 shards, 2 consumer processes, each fault."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import reliability_run
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._leases.membership import membership_table_name
from kinesis_actors.reliability._chaos import FAULTS
from kinesis_actors.testing._local import LocalKinesis

MESSAGES = 20_000


@pytest.mark.parametrize(
    "faults", [(), *((fault,) for fault in FAULTS)], ids=lambda f: "+".join(f) or "plain"
)
def test_nothing_is_lost(local_kinesis: LocalKinesis, faults: tuple[str, ...]) -> None:
    progress = io.StringIO()
    report = reliability_run(MESSAGES, rate=4000, timeout=150, faults=faults, progress=progress)
    table = report.table()
    assert report.error is None, table
    assert report.verdict is not None
    assert (report.sent, report.confirmed, report.failed, report.unconfirmed) == (
        MESSAGES,
        MESSAGES,
        0,
        0,
    ), table
    assert report.verdict.unique == MESSAGES, table
    assert report.verdict.lost == 0, table
    assert report.verdict.unexpected == 0, table
    assert report.succeeded, table
    assert "SUCCEEDED" in table
    assert progress.getvalue().count("sent") >= 1
    if "throttle" in faults:
        assert sum(report.injected.values()) > 0, table
    if not faults:
        assert report.verdict.duplicates == 0, table


def test_a_lease_table_that_existed_before_the_run_outlives_its_cleanup(
    local_kinesis: LocalKinesis, dynamodb: Any, unique_name: str, tmp_path: Path
) -> None:
    table = f"{unique_name}-leases"
    DynamoDBLeaseTable(dynamodb, table).create_if_missing()
    config = tmp_path / "existing-table.conf"
    config.write_text(f'kinesis.testConsumer.kcl.tableName = "{table}"\n')
    try:
        report = reliability_run(200, rate=1000, timeout=120, shards=1, consumers=1, config=config)
        assert report.succeeded, report.table()
        dynamodb.describe_table(TableName=table)  # kept: it was there before the run
        with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
            dynamodb.describe_table(TableName=membership_table_name(table))  # the run's own
    finally:
        dynamodb.delete_table(TableName=table)
