"""The KPL pipeline driven by hand: fake clock, in-memory stream, injected PutRecords outcomes.

Covers aggregation per predicted shard, the collector's limits, deadlines, the per-shard limiter,
and the retrier's rules (throttles, whole-call failures, count mismatch, wrong shard, expiry).
"""

from __future__ import annotations

import base64
import math
from concurrent.futures import InvalidStateError
from typing import Any

import pytest
import structlog
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from kinesis_actors._aggregation import MAX_HASH_KEY, decode, hash_key
from kinesis_actors._config import KplConf
from kinesis_actors._errors import UserRecordFailedError
from kinesis_actors._models import UserRecordResult
from kinesis_actors._producer.futures import RecordFuture
from kinesis_actors._producer.pipeline import SHARD_FLUSH_BYTES, Pipeline, PutRequest
from kinesis_actors._producer.records import UserRecord, validate
from kinesis_actors._producer.retrier import THROTTLED
from kinesis_actors._producer.shard_map import ShardMap, list_shards
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis


class Harness:
    """A pipeline on a fake clock, fed like the engine feeds it."""

    def __init__(self, shard_count: int = 4, **kpl: Any) -> None:
        self.now = 1000.0
        self.kinesis = InMemoryKinesis(shard_count)
        self.kpl = KplConf.from_config(kpl)
        self.shard_map = ShardMap()
        self.shard_map.begin_update()
        self.shard_map.update(list_shards(self.kinesis, "s"), self.now)
        self.pipeline = Pipeline(self.kpl, self.shard_map, structlog.get_logger())

    def record(self, key: str, data: bytes = b"x", ehk: str | None = None) -> UserRecord:
        key_hash, size = validate(key, ehk, data, self.kpl.max_user_record_size)
        deadline = min(self.kpl.record_max_buffered_time, self.kpl.record_ttl)
        return UserRecord(
            key, ehk, data, key_hash, size, RecordFuture(), self.now,
            self.now + deadline, self.now + self.kpl.record_ttl,
        )  # fmt: skip

    def add(self, key: str, data: bytes = b"x", ehk: str | None = None) -> RecordFuture:
        record = self.record(key, data, ehk)
        self.pipeline.accept([record], self.now)
        return record.future

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def requests(self, *, flush: bool = False) -> list[PutRequest]:
        self.pipeline.poll(self.now, flush=flush)
        return self.pipeline.take_requests(1000)

    def answer(self, request: PutRequest, response: dict[str, Any] | None = None) -> None:
        """Put ``request`` in the stream (or answer with ``response``) and judge it."""
        if response is None:
            response = self.kinesis.put_records(StreamName="s", Records=request.entries)
        self.pipeline.on_response(request, response, None, self.now, self.now + 0.01, self.now)

    def fail_call(self, request: PutRequest, error: BaseException) -> None:
        self.pipeline.on_response(request, None, error, self.now, self.now + 0.01, self.now)

    def drain(self, rounds: int = 100) -> None:
        """Send and answer until nothing is buffered, moving time on as deadlines require."""
        for _ in range(rounds):
            for request in self.requests():
                self.answer(request)
            wake = self.pipeline.next_wakeup(self.now)
            if wake is None and self.pipeline.pending == 0:
                return
            self.now = max(self.now, wake if wake is not None else self.now) + 0.001
        raise AssertionError("pipeline did not drain")


def key_for_shard(harness: Harness, shard_index: int, n: int = 0) -> str:
    """The n-th partition key (of "k0", "k1", ...) that hashes into the given shard."""
    shard_id = harness.kinesis.open_shards[shard_index]
    found = [
        k
        for k in (f"k{i}" for i in range(10_000))
        if harness.shard_map.shard_for(hash_key(k)) == shard_id
    ]
    return found[n]


def outcome(future: RecordFuture) -> UserRecordResult:
    assert future.done()
    return future.result(0)


def failure(future: RecordFuture) -> UserRecordResult:
    error = future.exception(0)
    assert isinstance(error, UserRecordFailedError)
    return error.result


