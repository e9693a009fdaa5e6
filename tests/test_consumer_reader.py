"""ShardReader: start positions, resume filter, deaggregation, expiry, shard end, throttling."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_consumer_support import SHARD, FakeKinesis, client_error, consumer_conf, lease, seq

from kinesis_actors._aggregation import MAGIC, encode, hash_key
from kinesis_actors._aws import is_throttling
from kinesis_actors._consumer.reader import ShardReader
from kinesis_actors._models import ConsumerEvent, Sentinel

CONF = consumer_conf()


def reader(kinesis: FakeKinesis, **lease_args: object) -> ShardReader:
    r = ShardReader(kinesis, "stream", lease(**lease_args), CONF.kcl)  # type: ignore[arg-type]
    r.start()
    return r


def payloads(result: object) -> list[bytes]:
    return [e.payload for e in result.events]  # type: ignore[attr-defined]


@pytest.fixture
def kinesis() -> FakeKinesis:
    fake = FakeKinesis()
    fake.add_shard(SHARD)
    return fake


def test_trim_horizon_reads_everything_in_order(kinesis: FakeKinesis) -> None:
    for n in range(5):
        kinesis.put(SHARD, b"%d" % n)
    result = reader(kinesis).read()
    assert payloads(result) == [b"0", b"1", b"2", b"3", b"4"]
    assert [e.sequence_number for e in result.events] == [seq(n) for n in range(1000, 1005)]
    assert {e.shard_id for e in result.events} == {SHARD}
    assert not result.shard_end


def test_latest_reads_only_new_records(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, b"old")
    r = reader(kinesis, checkpoint=Sentinel.LATEST)
    kinesis.put(SHARD, b"new")
    assert payloads(r.read()) == [b"new"]


def test_at_timestamp_uses_the_configured_timestamp(kinesis: FakeKinesis) -> None:
    conf = consumer_conf(
        "kcl { initialPositionInStream = AT_TIMESTAMP, "
        'initialPositionInStreamTimestamp = "2026-01-01T00:00:00Z" }'
    )
    kinesis.put(SHARD, b"x")
    with pytest.raises(Exception, match="InvalidArgument"):  # the fake has no AT_TIMESTAMP
        ShardReader(kinesis, "stream", lease(checkpoint=Sentinel.AT_TIMESTAMP), conf.kcl).start()  # type: ignore[arg-type]
    request = kinesis.calls[-1][1]
    assert request["ShardIteratorType"] == "AT_TIMESTAMP"
    assert request["Timestamp"] == datetime(2026, 1, 1, tzinfo=UTC)


def test_resumes_after_the_checkpoint(kinesis: FakeKinesis) -> None:
    for n in range(5):
        kinesis.put(SHARD, b"%d" % n)
    r = reader(kinesis, checkpoint=seq(1002))
    assert kinesis.calls[-1][1]["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"
    assert payloads(r.read()) == [b"3", b"4"]


def test_resumes_inside_an_aggregate(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, encode([("a", None, b"a0"), ("b", None, b"a1"), ("c", None, b"a2")]))
    kinesis.put(SHARD, encode([("d", None, b"b0"), ("e", None, b"b1")]))
    result = reader(kinesis, checkpoint=seq(1000, 1)).read()
    assert payloads(result) == [b"a2", b"b0", b"b1"]
    assert [e.sequence_number for e in result.events] == [seq(1000, 2), seq(1001, 0), seq(1001, 1)]
    assert [e.partition_key for e in result.events] == ["c", "d", "e"]


def test_resume_filter_compares_integers(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, b"9", number=9)
    kinesis.put(SHARD, b"10", number=10)  # "10" < "9" as strings
    assert payloads(reader(kinesis, checkpoint=seq(9)).read()) == [b"10"]


def _straddling(kinesis: FakeKinesis, outer_key: str) -> tuple[int, int]:
    """Puts aggregates with members on both sides of a boundary; returns the shard's range,
    which holds "in" but not "out"."""
    inside, outside = "in", "out"
    low, high = sorted((hash_key(inside), hash_key(outside)))
    shard_range = (0, low) if hash_key(inside) == low else (high, 2**128 - 1)
    members = [(inside, None, b"1"), (outside, None, b"2"), (inside, None, b"3")]
    kinesis.put(SHARD, encode(members), partition_key=outer_key)
    kinesis.put(SHARD, encode([(inside, None, b"4"), (inside, None, b"5")]), partition_key="a")
    kinesis.put(SHARD, b"raw", partition_key=outside)  # not an aggregate: never filtered
    return shard_range


@pytest.mark.parametrize("outer_key", ["a", "in"])
def test_an_aggregate_straddling_shards_on_a_shard_that_never_split_is_delivered_whole(
    kinesis: FakeKinesis, outer_key: str
) -> None:
    shard_range = _straddling(kinesis, outer_key)
    result = reader(kinesis, hash_range=shard_range).read()
    assert payloads(result) == [b"1", b"2", b"3", b"4", b"5", b"raw"]
    assert [e.sequence_number for e in result.events[:3]] == [seq(1000, n) for n in range(3)]


def test_an_aws_kinesis_agg_aggregate_on_a_child_shard_is_delivered_whole(
    kinesis: FakeKinesis,
) -> None:
    # aws-kinesis-agg puts the first member's partition key outside; it re-sends nothing.
    shard_range = _straddling(kinesis, outer_key="in")
    result = reader(kinesis, hash_range=shard_range, parents=("shardId-parent",)).read()
    assert payloads(result) == [b"1", b"2", b"3", b"4", b"5", b"raw"]


def test_a_kpl_aggregate_misrouted_to_a_child_shard_loses_only_its_outside_members(
    kinesis: FakeKinesis,
) -> None:
    # The KPL form (outer key "a") on a child of a split: the producer re-sent every member,
    # so the ones that belong to the sibling shard are dropped here; the others are delivered.
    shard_range = _straddling(kinesis, outer_key="a")
    result = reader(kinesis, hash_range=shard_range, parents=("shardId-parent",)).read()
    assert payloads(result) == [b"1", b"3", b"4", b"5", b"raw"]
    assert [e.sequence_number for e in result.events[:2]] == [seq(1000, 0), seq(1000, 2)]


def test_resuming_inside_a_misrouted_aggregate_keeps_its_sub_sequence_numbers(
    kinesis: FakeKinesis,
) -> None:
    shard_range = _straddling(kinesis, outer_key="a")
    resumed = reader(
        kinesis, hash_range=shard_range, parents=("shardId-parent",), checkpoint=seq(1000, 1)
    )
    result = resumed.read()
    assert [e.sequence_number for e in result.events][:1] == [seq(1000, 2)]
    assert payloads(result) == [b"3", b"4", b"5", b"raw"]


def test_expired_iterator_restarts_after_the_last_record_fetched(kinesis: FakeKinesis) -> None:
    for n in range(3):
        kinesis.put(SHARD, b"%d" % n)
    r = reader(kinesis)
    assert payloads(r.read()) == [b"0", b"1", b"2"]
    kinesis.put(SHARD, b"3")
    kinesis.expire_next = True
    assert payloads(r.read()) == [b"3"]
    restart = kinesis.calls[-2][1]
    assert restart["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert restart["StartingSequenceNumber"] == "1002"


def test_expired_before_any_read_restarts_at_the_checkpoint(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, encode([("a", None, b"0"), ("b", None, b"1")]))
    r = reader(kinesis, checkpoint=seq(1000, 0))
    kinesis.expire_next = True
    assert payloads(r.read()) == [b"1"]
    assert kinesis.calls[-2][1]["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"


def test_missing_next_iterator_is_shard_end(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, b"last")
    kinesis.close(SHARD)
    r = reader(kinesis)
    result = r.read()
    assert payloads(result) == [b"last"] and result.shard_end
    calls = kinesis.get_records_calls()
    assert r.read().shard_end
    assert kinesis.get_records_calls() == calls  # nothing more is asked


def test_resource_not_found_is_shard_end(kinesis: FakeKinesis) -> None:
    r = reader(kinesis)
    kinesis.errors.append(client_error("ResourceNotFoundException"))
    assert r.read().shard_end
    gone = ShardReader(kinesis, "stream", lease(shard_id="shardId-gone"), CONF.kcl)  # type: ignore[arg-type]
    gone.start()
    assert gone.ended and gone.read().shard_end


def test_shard_already_at_shard_end_makes_no_call(kinesis: FakeKinesis) -> None:
    r = reader(kinesis, checkpoint=Sentinel.SHARD_END)
    assert r.read().shard_end
    assert kinesis.calls == []


def test_throttling_is_raised_for_the_caller_to_back_off(kinesis: FakeKinesis) -> None:
    r = reader(kinesis)
    kinesis.errors.append(client_error("ProvisionedThroughputExceededException"))
    with pytest.raises(Exception) as caught:
        r.read()
    assert is_throttling(caught.value)
    assert not is_throttling(RuntimeError("other"))
    kinesis.put(SHARD, b"after")
    assert payloads(r.read()) == [b"after"]  # same iterator, nothing lost


def test_events_are_what_the_public_constructors_make(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, b"raw", partition_key="p0")
    kinesis.put(SHARD, encode([("a", None, b"a0"), ("b", "42", b"a1")]), partition_key="outer")
    kinesis.put(SHARD, MAGIC + b"not an aggregate at all", partition_key="p2")
    records = kinesis.shards[SHARD].records
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for record in records:
        record["ApproximateArrivalTimestamp"] = when
    records[1]["ApproximateArrivalTimestamp"] = datetime(2026, 1, 1)  # naive: taken as UTC
    result = reader(kinesis).read()
    assert list(result.events) == [
        ConsumerEvent(seq(1000), b"raw", when, "p0", SHARD),
        ConsumerEvent(seq(1001, 0), b"a0", datetime(2026, 1, 1, tzinfo=UTC), "a", SHARD),
        ConsumerEvent(seq(1001, 1), b"a1", datetime(2026, 1, 1, tzinfo=UTC), "b", SHARD, "42"),
        ConsumerEvent(seq(1002), MAGIC + b"not an aggregate at all", when, "p2", SHARD),
    ]
    assert all(e.timestamp.tzinfo is not None for e in result.events)


def test_resume_skips_a_whole_aggregate_at_or_below_the_checkpoint(kinesis: FakeKinesis) -> None:
    kinesis.put(SHARD, encode([("a", None, b"a0"), ("b", None, b"a1")]))
    kinesis.put(SHARD, encode([("c", None, b"b0"), ("d", None, b"b1")]))
    r = reader(kinesis, checkpoint=seq(1000, 1))
    result = r.read()
    assert payloads(result) == [b"b0", b"b1"]
    assert [e.sequence_number for e in result.events] == [seq(1001, 0), seq(1001, 1)]
    kinesis.put(SHARD, b"next")
    assert payloads(r.read()) == [b"next"]  # the resume filter is done after the first read
