"""The lease taker's rules, one test each (the KCL's TestHarnessBuilder scenarios).

Single-threaded, on the in-memory table, with a hand-driven monotonic clock.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from kinesis_actors._leases import InMemoryLeaseTable, Lease, LeaseTaker
from kinesis_actors._models import Sentinel

FAILOVER = 10.0
ME = "me"


class Harness:
    """A lease table, a clock, and helpers to set up and age leases."""

    def __init__(self) -> None:
        self.table = InMemoryLeaseTable()
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def with_leases(self, owner: str | None, count: int, first: int = 0) -> list[str]:
        ids = [f"shardId-{first + i:012d}" for i in range(count)]
        for shard_id in ids:
            self.table.put(Lease(shard_id, owner, 1 if owner else 0, Sentinel.TRIM_HORIZON))
        return ids

    def taker(self, worker_id: str = ME, **kwargs: Any) -> LeaseTaker:
        kwargs.setdefault("failover_time", FAILOVER)
        return LeaseTaker(self.table, worker_id, clock=self.clock, rng=random.Random(7), **kwargs)

    def pass_time(self, seconds: float) -> None:
        self.now += seconds

    def renew_all(self, owner: str) -> None:
        """``owner`` is alive: it renews every lease it holds."""
        for lease in self.table.list_leases():
            if lease.owner == owner:
                assert self.table.renew(lease) is not None

    def owners(self) -> Counter[str | None]:
        return Counter(lease.owner for lease in self.table.list_leases())


def test_empty_table_takes_nothing() -> None:
    assert Harness().taker().take_leases() == []


def test_simple_lease_take() -> None:
    harness = Harness()
    (shard_id,) = harness.with_leases(None, 1)
    taken = harness.taker().take_leases()
    assert [lease.shard_id for lease in taken] == [shard_id]
    assert taken[0].owner == ME and taken[0].counter == 1


def test_all_expired_leases_are_taken_after_failover_time() -> None:
    harness = Harness()
    harness.with_leases("dead", 3)
    taker = harness.taker()
    assert taker.take_leases(steal=False) == []  # first sight of an owned lease: assumed fresh
    harness.pass_time(FAILOVER + 0.1)
    assert len(taker.take_leases()) == 3
    assert harness.owners() == {ME: 3}


def test_new_owned_lease_needs_two_scans_more_than_failover_apart() -> None:
    harness = Harness()
    harness.with_leases("other", 1)
    harness.pass_time(FAILOVER * 5)  # however old it is, one scan cannot tell
    taker = harness.taker()
    assert taker.take_leases() == []
    harness.pass_time(FAILOVER)  # exactly the failover time is not more than it
    assert taker.take_leases() == []
    harness.pass_time(0.1)
    assert len(taker.take_leases()) == 1


def test_renewed_lease_is_not_taken() -> None:
    harness = Harness()
    harness.with_leases("other", 1)
    taker = harness.taker()
    taker.take_leases()
    harness.pass_time(FAILOVER - 1)
    harness.renew_all("other")
    taker.take_leases()  # sees the counter change
    harness.pass_time(FAILOVER - 1)
    assert taker.take_leases() == []


def test_own_expired_lease_is_taken_back() -> None:
    harness = Harness()
    harness.with_leases(ME, 1)
    taker = harness.taker()
    assert taker.take_leases() == []  # fresh at first sight, and counted as mine
    harness.pass_time(FAILOVER + 1)
    taken = taker.take_leases()
    assert len(taken) == 1 and taken[0].counter == 2
    assert taken[0].owner_switches_since_checkpoint == 0


def test_non_greedy_take_stops_at_target() -> None:
    harness = Harness()
    harness.with_leases("other", 1)
    harness.with_leases(None, 3, first=1)
    assert len(harness.taker().take_leases()) == 2  # 4 leases, 2 workers
    assert harness.owners() == {ME: 2, "other": 1, None: 1}


def test_target_with_three_workers_and_ten_leases() -> None:
    harness = Harness()
    harness.with_leases("a", 3)
    harness.with_leases("b", 3, first=3)
    harness.with_leases(None, 4, first=6)
    assert len(harness.taker("c").take_leases()) == 4  # ceil(10 / 3)
    assert harness.owners() == {"a": 3, "b": 3, "c": 4}
    # "a" needs one more, "c" sits exactly at target: no steal (off by one).
    assert harness.taker("a").take_leases() == []


def test_no_steal_when_off_by_one() -> None:
    harness = Harness()
    harness.with_leases("other", 3)
    harness.with_leases(ME, 2, first=3)
    assert harness.taker().take_leases() == []  # target 3, needs 1, other is at 3
    assert harness.owners() == {"other": 3, ME: 2}


def test_steal_only_from_the_most_loaded_worker() -> None:
    harness = Harness()
    most = set(harness.with_leases("most", 6))
    harness.with_leases("some", 3, first=6)
    stolen = harness.taker().take_leases()
    assert len(stolen) == 1  # maxLeasesToStealAtOneTime = 1
    assert stolen[0].shard_id in most
    assert stolen[0].owner_switches_since_checkpoint == 1
    assert harness.owners() == {"most": 5, "some": 3, ME: 1}


def test_steal_at_most_max_leases_to_steal_and_what_is_over_target() -> None:
    harness = Harness()
    harness.with_leases("most", 6)
    harness.with_leases("some", 3, first=6)
    stolen = harness.taker(max_leases_to_steal=10).take_leases()
    assert len(stolen) == 3  # needs 3, "most" is 3 over target
    assert harness.owners() == {"most": 3, "some": 3, ME: 3}


def test_steal_one_when_needing_several_and_everyone_is_at_target() -> None:
    harness = Harness()
    harness.with_leases("a", 2)
    harness.with_leases("b", 2, first=2)
    stolen = harness.taker(max_leases_to_steal=5).take_leases()
    assert len(stolen) == 1  # target ceil(4 / 3) = 2, needs 2, nobody over target


def test_no_steal_while_expired_leases_are_available() -> None:
    harness = Harness()
    harness.with_leases("busy", 4)
    harness.with_leases("dead", 2, first=4)
    taker = harness.taker(max_leases_to_steal=5)
    taker.take_leases(steal=False)
    harness.pass_time(FAILOVER + 1)
    harness.renew_all("busy")
    taken = taker.take_leases()
    assert {lease.shard_id for lease in taken} == {"shardId-000000000004", "shardId-000000000005"}
    assert harness.owners() == {"busy": 4, ME: 2}


def test_max_leases_for_worker_caps_the_target() -> None:
    harness = Harness()
    harness.with_leases(None, 10)
    assert len(harness.taker(max_leases_for_worker=3).take_leases()) == 3


def test_quick_runs_never_steal() -> None:
    harness = Harness()
    harness.with_leases("most", 4)
    taker = harness.taker()
    assert taker.take_leases(steal=False) == []
    assert len(taker.take_leases(steal=True)) == 1


def test_excluded_leases_are_left_alone() -> None:
    harness = Harness()
    first, second = harness.with_leases(None, 2)
    taken = harness.taker().take_leases(exclude={first})
    assert [lease.shard_id for lease in taken] == [second]


def test_leases_that_disappear_are_forgotten() -> None:
    harness = Harness()
    harness.with_leases("other", 1)
    taker = harness.taker()
    taker.take_leases()
    harness.table.delete_table()
    harness.table.create_if_missing()
    assert taker.take_leases() == []  # the scan finds nothing: forgotten
    harness.pass_time(FAILOVER + 1)
    harness.with_leases("other", 1)  # recreated, same counter: first sight again, fresh
    assert taker.take_leases() == []
    assert harness.owners() == {"other": 1}


class SlowScanTable(InMemoryLeaseTable):
    """A scan that takes long, during which the victim renews its leases."""

    def __init__(self, harness: Harness, scan_time: float) -> None:
        super().__init__()
        self.harness = harness
        self.scan_time = scan_time

    def list_leases(self) -> list[Lease]:
        leases = super().list_leases()
        self.harness.pass_time(self.scan_time)
        for lease in leases:
            if lease.owner == "most":
                self.renew(lease)
        return leases


def test_slow_scan_rereads_leases_before_stealing() -> None:
    harness = Harness()
    harness.table = SlowScanTable(harness, scan_time=2.0)
    harness.with_leases("most", 4)
    stolen = harness.taker(slow_scan_time=1.0).take_leases()
    assert len(stolen) == 1  # the scan's counters were stale; re-read ones were not
    harness.table.scan_time = 0.5
    assert harness.taker(slow_scan_time=1.0).take_leases() == []  # stale counter, not re-read