# -- aggregation ----------------------------------------------------------------------------------


def test_records_for_one_shard_share_an_aggregate_with_key_a_and_first_members_hash_key() -> None:
    h = Harness()
    keys = [key_for_shard(h, 1, n) for n in range(3)]
    futures = [h.add(k, f"payload {k}".encode()) for k in keys]
    h.advance(0.2)
    (request,) = h.requests()
    (entry,) = request.entries
    assert entry["PartitionKey"] == "a"
    assert entry["ExplicitHashKey"] == str(hash_key(keys[0]))
    members = decode(entry["Data"])
    assert members is not None
    assert [(m.partition_key, m.data) for m in members] == [
        (k, f"payload {k}".encode()) for k in keys
    ]
    h.answer(request)
    results = [outcome(f) for f in futures]
    assert {r.shard_id for r in results} == {h.kinesis.open_shards[1]}
    assert len({r.sequence_number for r in results}) == 1  # one Kinesis record


def test_aws_kinesis_agg_reads_our_aggregates() -> None:
    h = Harness(1)
    sent = [("ключ-1", None, b""), ("k2", "12345", b"\x00\xff" * 10), ("k3", None, b"z" * 1000)]
    for key, ehk, data in sent:
        h.add(key, data, ehk)
    h.advance(0.2)
    (request,) = h.requests()
    entry = request.entries[0]
    boto3_shaped = [{
        "SequenceNumber": "1", "ApproximateArrivalTimestamp": 0, "Data": entry["Data"],
        "PartitionKey": entry["PartitionKey"], "ExplicitHashKey": entry["ExplicitHashKey"],
    }]  # fmt: skip
    records = [r["kinesis"] for r in iter_deaggregate_records(boto3_shaped, data_format="Boto3")]
    assert [(r["partitionKey"], base64.b64decode(r["data"])) for r in records] == [
        (key, data) for key, _, data in sent
    ]
    # aws-kinesis-agg reads a member without an explicit hash key as table entry 0; ours has one.
    assert records[1]["explicitHashKey"] == "12345"


def test_a_lone_record_goes_unwrapped_with_its_hash_key() -> None:
    h = Harness()
    future = h.add("only", b"raw bytes")
    h.advance(0.2)
    (request,) = h.requests()
    assert request.entries == [
        {"Data": b"raw bytes", "PartitionKey": "only", "ExplicitHashKey": str(hash_key("only"))}
    ]
    h.answer(request)
    assert outcome(future).successful


def test_records_of_different_shards_are_never_aggregated_together() -> None:
    h = Harness(4)
    for n in range(40):
        h.add(f"key-{n}")
    h.advance(0.2)
    (request,) = h.requests()
    assert len(request.records) == 4
    for record in request.records:
        shards = {h.shard_map.shard_for(r.hash_key) for r in record.records}
        assert shards == {record.shard_id}


def test_aggregation_max_count_closes_an_aggregate() -> None:
    h = Harness(1, AggregationMaxCount=3)
    for n in range(7):
        h.add(f"k{n}")
    h.advance(0.2)
    (request,) = h.requests()
    assert [len(r.records) for r in request.records] == [3, 3, 1]


def test_aggregation_max_size_is_never_exceeded() -> None:
    h = Harness(1, AggregationMaxSize=1024)
    for n in range(50):
        h.add(f"k{n}", bytes(90 + n))
    h.advance(0.2)
    (request,) = h.requests()
    sizes = [len(e["Data"]) for e in request.entries]
    assert all(size <= 1024 for size in sizes)
    assert max(sizes) > 1024 - 200  # and aggregates are filled
    assert sum(len(r.records) for r in request.records) == 50


def test_a_record_too_big_to_aggregate_is_sent_alone_between_aggregates() -> None:
    h = Harness(1, AggregationMaxSize=1024)
    h.add("small-1")
    h.add("big", bytes(2000))
    h.add("small-2")
    h.advance(0.2)
    (request,) = h.requests()
    assert [(e["PartitionKey"], len(e["Data"])) for e in request.entries] == [
        ("big", 2000),
        ("a", len(request.entries[1]["Data"])),
    ]


