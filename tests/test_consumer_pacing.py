"""ReadPacer: one GetRecords per read interval, catch-up after full reads, throttle and idle backoff."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kinesis_actors._config import ConsumerConf, load_config
from kinesis_actors._consumer.pacing import MAX_THROTTLE_BACKOFF, ReadPacer
from kinesis_actors._errors import ConfigError


def _pacer(kcl: str = "", phase: Callable[[], float] | None = None) -> ReadPacer:
    text = f"kinesis {{ c {{ stream-name = s, kcl {{ {kcl} }} }} }}"
    return ReadPacer(ConsumerConf.from_config(load_config(text), "c").kcl, phase)


def test_defaults_read_once_a_second_whether_the_read_was_empty_or_not() -> None:
    pacer = _pacer()
    assert pacer.next_read_at() == float("-inf")  # the first read at once
    pacer.started(10.0)
    pacer.read(records=500, full=False)
    assert pacer.next_read_at() == pytest.approx(11.0)
    pacer.started(11.0)
    pacer.read(records=0, full=False)
    assert pacer.next_read_at() == pytest.approx(12.0)


def test_a_full_read_is_followed_within_the_share_of_the_read_limit() -> None:
    pacer = _pacer()  # readsPerSecondPerShard = 2
    pacer.started(10.0)
    pacer.read(records=10_000, full=True)
    assert pacer.next_read_at() == pytest.approx(10.5)
    pacer.started(10.5)
    pacer.read(records=20, full=False)  # caught up: back to the read interval
    assert pacer.next_read_at() == pytest.approx(11.5)


def test_catch_up_is_never_slower_than_the_read_interval() -> None:
    pacer = _pacer("idleTimeBetweenReadsInMillis = 100")
    pacer.started(0.0)
    pacer.read(records=10_000, full=True)
    assert pacer.interval == pytest.approx(0.1)


def test_throttles_back_off_exponentially_never_sooner_than_the_read_interval() -> None:
    pacer = _pacer("taskBackoffTimeMillis = 500")
    waits = [pacer.throttled() for _ in range(7)]
    assert waits == [1.0, 1.0, 2.0, 4.0, 8.0, MAX_THROTTLE_BACKOFF, MAX_THROTTLE_BACKOFF]
    pacer.read(records=1, full=False)
    assert pacer.throttled() == 1.0  # a success resets the backoff
    assert pacer.failed() == 1.0


def test_idle_backoff_is_off_by_default() -> None:
    pacer = _pacer()
    for _ in range(20):
        pacer.read(records=0, full=False)
    assert pacer.interval == 1.0


def test_idle_backoff_grows_after_empty_reads_and_snaps_back_at_the_first_record() -> None:
    pacer = _pacer("idleReadBackoffMaxMillis = 10000, idleReadBackoffAfterEmptyReads = 3")
    intervals = []
    for _ in range(9):
        pacer.read(records=0, full=False)
        intervals.append(pacer.interval)
    assert intervals == [1.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    pacer.read(records=1, full=False)
    assert pacer.interval == 1.0
    pacer.read(records=0, full=False)
    assert pacer.interval == 1.0  # counting starts again


def test_idle_millis_between_calls_is_the_scala_alias_of_the_read_interval() -> None:
    assert _pacer("idleMillisBetweenCalls = 1500").interval == 0.0
    pacer = _pacer("idleMillisBetweenCalls = 1500")
    pacer.read(records=0, full=False)
    assert pacer.interval == 1.5
    text = "kinesis { c { stream-name = s } }"
    assert ConsumerConf.from_config(load_config(text), "c").kcl.read_interval == 1.0


@pytest.mark.parametrize(
    "kcl",
    [
        "readsPerSecondPerShard = 6",
        "readsPerSecondPerShard = 0",
        "idleReadBackoffAfterEmptyReads = 0",
    ],
)
def test_out_of_range_pacing_keys_are_refused_with_their_path(kcl: str) -> None:
    key = kcl.split(" ", maxsplit=1)[0]
    with pytest.raises(ConfigError, match=f"kinesis.c.kcl.{key}"):
        _pacer(kcl)


def test_the_first_empty_read_shifts_the_phase_once_so_idle_shards_do_not_poll_in_step() -> None:
    pacer = _pacer(phase=lambda: 0.25)
    pacer.started(10.0)
    pacer.read(records=5, full=False)  # records: never delayed
    assert pacer.next_read_at() == pytest.approx(11.0)
    pacer.started(11.0)
    pacer.read(records=0, full=False)  # the first empty read: a quarter interval later, once
    assert pacer.next_read_at() == pytest.approx(12.25)
    pacer.started(12.25)
    pacer.read(records=0, full=False)
    assert pacer.next_read_at() == pytest.approx(13.25)
