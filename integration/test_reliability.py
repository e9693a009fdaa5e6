"""The reliability run at CI size: 20 000 integers, 2 shards, 2 consumer processes, each fault."""

from __future__ import annotations

import io

import pytest

from kinesis_actors.reliability._chaos import FAULTS
from kinesis_actors.reliability._run import RunOptions, run_test
from kinesis_actors.testing._local import LocalKinesis

MESSAGES = 20_000


@pytest.mark.parametrize(
    "faults", [(), *((fault,) for fault in FAULTS)], ids=lambda f: "+".join(f) or "plain"
)
def test_nothing_is_lost(local_kinesis: LocalKinesis, faults: tuple[str, ...]) -> None:
    progress = io.StringIO()
    report = run_test(
        RunOptions(
            messages=MESSAGES,
            shards=2,
            consumers=2,
            faults=faults,
            local=False,  # the session's servers, through the environment
            rate=4000,
            timeout=150,
            progress=progress,
        )
    )
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
