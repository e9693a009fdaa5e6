"""KinesisProducer with its threads, through real botocore clients answered in memory.

Faults are injected with botocore event hooks, as against a real backend: a whole call throttled
(before-send), some entries of a PutRecords response failed or misrouted (after-call).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from structlog.testing import capture_logs

from kinesis_actors._aggregation import hash_key
from kinesis_actors._config import KplConf, ProducerConf, load_config
from kinesis_actors._errors import (
    ConfigError,
    ExplicitHashKeyError,
    InvalidRecordError,
    PartitionKeyError,
    ProducerStoppedError,
    RecordTooLargeError,
    UserRecordFailedError,
)
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer import KinesisProducer
from kinesis_actors._producer.retrier import THROTTLED
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis

FAST = {"RecordMaxBufferedTime": 10, "RecordTtl": 5000}


@pytest.fixture
def kinesis() -> InMemoryKinesis:
    return InMemoryKinesis(4)


@pytest.fixture
def client(kinesis: InMemoryKinesis) -> Any:
    return kinesis.client()


@pytest.fixture
def make_producer(client: Any) -> Iterator[Any]:
    """``make_producer(**kpl)``: a producer on the in-memory stream, stopped after the test."""
    producers: list[KinesisProducer] = []

    def make(**kpl: Any) -> KinesisProducer:
        producer = KinesisProducer({**FAST, **kpl}, "stream", client=client)
        producers.append(producer)
        return producer

    yield make
    for producer in producers:
        producer.stop(timeout=5)


def event(key: str, data: bytes | str = b"x", ehk: str | None = None) -> ProducerEvent:
    return ProducerEvent(key, data, ehk)


class _Body:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._payload


def throttle_calls(client: Any, calls: int, operation: str = "PutRecords") -> list[int]:
    """Make the next ``calls`` calls fail whole with a throttle; returns a live counter."""
    seen = [0]

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        if seen[0] >= calls:
            return None
        seen[0] += 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        body = json.dumps({"__type": THROTTLED, "message": "Rate exceeded for stream"}).encode()
        return AWSResponse(request.url, 400, headers, _Body(body))

    client.meta.events.register_first(f"before-send.kinesis.{operation}", hook)
    return seen


def fail_entries(client: Any, code: str, times: int) -> None:
    """Fail the first entry of the next ``times`` PutRecords responses with ``code``."""
    left = [times]

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] > 0 and parsed.get("Records"):
            left[0] -= 1
            parsed["Records"][0] = {"ErrorCode": code, "ErrorMessage": f"injected {code}"}
            parsed["FailedRecordCount"] = 1

    client.meta.events.register("after-call.kinesis.PutRecords", hook)


# -- construction ---------------------------------------------------------------------------------


def test_built_from_a_producer_conf(client: Any) -> None:
    conf = ProducerConf.from_config(
        load_config('kinesis { orders { stream-name = "orders", kpl { RecordTtl = 1234 } } }'),
        "orders",
    )
    with KinesisProducer(conf, client=client) as producer:
        assert producer.stream_name == "orders"
        assert producer.add_user_record(event("k")).result(5).successful


@pytest.mark.parametrize("kpl", [{"AggregationEnabled": False}, KplConf.from_config({})])
def test_built_like_the_scala_kinesis_producer_kpl(client: Any, kpl: Any) -> None:
    with KinesisProducer(kpl, "stream", client=client) as producer:
        assert producer.stream_name == "stream"


def test_a_stream_name_is_required(client: Any) -> None:
    with pytest.raises(ConfigError, match="stream-name"):
        KinesisProducer({}, client=client)


# -- the happy path -------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", [True, False])
def test_every_record_lands_once_on_the_shard_of_its_hash_key(
    make_producer: Any, kinesis: InMemoryKinesis, aggregation: bool
) -> None:
    producer = make_producer(AggregationEnabled=aggregation, RecordMaxBufferedTime=200)
    futures = [producer.add_user_record(event(f"key-{n}", f"data {n}")) for n in range(2000)]
    results = [f.result(10) for f in futures]
    assert all(r.successful and len(r.attempts) == 1 for r in results)
    for n, result in enumerate(results):
        expected = kinesis.list_shards()["Shards"][hash_key(f"key-{n}") * 4 >> 128]["ShardId"]
        assert result.shard_id == expected
    stats = producer.stats()
    assert (stats.user_records_received, stats.user_records_put) == (2000, 2000)
    assert stats.kinesis_records_put == len(kinesis.records())
    assert stats.outstanding_records == 0
    if aggregation:
        assert stats.kinesis_records_put < 200


def test_a_str_payload_is_sent_utf8_encoded(make_producer: Any, kinesis: InMemoryKinesis) -> None:
    producer = make_producer(AggregationEnabled=False)
    producer.add_user_record(event("k", "grüße")).result(5)
    assert kinesis.records()[0].data == "grüße".encode()


def test_outstanding_records_count_is_the_back_pressure_signal(make_producer: Any) -> None:
    producer = make_producer(RecordMaxBufferedTime=60_000, RecordTtl=120_000)
    futures = [producer.add_user_record(event(f"k{n}")) for n in range(100)]
    assert producer.outstanding_records_count() == 100
    assert producer.flush_sync(timeout=5)
    assert producer.outstanding_records_count() == 0
    assert all(f.done() for f in futures)


def test_flush_sends_without_waiting_for_the_deadline(make_producer: Any) -> None:
    producer = make_producer(RecordMaxBufferedTime=60_000, RecordTtl=120_000)
    future = producer.add_user_record(event("k"))
    time.sleep(0.05)
    assert not future.done()
    producer.flush()
    assert future.result(5).successful


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error", "says"),
    [
        (event(""), PartitionKeyError, "1..256"),
        (event("k" * 257), PartitionKeyError, "got 257"),
        (event("\ud800"), PartitionKeyError, "Unicode"),
        (event("k", bytes(1024 * 1024)), RecordTooLargeError, "MaxUserRecordSize"),
        (event("é" * 10, bytes(1024 * 1024 - 19)), RecordTooLargeError, "20 bytes"),
        (event("k", ehk="-1"), ExplicitHashKeyError, "[0, 2**128 - 1]"),
        (event("k", ehk=str(2**128)), ExplicitHashKeyError, "2**128"),
        (event("k", ehk="0x10"), ExplicitHashKeyError, "'0x10'"),
        (event("k", ehk="007"), ExplicitHashKeyError, "leading zeros"),
        (event("k", ehk="١٢"), ExplicitHashKeyError, "decimal"),
        (event("k", ehk=""), ExplicitHashKeyError, "''"),
    ],
)
def test_a_bad_record_fails_its_own_future_and_nothing_else(
    make_producer: Any, bad: ProducerEvent, error: type[InvalidRecordError], says: str
) -> None:
    producer = make_producer()
    future = producer.add_user_record(bad)
    with pytest.raises(error, match=rf".*{__import__('re').escape(says)}"):
        future.result(0)
    assert producer.add_user_record(event("good")).result(5).successful
    assert producer.stats().invalid_user_records == 1


def test_a_sink_hears_of_every_record_once_with_its_tag(make_producer: Any, client: Any) -> None:
    fail_entries(client, THROTTLED, times=3)  # some records finish after a retry
    producer = make_producer()
    heard: list[tuple[object, threading.Thread]] = []

    def sink(futures: Any) -> None:
        heard.extend((future.tag, threading.current_thread()) for future in futures)

    bad = producer.add_user_record(event("k", ehk="-1"), sink=sink, tag="bad")
    assert heard == [("bad", threading.current_thread())]  # failed at once, on this thread
    futures = [producer.add_user_record(event(f"k{n}"), sink=sink, tag=n) for n in range(200)]
    assert producer.flush_sync(timeout=10)
    assert sorted(tag for tag, _ in heard[1:]) == list(range(200))  # type: ignore[type-var]
    assert threading.current_thread() not in {thread for _, thread in heard[1:]}
    assert all(f.result(0).successful for f in futures) and bad.exception(0) is not None


def test_records_added_together_each_reach_the_sink_once_with_their_tag(
    make_producer: Any,
) -> None:
    producer = make_producer()
    heard: list[tuple[object, BaseException | None]] = []

    def sink(futures: Any) -> None:
        heard.extend((future.tag, future.exception(0)) for future in futures)

    events = [event(f"k{n}") for n in range(100)]
    events[7] = event("k", ehk="-1")
    events[9] = "not an event"  # type: ignore[call-overload]
    producer.add_user_records(events, list(range(100)), sink)
    assert producer.flush_sync(timeout=10)
    assert sorted(tag for tag, _ in heard) == list(range(100))  # type: ignore[type-var]
    failed = {tag: type(error) for tag, error in heard if error is not None}
    assert failed == {7: ExplicitHashKeyError, 9: TypeError}
    stats = producer.stats()
    assert (stats.invalid_user_records, stats.user_records_put) == (1, 98)
    producer.stop()
    with pytest.raises(ProducerStoppedError):
        producer.add_user_records([event("late")], ["late"], sink)
    assert "late" not in [tag for tag, _ in heard]


@pytest.mark.parametrize(
    "good",
    [
        event("k" * 256),
        event("日" * 256),
        event("k", bytes(1024 * 1024 - 1)),
        event("k", b""),
        event("k", ehk="0"),
        event("k", ehk=str(2**128 - 1)),
    ],
)
def test_records_at_the_limits_are_accepted(make_producer: Any, good: ProducerEvent) -> None:
    assert make_producer().add_user_record(good).result(5).successful


# -- failures, retries, expiry --------------------------------------------------------------------


def test_a_throttled_call_is_retried_and_the_attempt_recorded(
    make_producer: Any, client: Any
) -> None:
    throttled = throttle_calls(client, 2)
    producer = make_producer()
    result = producer.add_user_record(event("k")).result(5)
    assert throttled[0] == 2
    assert [a.error_code for a in result.attempts] == [THROTTLED, THROTTLED, None]
    assert result.attempts[0].error_message == "Rate exceeded for stream"
    stats = producer.stats()
    assert stats.put_records_call_errors == 2 and stats.user_record_retries == 2


@pytest.mark.parametrize("code", [THROTTLED, "InternalFailure"])
def test_failed_entries_are_retried(make_producer: Any, client: Any, code: str) -> None:
    fail_entries(client, code, times=3)
    producer = make_producer(AggregationEnabled=False)
    futures = [producer.add_user_record(event(f"k{n}")) for n in range(10)]
    results = [f.result(5) for f in futures]
    retried = [r for r in results if len(r.attempts) > 1]
    assert retried
    assert all(r.attempts[0].error_code == code and r.attempts[-1].success for r in retried)


def test_fail_if_throttled_fails_at_once(make_producer: Any, client: Any) -> None:
    fail_entries(client, THROTTLED, times=1)
    producer = make_producer(AggregationEnabled=False, FailIfThrottled=True)
    future = producer.add_user_record(event("k"))
    with pytest.raises(UserRecordFailedError) as caught:
        future.result(5)
    assert [a.error_code for a in caught.value.result.attempts] == [THROTTLED]
    assert producer.stats().user_records_failed == 1


def test_records_expire_at_the_ttl(make_producer: Any, client: Any) -> None:
    throttle_calls(client, 1_000_000)
    producer = make_producer(RecordTtl=200)
    started = time.monotonic()
    with pytest.raises(UserRecordFailedError) as caught:
        producer.add_user_record(event("k")).result(5)
    assert 0.2 <= time.monotonic() - started < 2
    attempts = caught.value.result.attempts
    assert attempts[-1].error_code == "Expired" and len(attempts) >= 2
    assert producer.stats().user_records_expired == 1


def test_a_connection_error_is_retried(make_producer: Any, client: Any) -> None:
    failures = [2]

    def refuse(**_: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://kinesis")

    client.meta.events.register_first("before-send.kinesis.PutRecords", refuse)
    result = make_producer().add_user_record(event("k")).result(5)
    assert [a.error_code for a in result.attempts] == ["EndpointConnectionError"] * 2 + [None]


def test_misrouted_aggregate_members_are_sent_again(make_producer: Any, client: Any) -> None:
    """One response says an aggregate for shard 0 landed on shard 3 (as after a reshard)."""
    misrouted = threading.Event()

    def misroute(parsed: dict[str, Any], **_: Any) -> None:
        for entry in parsed.get("Records", []):
            if entry.get("ShardId") == "shardId-000000000000" and not misrouted.is_set():
                entry["ShardId"] = "shardId-000000000003"
                misrouted.set()

    client.meta.events.register("after-call.kinesis.PutRecords", misroute)
    producer = make_producer(RecordMaxBufferedTime=200)
    futures = [producer.add_user_record(event(f"k{n}")) for n in range(40)]
    results = [f.result(5) for f in futures]
    wrong = [r for r in results if r.attempts[0].error_code == "Wrong Shard"]
    assert len(wrong) == producer.stats().wrong_shard_records > 0
    assert all(r.shard_id == "shardId-000000000000" and r.attempts[1].success for r in wrong)
    # Consumers of shard 3 drop the whole misrouted aggregate, so all of it was sent again,
    # including the first member that routed it: only shard 3's own keys are on shard 3.
    assert sum(r.shard_id == "shardId-000000000003" for r in results) == (
        sum(hash_key(f"k{n}") * 4 >> 128 == 3 for n in range(40))
    )


def test_without_list_shards_records_still_go_out_unaggregated(
    make_producer: Any, client: Any, kinesis: InMemoryKinesis
) -> None:
    throttle_calls(client, 1_000_000, operation="ListShards")
    with capture_logs() as logs:
        producer = make_producer()
        futures = [producer.add_user_record(event(f"k{n}")) for n in range(20)]
        assert all(f.result(5).successful for f in futures)
    assert len(kinesis.records()) == 20
    warning = next(e for e in logs if e["event"].startswith("ListShards failed"))
    assert warning["error_code"] == THROTTLED and warning["stream"] == "stream"


# -- stopping -------------------------------------------------------------------------------------


def test_stop_flushes_everything_then_refuses_records(
    client: Any, kinesis: InMemoryKinesis
) -> None:
    producer = KinesisProducer({"RecordMaxBufferedTime": 60_000}, "stream", client=client)
    futures = [producer.add_user_record(event(f"k{n}")) for n in range(500)]
    producer.stop()
    assert producer.destroyed
    assert all(f.result(0).successful for f in futures)
    with pytest.raises(ProducerStoppedError, match="'stream' is stopped"):
        producer.add_user_record(event("late"))
    producer.stop()  # idempotent


class BlockingClient:
    """Answers ListShards; PutRecords waits until released."""

    def __init__(self) -> None:
        self.kinesis = InMemoryKinesis(1)
        self.release = threading.Event()

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return self.kinesis.list_shards(**kwargs)

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self.release.wait(10)
        return self.kinesis.put_records(**kwargs)


def test_stop_with_a_timeout_fails_what_is_left_as_stopped() -> None:
    client = BlockingClient()
    producer = KinesisProducer(FAST, "stream", client=client)
    futures = [producer.add_user_record(event(f"k{n}")) for n in range(10)]
    assert not producer.flush_sync(timeout=0.1)
    threading.Timer(0.3, client.release.set).start()
    producer.stop(timeout=0.1)
    assert producer.destroyed
    for future in futures:
        with pytest.raises(UserRecordFailedError) as caught:
            future.result(0)
        assert caught.value.result.attempts[-1].error_code == "Stopped"


def test_stop_from_a_callback_does_not_deadlock(make_producer: Any) -> None:
    producer = make_producer()
    stopped = threading.Event()

    def stop_here(_: Any) -> None:
        producer.stop()
        stopped.set()

    producer.add_user_record(event("k")).add_done_callback(stop_here)
    assert stopped.wait(5)
    producer.stop()  # from the test thread: waits for the engine to finish
    assert producer.destroyed


def test_records_racing_with_stop_are_failed_not_stranded(make_producer: Any) -> None:
    producer = make_producer()
    outcomes: list[Any] = []

    def add_forever() -> None:
        while True:
            try:
                outcomes.append(producer.add_user_record(event("k")))
            except ProducerStoppedError:
                return

    adder = threading.Thread(target=add_forever)
    adder.start()
    time.sleep(0.05)
    producer.stop()
    adder.join()
    for future in outcomes:
        error = future.exception(5)
        assert error is None or isinstance(error, ProducerStoppedError)


def test_an_engine_failure_fails_every_outstanding_record(make_producer: Any) -> None:
    producer = make_producer(RecordMaxBufferedTime=60_000, RecordTtl=120_000)
    future = producer.add_user_record(event("k"))
    time.sleep(0.05)

    def broken(now: float, *, flush: bool = False) -> None:
        raise RuntimeError("bug")

    producer._pipeline.poll = broken
    with capture_logs():
        producer.flush()
        with pytest.raises(UserRecordFailedError) as caught:
            future.result(5)
    assert caught.value.result.attempts[-1].error_code == "EngineFailure"
    with pytest.raises(ProducerStoppedError, match="engine failed"):
        producer.add_user_record(event("k"))


def test_every_future_resolves_exactly_once_under_concurrent_producers(
    make_producer: Any, client: Any
) -> None:
    fail_entries(client, THROTTLED, times=20)
    producer = make_producer(CollectionMaxCount=50)
    resolved: list[UserRecordResult] = []
    lock = threading.Lock()

    def collect(future: Any) -> None:
        with lock:
            resolved.append(future.result())

    def produce(thread: int) -> None:
        for n in range(1000):
            producer.add_user_record(event(f"t{thread}-{n}")).add_done_callback(collect)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert producer.flush_sync(timeout=10)
    assert len(resolved) == 4000
    assert producer.stats().user_records_put == 4000


def test_engine_publishes_the_kpl_metrics(make_producer: Any) -> None:
    from kinesis_actors import metrics

    before = metrics.in_memory().total("UserRecordsPut", stream="stream")
    producer = make_producer()
    futures = [producer.add_user_record(event(f"m{n}")) for n in range(25)]
    for future in futures:
        future.result(5)
    producer.stop()
    memory = metrics.in_memory()
    assert memory.total("UserRecordsPut", stream="stream") - before == 25
    assert memory.total("UserRecordsReceived", stream="stream") >= 25
    assert memory.snapshot()["observations"]["PutRecordsLatency{stream=stream}"]["count"] >= 1


# -- issue 12: types at the door, fatal codes fail fast ------------------------------------------


def test_add_user_record_refuses_what_is_not_a_producer_event(make_producer: Any) -> None:
    producer = make_producer()
    with pytest.raises(TypeError, match="add_user_record expects a ProducerEvent, got str"):
        producer.add_user_record("text")
    assert producer.outstanding_records_count() == 0


def _fail_calls(client: Any, code: str) -> list[int]:
    """Every PutRecords call fails whole with ``code``; returns a live call counter."""
    seen = [0]

    def hook(request: Any, **_: Any) -> AWSResponse:
        seen[0] += 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
        return AWSResponse(request.url, 400, headers, _Body(body))

    client.meta.events.register_first("before-send.kinesis.PutRecords", hook)
    return seen


@pytest.mark.parametrize(
    "code", ["ResourceNotFoundException", "AccessDeniedException", "KMSDisabledException"]
)
def test_a_fatal_call_error_fails_the_records_at_once_naming_the_code(
    make_producer: Any, client: Any, code: str
) -> None:
    calls = _fail_calls(client, code)
    producer = make_producer(RecordTtl=60_000)  # retrying until the TTL would take a minute
    with capture_logs() as logs:
        futures = [producer.add_user_record(event(f"k{i}")) for i in range(20)]
        errors = [f.exception(timeout=10) for f in futures]
    for error in errors:
        assert isinstance(error, UserRecordFailedError)
        assert code in str(error)
        assert [a.error_code for a in error.result.attempts] == [code]
    assert calls[0] <= 2
    assert len([e for e in logs if e["event"] == "PutRecords call failed"]) <= 1


@pytest.mark.parametrize("code", ["KMSNotFoundException", "KMSAccessDeniedException"])
def test_a_fatal_entry_error_fails_that_record_at_once(
    make_producer: Any, client: Any, code: str
) -> None:
    fail_entries(client, code, times=1)
    producer = make_producer(RecordTtl=60_000, AggregationEnabled=False)
    future = producer.add_user_record(event("k"))
    error = future.exception(timeout=10)
    assert isinstance(error, UserRecordFailedError) and code in str(error)
    assert len(error.result.attempts) == 1


def test_a_throttled_call_is_still_retried_until_it_passes(make_producer: Any, client: Any) -> None:
    throttle_calls(client, 3)
    producer = make_producer()
    result = producer.add_user_record(event("k")).result(timeout=10)
    assert [a.error_code for a in result.attempts[:-1]] == [THROTTLED] * 3