def test_aggregation_disabled_sends_every_record_alone_but_still_predicts_its_shard() -> None:
    h = Harness(2, AggregationEnabled=False)
    for n in range(10):
        h.add(f"k{n}")
    h.advance(0.2)
    (request,) = h.requests()
    assert len(request.records) == 10
    assert all(r.shard_id == h.shard_map.shard_for(r.records[0].hash_key) for r in request.records)


# -- collection -----------------------------------------------------------------------------------


def test_collection_max_count_splits_requests() -> None:
    h = Harness(1, AggregationEnabled=False, CollectionMaxCount=4)
    for n in range(10):
        h.add(f"k{n}")
    h.advance(0.2)
    assert [len(r.records) for r in h.requests()] == [4, 4, 2]


def test_collection_max_size_counts_partition_keys() -> None:
    # 52224 is the smallest CollectionMaxSize; each record is 1000 data + 24 key bytes.
    h = Harness(1, AggregationEnabled=False, CollectionMaxSize=52224, RateLimit=100000)
    key = "k" * 24
    for _ in range(60):
        h.add(key, bytes(1000))
    h.advance(0.2)
    requests = h.requests()
    assert [len(r.records) for r in requests] == [51, 9]  # 51 * 1024 = 52224, the 52nd breaks it
    assert sum(r.size for r in requests[0].records) == 52224


