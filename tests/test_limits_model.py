"""The limit model (AWS's per-shard, per-stream, per-account and per-table limits), on a fake clock."""

from __future__ import annotations

import pytest

from kinesis_actors.testing._limits_model import MIB, AwsLimits, LimitModel, TokenBucket
from kinesis_actors.testing._limits_stats import ApiCounts, LimitsCounters, LimitsStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model(clock: Clock) -> LimitModel:
    return LimitModel(AwsLimits(dynamodb_burst_seconds=2.0), clock=clock)


def test_bucket_refills_up_to_its_capacity_and_may_go_into_debt(clock: Clock) -> None:
    bucket = TokenBucket(rate=10.0, capacity=10.0, clock=clock)
    assert bucket.take(10.0)
    assert not bucket.take(1.0)
    clock.now += 0.5
    assert bucket.level == pytest.approx(5.0)
    bucket.charge(25.0)
    assert not bucket.positive()
    clock.now += 2.0
    assert not bucket.positive()  # -20 + 20 = 0: still not positive
    clock.now += 0.1
    assert bucket.positive()
    clock.now += 60.0
    assert bucket.level == pytest.approx(10.0)


def test_2000_records_to_one_shard_in_one_second_store_1000(model: LimitModel) -> None:
    first = model.admit_writes("s", [("shard-0", 100)] * 500)
    assert all(first)
    second = model.admit_writes("s", [("shard-0", 100)] * 1500)
    assert second.count(True) == 500
    assert second[:500] == [True] * 500
    assert not any(second[500:])
    # the other shard has its own limit
    assert all(model.admit_writes("s", [("shard-1", 100)] * 1000))


def test_write_bytes_limit_lets_a_later_smaller_entry_through(model: LimitModel) -> None:
    entries = [("shard-0", MIB - 1000), ("shard-0", 5000), ("shard-0", 900)]
    assert model.admit_writes("s", entries) == [True, False, True]


def test_writes_refill_over_time(model: LimitModel, clock: Clock) -> None:
    assert model.admit_writes("s", [("a", 10)] * 1001).count(False) == 1
    clock.now += 0.25
    assert model.admit_writes("s", [("a", 10)] * 300).count(True) == 250


def test_five_reads_per_second_per_shard(model: LimitModel, clock: Clock) -> None:
    results = []
    for _ in range(20):  # 10 calls a second for 2 seconds
        results.append(model.admit_read("s", "a"))
        clock.now += 0.1
    # 5 in the bucket at the start, then 5 more per second
    assert results.count(True) == 5 + 9
    assert model.admit_read("s", "b")


def test_a_large_read_blocks_the_shard_until_its_bytes_are_repaid(
    model: LimitModel, clock: Clock
) -> None:
    assert model.admit_read("s", "a")
    model.charge_read("s", "a", 10 * MIB)  # 2 MiB in the bucket: 8 MiB of debt = 4 s
    for _ in range(39):
        clock.now += 0.1
        assert not model.admit_read("s", "a")
    clock.now += 0.2
    assert model.admit_read("s", "a")


def test_shard_iterators_five_per_second_per_shard(model: LimitModel) -> None:
    assert [model.admit_shard_iterator("s", "a") for _ in range(6)].count(True) == 5
    assert model.admit_shard_iterator("s", "b")


def test_control_plane_limits_per_account_and_per_stream(model: LimitModel) -> None:
    assert [model.admit_control("DescribeStream", "s1") for _ in range(6)].count(True) == 6
    # DescribeStream is per account: 10 in total, whichever stream
    assert [model.admit_control("DescribeStream", "s2") for _ in range(6)].count(True) == 4
    # ListStreamConsumers is per stream: 5 each
    assert [model.admit_control("ListStreamConsumers", "s1") for _ in range(6)].count(True) == 5
    assert model.admit_control("ListStreamConsumers", "s2")
    # an API without a documented rate is not limited
    assert all(model.admit_control("AddTagsToStream", "s1") for _ in range(100))


def test_provisioned_table_capacity_with_burst(model: LimitModel, clock: Clock) -> None:
    assert model.admit_table("leases", "write")  # unknown table: on demand
    model.set_table_capacity("leases", read_units=5.0, write_units=2.0)
    assert model.provisioned("leases")
    model.charge_table("leases", "write", 2.0)  # the first second's capacity
    assert not model.admit_table("leases", "write")
    assert model.admit_table("leases", "read")
    clock.now += 10.0  # unused capacity kept for 2 s (burst): 4 units
    model.charge_table("leases", "write", 4.0)
    assert not model.admit_table("leases", "write")
    model.forget_table("leases")
    assert model.admit_table("leases", "write")


def test_counters_snapshots_subtract_and_print() -> None:
    counters = LimitsCounters()
    counters.add("kinesis.GetRecords", calls=3, refused=1)
    before = counters.snapshot()
    counters.add("kinesis.GetRecords", calls=2, refused=2, records=7)
    counters.add("kinesis.PutRecords", calls=1, entries=500, throttled_entries=20)
    after = counters.snapshot()
    phase = after - before
    assert phase.api("kinesis.GetRecords") == ApiCounts(calls=2, refused=2, records=7)
    assert phase.throttled_entries == 20
    assert phase.refused == 2
    assert phase.api("dynamodb.GetItem") == ApiCounts()
    assert LimitsStats.from_json(after.to_json()) == after
    lines = after.table().splitlines()
    assert lines[0].split() == [
        "api",
        "calls",
        "refused",
        "entries",
        "throttled",
        "records",
        "bytes",
    ]
    assert lines[1].split() == ["kinesis.GetRecords", "5", "3", "0", "0", "7", "0"]
