"""The lease taker's and the assignment's rules, one test each.

Single-threaded, on the in-memory table, with a hand-driven monotonic clock. The first tests are
the KCL's TestHarnessBuilder scenarios that still hold (expiry by observation); the rest are the
fleet rules: fair share from membership, hand-offs from every worker above the share in one
run, finished leases counting for nobody, load-aware weights and damping.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from kinesis_actors._leases import InMemoryLeaseTable, Lease, LeaseTaker
from kinesis_actors._leases.assignment import lease_weights, plan_assignment
from kinesis_actors._models import Sentinel

FAILOVER = 10.0
ME = "me"


class Harness:
    """A lease table, a clock, and helpers to set up and age leases."""

    def __init__(self) -> None:
        self.table = InMemoryLeaseTable()
        self.now = 1000.0
        self.next_id = 0

    def clock(self) -> float:
        return self.now

    def with_leases(self, owner: str | None, count: int, **fields: Any) -> list[str]:
        ids = [f"shardId-{self.next_id + i:012d}" for i in range(count)]
        self.next_id += count
        checkpoint = fields.pop("checkpoint", Sentinel.TRIM_HORIZON)
        for shard_id in ids:
            self.table.put(Lease(shard_id, owner, 1 if owner else 0, checkpoint, **fields))
        return ids

    def taker(self, worker_id: str = ME, **kwargs: Any) -> LeaseTaker:
        kwargs.setdefault("failover_time", FAILOVER)
        return LeaseTaker(self.table, worker_id, clock=self.clock, **kwargs)

    def pass_time(self, seconds: float) -> None:
        self.now += seconds

    def renew_all(self, owner: str) -> None:
        """``owner`` is alive: it renews every lease it holds."""
        for lease in self.table.list_leases():
            if lease.actual_owner == owner:
                assert self.table.renew(lease) is not None

    def owners(self) -> Counter[str | None]:
        return Counter(lease.owner for lease in self.table.list_leases())


def ids(leases: list[Lease]) -> list[str]:
    return [lease.shard_id for lease in leases]


def test_empty_table_takes_nothing() -> None:
    run = Harness().taker().take_leases()
    assert (run.taken, run.requested) == ([], [])


def test_simple_lease_take() -> None:
    harness = Harness()
    (shard_id,) = harness.with_leases(None, 1)
    taken = harness.taker().take_leases().taken
    assert ids(taken) == [shard_id]
    assert taken[0].owner == ME and taken[0].counter == 1


def test_all_expired_leases_are_taken_after_failover_time() -> None:
    harness = Harness()
    harness.with_leases("dead", 3)
    taker = harness.taker()
    assert taker.take_leases().taken == []  # first sight of an owned lease: assumed fresh
    harness.pass_time(FAILOVER + 0.1)
    assert len(taker.take_leases().taken) == 3
    assert harness.owners() == {ME: 3}


def test_new_owned_lease_needs_two_scans_more_than_failover_apart() -> None:
    harness = Harness()
    harness.with_leases("other", 2)
    harness.pass_time(FAILOVER * 5)  # however old it is, one scan cannot tell
    taker = harness.taker()
    assert taker.take_leases().taken == []
    harness.pass_time(FAILOVER)  # exactly the failover time is not more than it
    assert taker.take_leases().taken == []
    harness.pass_time(0.1)
    assert len(taker.take_leases().taken) == 2


def test_renewed_lease_is_not_taken() -> None:
    harness = Harness()
    harness.with_leases("other", 2)
    taker = harness.taker(handoff_timeout=1e9)
    taker.take_leases()
    harness.pass_time(FAILOVER - 1)
    harness.renew_all("other")
    taker.take_leases()  # sees the counter change
    harness.pass_time(FAILOVER - 1)
    assert taker.take_leases().taken == []


def test_own_expired_lease_is_taken_back() -> None:
    harness = Harness()
    harness.with_leases(ME, 1)
    taker = harness.taker()
    assert taker.take_leases().taken == []  # fresh at first sight, and counted as mine
    harness.pass_time(FAILOVER + 1)
    taken = taker.take_leases().taken
    assert len(taken) == 1 and taken[0].counter == 2
    assert taken[0].owner_switches_since_checkpoint == 0


def test_cold_start_takes_the_share_of_the_fleet_in_membership() -> None:
    harness = Harness()
    harness.with_leases(None, 12)
    workers = {ME, "w1", "w2", "w3", "w4", "w5"}  # announced, holding nothing yet
    assert len(harness.taker().take_leases(workers).taken) == 2
    run = harness.taker("w1").take_leases(workers)
    assert len(run.taken) == 2 and not set(ids(run.taken)) & {
        s for s, o in harness.owners().items() if o == ME
    }


def test_alone_takes_everything() -> None:
    harness = Harness()
    harness.with_leases(None, 5)
    assert len(harness.taker().take_leases({ME}).taken) == 5


def test_joining_worker_asks_every_worker_above_the_share_in_one_run() -> None:
    harness = Harness()
    for owner in ("a", "b", "c"):
        harness.with_leases(owner, 4)
    run = harness.taker().take_leases({ME, "a", "b", "c"})
    assert run.taken == [] and len(run.requested) == 3  # 12 leases / 4 workers = 3 each
    handed = [harness.table.get_lease(shard_id) for shard_id in run.requested]
    assert sorted(lease.checkpoint_owner for lease in handed if lease) == ["a", "b", "c"]
    assert all(lease is not None and lease.owner == ME for lease in handed)


def test_no_move_when_off_by_one() -> None:
    harness = Harness()
    harness.with_leases("a", 2)
    harness.with_leases(ME, 1)
    run = harness.taker().take_leases({ME, "a"})
    assert (run.taken, run.requested) == ([], [])


def test_finished_leases_count_for_nobody() -> None:
    harness = Harness()
    harness.with_leases("a", 4, checkpoint=Sentinel.SHARD_END)  # parents after a split
    harness.with_leases("a", 4)
    harness.with_leases(None, 4, checkpoint=Sentinel.SHARD_END)  # free and finished
    run = harness.taker().take_leases({ME, "a"})
    assert run.taken == []  # finished leases are never taken for a share
    assert len(run.requested) == 2  # half of the 4 open ones


def test_hand_off_completes_when_the_owner_releases() -> None:
    harness = Harness()
    harness.with_leases("a", 4)
    taker = harness.taker(handoff_timeout=5.0)
    first, second = taker.take_leases({ME, "a"}).requested
    assert taker.take_leases({ME, "a"}).requested == []  # pending: not asked again
    # "a" finishes the batch, checkpoints and hands the first one over.
    lease = harness.table.get_lease(first)
    assert lease is not None and harness.table.release(lease)
    handed, stolen = taker.check_handoffs()
    assert ids(handed) == [first] and stolen == []
    assert handed[0].owner == ME and handed[0].checkpoint_owner is None
    assert taker.pending_handoffs == frozenset({second})


def test_unanswered_hand_off_becomes_a_steal() -> None:
    harness = Harness()
    harness.with_leases("a", 2)
    taker = harness.taker(handoff_timeout=5.0)
    (requested,) = taker.take_leases({ME, "a"}).requested
    harness.renew_all("a")  # alive, but not handing over (e.g. a KCL 2.x worker)
    assert taker.check_handoffs() == ([], [])
    harness.pass_time(5.1)
    handed, stolen = taker.check_handoffs()
    assert handed == [] and ids(stolen) == [requested]
    assert stolen[0].owner == ME and stolen[0].checkpoint_owner is None


def test_lease_in_a_hand_off_counts_for_its_next_owner_and_does_not_move() -> None:
    harness = Harness()
    harness.with_leases("a", 3)
    harness.with_leases("b", 1, checkpoint_owner="a")  # a is handing it to b
    run = harness.taker("c").take_leases({"a", "b", "c"})
    # a holds 3 but one counts for b: 2 / 2 / 0 -> c asks a for one; b's pinned lease stays.
    assert len(run.requested) == 1
    asked = harness.table.get_lease(run.requested[0])
    assert asked is not None and asked.checkpoint_owner == "a"


def test_max_leases_for_worker_caps_the_share() -> None:
    harness = Harness()
    harness.with_leases(None, 10)
    assert len(harness.taker(max_leases_for_worker=3).take_leases({ME}).taken) == 3


def test_excluded_leases_are_left_alone() -> None:
    harness = Harness()
    first, second = harness.with_leases(None, 2)
    taken = harness.taker().take_leases({ME}, exclude={first}).taken
    assert ids(taken) == [second]


def test_leases_that_disappear_are_forgotten() -> None:
    harness = Harness()
    harness.with_leases("other", 1)
    taker = harness.taker()
    taker.take_leases()
    harness.table.delete_table()
    harness.table.create_if_missing()
    assert taker.take_leases().taken == []  # the scan finds nothing: forgotten
    harness.pass_time(FAILOVER + 1)
    harness.next_id = 0
    harness.with_leases("other", 1)  # recreated, same counter: first sight again, fresh
    assert taker.take_leases().taken == []
    assert harness.owners() == {"other": 1}


class SlowScanTable(InMemoryLeaseTable):
    """A scan that takes long, during which a free lease is taken by another worker."""

    def __init__(self, harness: Harness, scan_time: float) -> None:
        super().__init__()
        self.harness = harness
        self.scan_time = scan_time

    def list_leases(self) -> list[Lease]:
        leases = super().list_leases()
        self.harness.pass_time(self.scan_time)
        for lease in leases:
            if lease.owner is None:
                self.take(lease, "fast")
        return leases


def test_slow_scan_rereads_leases_before_taking() -> None:
    harness = Harness()
    harness.table = SlowScanTable(harness, scan_time=2.0)
    harness.with_leases(None, 2)
    assert harness.taker(slow_scan_time=1.0).take_leases({ME}).taken == []  # re-read: taken
    assert harness.owners() == {"fast": 2}


# -- the assignment itself ------------------------------------------------------------------


def lease(shard: int, owner: str | None, rate: float | None = None) -> Lease:
    rates = {} if rate is None else {"bytes_per_second": rate * 100, "records_per_second": rate}
    return Lease(f"shardId-{shard:012d}", owner, 1, Sentinel.TRIM_HORIZON, **rates)


def test_weights_average_one_and_a_hot_shard_weighs_more() -> None:
    leases = [lease(0, "a", 10.0)] + [lease(n, "a", 1.0) for n in range(1, 8)]
    weights = lease_weights(leases)
    assert abs(sum(weights.values()) - 8) < 1e-9
    assert weights[leases[0].shard_id] > 2.5
    assert 0.5 < weights[leases[1].shard_id] < 1
    assert lease_weights([lease(0, "a"), lease(1, "a")]) == {
        "shardId-000000000000": 1.0,
        "shardId-000000000001": 1.0,
    }


def test_hot_shard_owner_gets_fewer_leases() -> None:
    leases = [lease(0, None, 10.0)] + [lease(n, None, 1.0) for n in range(1, 8)]
    plan = plan_assignment(leases, {le.shard_id for le in leases}, {"a", "b", "c", "d"})
    hot_owner = plan.owners[leases[0].shard_id]
    assert plan.counts[hot_owner] == 1
    assert sorted(c for w, c in plan.counts.items() if w != hot_owner) == [2, 2, 3]


def test_damping_keeps_leases_in_place_on_small_rate_swings() -> None:
    leases = [lease(n, "a", 1.2) for n in range(3)] + [lease(n, "b", 0.8) for n in range(3, 6)]
    plan = plan_assignment(leases, set(), {"a", "b"})
    assert plan.counts == {"a": 3, "b": 3}
    rebalanced = plan_assignment(leases, set(), {"a", "b"}, damping=0.0)
    assert rebalanced.counts == {"a": 3, "b": 3}  # no single move lowers the maximum
    skewed = [dataclasses.replace(le, owner="a") for le in leases]
    assert plan_assignment(skewed, set(), {"a", "b"}).counts == {"a": 3, "b": 3}


def test_plan_is_the_same_on_every_worker() -> None:
    leases = [lease(n, None) for n in range(7)]
    free = {le.shard_id for le in leases}
    plans = [
        plan_assignment(list(order), free, {"x", "y", "z"}) for order in (leases, leases[::-1])
    ]
    assert plans[0].owners == plans[1].owners


def test_a_pinned_busiest_worker_does_not_block_moves_from_the_others() -> None:
    harness = Harness()
    harness.with_leases("c", 6, checkpoint_owner="a")  # handing 6 to c (fleet was smaller)
    harness.with_leases("a", 6)
    run = harness.taker("b").take_leases({"a", "b", "c"})
    assert len(run.requested) == 3  # from a, although c (pinned) is the busiest


def test_a_stopping_worker_withdraws_its_hand_off_requests() -> None:
    harness = Harness()
    harness.with_leases("a", 4)
    taker = harness.taker()
    requested = taker.take_leases({ME, "a"}).requested
    assert len(requested) == 2
    assert taker.cancel_handoffs() == 2
    assert harness.owners() == {"a": 4}
    assert all(lease.checkpoint_owner is None for lease in harness.table.list_leases())
    assert taker.pending_handoffs == frozenset()