def test_a_shard_with_256_kib_buffered_sends_at_once() -> None:
    h = Harness(2, AggregationEnabled=False, RateLimit=100000)
    key = key_for_shard(h, 0)
    for _ in range(SHARD_FLUSH_BYTES // 10_000):
        h.add(key, bytes(10_000 - len(key)))
    assert h.requests() == []
    h.add(key, bytes(10_000))
    (request,) = h.requests()  # before any deadline
    assert len(request.records) == SHARD_FLUSH_BYTES // 10_000 + 1


def test_records_wait_until_their_deadline() -> None:
    h = Harness(1, RecordMaxBufferedTime=100)
    h.add("k")
    assert h.requests() == []
    h.advance(0.099)
    assert h.requests() == []
    # An aggregate gets min(50 ms, 20 % of the buffer time) more in the collector, as in the KPL.
    assert h.pipeline.next_wakeup(h.now) == pytest.approx(1000.1)
    h.advance(0.002)
    assert len(h.requests()) == 1


def test_flush_sends_everything_at_once() -> None:
    h = Harness(4)
    for n in range(20):
        h.add(f"k{n}")
    (request,) = h.requests(flush=True)
    assert sum(len(r.records) for r in request.records) == 20


def test_take_requests_respects_the_free_connections() -> None:
    h = Harness(1, AggregationEnabled=False, CollectionMaxCount=1)
    for n in range(5):
        h.add(f"k{n}")
    h.pipeline.poll(h.now, flush=True)
    assert len(h.pipeline.take_requests(2)) == 2
    assert len(h.pipeline.take_requests(10)) == 3
    assert h.pipeline.stats.put_records_calls == 5


# -- limiter --------------------------------------------------------------------------------------


def test_the_shard_limiter_paces_records_at_the_rate_limit() -> None:
    # RateLimit 50 %: 500 records/s after the initial full bucket of 1000.
    h = Harness(1, AggregationEnabled=False, RateLimit=50, CollectionMaxCount=500)
    for n in range(1500):
        h.add(f"k{n}")
    h.advance(0.2)
    sent = sum(len(r.records) for r in h.requests())
    assert sent == 1000 + 100  # the full bucket, plus 0.2 s of refill
    h.advance(0.5)
    h.pipeline.poll(h.now)
    assert h.pipeline.next_wakeup(h.now) is not None
    sent += sum(len(r.records) for r in h.requests())
    assert sent == 1000 + 350


def test_records_expiring_in_the_limiter_fail_as_expired() -> None:
    h = Harness(1, AggregationEnabled=False, RateLimit=1, RecordTtl=1000)
    futures = [h.add(f"k{n}") for n in range(1100)]
    h.advance(0.1)
    h.requests()
    h.advance(1.0)
    h.requests()
    expired = [f for f in futures if f.done() and f.exception(0) is not None]
    assert len(expired) >= 90
    result = failure(expired[0])
    assert result.attempts[-1].error_code == "Expired"
    assert "limiter" in (result.attempts[-1].error_message or "")
    assert h.pipeline.stats.user_records_expired == len(expired)


# -- retries --------------------------------------------------------------------------------------


def _throttle(request: PutRequest, failing: set[int]) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    for index in range(len(request.records)):
        if index in failing:
            records.append({"ErrorCode": THROTTLED, "ErrorMessage": "Rate exceeded for shard"})
        else:
            records.append(
                {"ShardId": request.records[index].shard_id, "SequenceNumber": f"{index + 1}"}
            )
    return {"FailedRecordCount": len(failing), "Records": records}


def test_throttled_entries_are_retried_and_every_attempt_is_recorded() -> None:
    h = Harness(1, AggregationEnabled=False)
    futures = [h.add(f"k{n}") for n in range(3)]
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(request, _throttle(request, {1}))
    assert outcome(futures[0]).attempts[-1].success
    assert not futures[1].done()
    assert h.pipeline.stats.throttled_records == 1
    h.advance(0.051)  # retries go back in with deadline now + RecordMaxBufferedTime / 2
    (retry,) = h.requests()
    assert [r.records[0].partition_key for r in retry.records] == ["k1"]
    h.answer(retry)
    result = outcome(futures[1])
    assert [a.error_code for a in result.attempts] == [THROTTLED, None]
    first, second = result.attempts
    assert first.delay == pytest.approx(0.2) and first.duration == pytest.approx(0.01)
    assert second.delay == pytest.approx(0.041)  # from the end of the first attempt
    assert not first.success and second.success
    assert h.pipeline.stats.user_record_retries == 1


def test_retries_stop_at_the_ttl_with_expired() -> None:
    h = Harness(1, AggregationEnabled=False, RecordTtl=1000)
    future = h.add("k")
    for _ in range(30):
        h.advance(0.1)
        for request in h.requests():
            h.answer(request, _throttle(request, {0}))
        if future.done():
            break
    result = failure(future)
    assert result.attempts[-1].error_code == "Expired"
    assert all(a.error_code == THROTTLED for a in result.attempts[:-1])
    assert len(result.attempts) >= 10
    assert not result.successful and result.shard_id is None
    assert h.pipeline.pending == 0


def test_fail_if_throttled_fails_at_once() -> None:
    h = Harness(1, AggregationEnabled=False, FailIfThrottled=True)
    future = h.add("k")
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(request, _throttle(request, {0}))
    result = failure(future)
    assert [a.error_code for a in result.attempts] == [THROTTLED]


def test_internal_failure_entries_are_retried_even_with_fail_if_throttled() -> None:
    h = Harness(1, AggregationEnabled=False, FailIfThrottled=True)
    future = h.add("k")
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(
        request,
        {
            "FailedRecordCount": 1,
            "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
        },
    )
    assert not future.done()
    h.drain()
    assert [a.error_code for a in outcome(future).attempts] == ["InternalFailure", None]


def test_a_failed_call_retries_every_record_of_every_aggregate() -> None:
    import botocore.exceptions

    h = Harness(4)
    futures = [h.add(f"k{n}") for n in range(40)]
    h.advance(0.2)
    (request,) = h.requests()
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "PutRecords"
    )
    h.fail_call(request, error)
    assert h.pipeline.stats.put_records_call_errors == 1
    h.drain()
    for future in futures:
        attempts = outcome(future).attempts
        assert (attempts[0].error_code, attempts[0].error_message) == (
            "ServiceUnavailable",
            "try later",
        )
        assert attempts[1].success


def test_a_connection_error_is_named_by_its_exception() -> None:
    import botocore.exceptions

    h = Harness(1, FailIfThrottled=True)
    future = h.add("k")
    h.advance(0.2)
    (request,) = h.requests()
    h.fail_call(request, botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    h.drain()
    assert outcome(future).attempts[0].error_code == "EndpointConnectionError"


def test_a_response_count_mismatch_fails_the_records() -> None:
    h = Harness(1, AggregationEnabled=False)
    futures = [h.add(f"k{n}") for n in range(2)]
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(
        request,
        {
            "FailedRecordCount": 0,
            "Records": [{"ShardId": "shardId-000000000000", "SequenceNumber": "1"}],
        },
    )
    for future in futures:
        assert failure(future).attempts[-1].error_code == "Record Count Mismatch"


def test_members_misrouted_after_a_reshard_are_retried_as_wrong_shard() -> None:
    h = Harness(1)
    futures = [h.add(f"k{n}") for n in range(50)]
    h.kinesis.reshard(2)  # the stream changed; our map still says one shard
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(request)
    # Some members fall outside the child shard the aggregate landed on, so consumers drop the
    # whole aggregate: every member is retried, the first one (which routed it) too.
    retried = [f for f in futures if not f.done()]
    assert len(retried) == 50
    assert h.pipeline.stats.wrong_shard_records == 50
    assert h.shard_map.refresh_due(h.now)  # invalidated
    h.shard_map.begin_update()
    h.shard_map.update(list_shards(h.kinesis, "s"), h.now)
    h.drain()
    for future in retried:
        result = outcome(future)
        # Retries re-enter aggregation at once, with the map of that moment (as in the KPL).
        assert result.attempts[0].error_code == "Wrong Shard"
        assert result.attempts[-1].success
    # Everything ended up where its hash key belongs.
    for future, key in zip(futures, [f"k{n}" for n in range(50)], strict=True):
        assert outcome(future).shard_id == h.shard_map.shard_for(hash_key(key))


def test_a_put_to_a_known_child_shard_still_succeeds_and_refreshes_the_map() -> None:
    h = Harness(1, AggregationEnabled=False)
    future = h.add("k")
    h.kinesis.reshard(1)  # same range, new shard id
    h.advance(0.2)
    (request,) = h.requests()
    h.answer(request)
    assert outcome(future).shard_id == "shardId-000000000001"
    assert h.shard_map.refresh_due(h.now)


# -- shard map states -----------------------------------------------------------------------------


def test_records_wait_for_the_first_shard_map_up_to_their_deadline() -> None:
    h = Harness(2)
    h.shard_map = ShardMap()
    h.pipeline = Pipeline(h.kpl, h.shard_map, structlog.get_logger())
    h.add("k1")
    h.add("k2")
    assert h.requests() == []
    h.shard_map.begin_update()
    h.shard_map.update(list_shards(h.kinesis, "s"), h.now)
    h.advance(0.2)
    (request,) = h.requests()
    assert all(r.shard_id is not None for r in request.records)


def test_without_a_shard_map_records_go_unaggregated_after_their_deadline() -> None:
    h = Harness(2)
    h.shard_map = ShardMap()
    h.pipeline = Pipeline(h.kpl, h.shard_map, structlog.get_logger())
    futures = [h.add(f"k{n}") for n in range(3)]
    h.advance(0.11)
    (request,) = h.requests()
    assert [r.shard_id for r in request.records] == [None, None, None]
    h.answer(request)
    assert all(outcome(f).successful for f in futures)


# -- bookkeeping ----------------------------------------------------------------------------------


def test_every_future_resolves_exactly_once_and_pending_returns_to_zero() -> None:
    h = Harness(3, CollectionMaxCount=2)
    futures = [h.add(f"key-{n}", bytes(n % 50)) for n in range(300)]
    assert h.pipeline.pending == 300
    h.drain()
    assert h.pipeline.pending == 0
    assert all(outcome(f).successful for f in futures)
    with pytest.raises(InvalidStateError):  # a second resolution is refused
        futures[0].set_result(outcome(futures[0]))
    stats = h.pipeline.stats
    assert (stats.user_records_received, stats.user_records_put) == (300, 300)
    assert stats.kinesis_records_put == len(h.kinesis.records())


def test_fail_all_fails_every_record_wherever_it_is() -> None:
    h = Harness(2, AggregationEnabled=False, CollectionMaxCount=1, RateLimit=1)
    futures = [h.add(f"k{n}") for n in range(1200)]  # some in the limiter
    h.advance(0.2)
    in_flight = h.pipeline.take_requests(1)
    assert in_flight
    late = h.add("late")  # in the collector
    assert h.pipeline.fail_all("Stopped", "stopping", h.now) == 1201
    assert all(failure(f).attempts[-1].error_code == "Stopped" for f in [*futures, late])
    h.answer(in_flight[0])  # a late response is ignored
    assert h.pipeline.pending == 0
    assert h.pipeline.next_wakeup(h.now) is None


def test_explicit_hash_keys_route_records() -> None:
    h = Harness(2)
    low = h.add("same-key", ehk="0")
    high = h.add("same-key", ehk=str(MAX_HASH_KEY))
    h.drain()
    assert outcome(low).shard_id == h.kinesis.open_shards[0]
    assert outcome(high).shard_id == h.kinesis.open_shards[1]
    assert math.isfinite(outcome(low).attempts[0].delay)


def test_records_held_for_the_first_map_go_out_before_later_ones() -> None:
    h = Harness(1, AggregationEnabled=False)
    h.shard_map = ShardMap()
    h.pipeline = Pipeline(h.kpl, h.shard_map, structlog.get_logger())
    h.add("first")
    h.shard_map.begin_update()
    h.shard_map.update(list_shards(h.kinesis, "s"), h.now)
    h.add("second")
    (request,) = h.requests(flush=True)
    assert [e["PartitionKey"] for e in request.entries] == ["first", "second"]


def test_a_record_over_collection_max_size_goes_alone_and_at_once() -> None:
    h = Harness(1, AggregationEnabled=False, CollectionMaxSize=52224, RateLimit=100000)
    h.add("small")
    h.add("big", bytes(60_000))
    first, second = h.requests()
    assert [len(first.records), len(second.records)] == [1, 1]
    assert second.records[0].size == 60_003


@settings(max_examples=40, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.none() | st.integers(0, MAX_HASH_KEY).map(str),
            st.binary(max_size=3000),
        ),
        min_size=1,
        max_size=60,
    ),
    shards=st.integers(1, 5),
    aggregate_max=st.integers(64, 8000),
    collect_max=st.integers(1, 20),
)
def test_any_mix_of_records_lands_once_within_every_limit(
    records: list[tuple[str, str | None, bytes]], shards: int, aggregate_max: int, collect_max: int
) -> None:
    h = Harness(
        shards, AggregationMaxSize=aggregate_max, CollectionMaxCount=collect_max, RateLimit=100000
    )
    futures = [h.add(key, data, ehk) for key, ehk, data in records]
    h.drain()
    received = []
    for stored in h.kinesis.records():
        assert len(stored.data) + len(stored.partition_key.encode()) <= h.kpl.max_user_record_size
        members = decode(stored.data) if stored.partition_key == "a" else None
        if members is None:
            received.append((stored.partition_key, stored.data))
            continue
        assert len(stored.data) <= aggregate_max
        received.extend((m.partition_key, m.data) for m in members)
    assert sorted(received) == sorted((key, data) for key, _, data in records)
    for future, (key, ehk, _) in zip(futures, records, strict=True):
        assert outcome(future).shard_id == h.shard_map.shard_for(hash_key(key, ehk))


@pytest.mark.parametrize(("interval_ms", "lines"), [(0, 2), (10_000, 1)])
def test_repeated_call_failures_are_logged_once_per_log_summary_interval(
    interval_ms: int, lines: int
) -> None:
    import botocore.exceptions

    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "PutRecords"
    )
    with capture_logs() as logs:
        h = Harness(1, LogSummaryInterval=interval_ms)
        for n in range(2):
            h.add(f"k{n}")
            (request,) = h.requests(flush=True)
            h.fail_call(request, error)
    assert [e["event"] for e in logs].count("PutRecords call failed") == lines
