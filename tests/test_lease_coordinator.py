"""The coordinator's threads and consumer-facing calls, on the in-memory table with short timings."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pykka
import pytest

from kinesis_actors._config import ConsumerConf, KclConf, load_config
from kinesis_actors._errors import DependencyError, InvalidStateError, ShutdownError
from kinesis_actors._leases import (
    InMemoryLeaseTable,
    Lease,
    LeaseCoordinator,
    LeaseEvent,
    LeasesGained,
    LeasesLost,
)
from kinesis_actors._leases.lease import Checkpoint, LeaseHandoffRequested
from kinesis_actors._leases.membership import InMemoryMembershipTable
from kinesis_actors._leases.table import Rates
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

FAILOVER = 0.3


def sid(number: int) -> str:
    return f"shardId-{number:012d}"


def shard(number: int, *parents: int, closed: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ShardId": sid(number),
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "100"},
        "SequenceNumberRange": {"StartingSequenceNumber": "1"},
    }
    if parents:
        entry["ParentShardId"] = sid(parents[0])
    if closed:
        entry["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
    return entry


class FakeKinesis:
    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": list(self.shards)}


def kcl(**overrides: Any) -> KclConf:
    base = ConsumerConf.from_config(load_config("kinesis { c { stream-name = s } }"), "c").kcl
    settings: dict[str, Any] = {
        "failover_time": FAILOVER,
        "epsilon": 0.005,
        "shard_sync_interval": 0.2,
        "released_lease_poll_interval": 0.05,
        "initial_position": "TRIM_HORIZON",
    }
    return dataclasses.replace(base, **(settings | overrides))


class Recorder:
    """A subscriber that keeps every message, thread-safely."""

    def __init__(self) -> None:
        self.events: list[LeaseEvent] = []
        self.lock = threading.Lock()
        #: Set: hand-off requests are answered by releasing (as the consumer does).
        self.coordinator: LeaseCoordinator | None = None

    def __call__(self, event: LeaseEvent) -> None:
        with self.lock:
            self.events.append(event)
        if isinstance(event, LeaseHandoffRequested) and self.coordinator is not None:
            for lease in event.leases:  # as the consumer does: final checkpoint, then release
                self.coordinator.release(lease.shard_id, lease.concurrency_token)

    def held(self) -> set[str]:
        """Shards held according to the messages so far."""
        held: set[str] = set()
        with self.lock:
            for event in self.events:
                if isinstance(event, LeasesGained):
                    held |= {lease.shard_id for lease in event.leases}
                elif isinstance(event, LeasesLost):
                    held -= {lease.shard_id for lease in event.leases}
        return held


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


class Fleet:
    """Coordinators sharing one in-memory table; every one is stopped at teardown."""

    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.table = InMemoryLeaseTable()
        self.members = InMemoryMembershipTable()
        self.kinesis = FakeKinesis(shards)
        self.coordinators: list[LeaseCoordinator] = []

    def start(
        self, worker_id: str, subscriber: Any = None, *, hand_over: bool = True, **overrides: Any
    ) -> tuple[LeaseCoordinator, Recorder]:
        recorder = Recorder()
        coordinator = LeaseCoordinator(
            kcl(**overrides),
            table_name="leases",
            stream_name="s",
            kinesis=self.kinesis,
            table=self.table,
            subscriber=subscriber or recorder,
            worker_id=worker_id,
            membership_table=self.members,
        )
        recorder.coordinator = coordinator if hand_over else None
        self.coordinators.append(coordinator)
        coordinator.start()
        return coordinator, recorder

    def owners(self) -> dict[str | None, int]:
        counts: dict[str | None, int] = {}
        for lease in self.table.list_leases():
            counts[lease.owner] = counts.get(lease.owner, 0) + 1
        return counts


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    fleet = Fleet([shard(n) for n in range(4)])
    yield fleet
    for coordinator in fleet.coordinators:
        coordinator.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("lease-")]


def test_start_takes_every_lease_and_stop_releases_them(fleet: Fleet) -> None:
    coordinator, recorder = fleet.start("a")
    wait_until(lambda: recorder.held() == {sid(n) for n in range(4)})
    assert len(coordinator.held_leases()) == 4
    assert all(held.checkpoint == Sentinel.TRIM_HORIZON for held in coordinator.held_leases())
    coordinator.stop()
    assert fleet.owners() == {None: 4}
    assert coordinator.held_leases() == ()
    coordinator.stop()  # idempotent


def test_second_worker_gets_its_share_by_hand_off(fleet: Fleet) -> None:
    from kinesis_actors import metrics

    memory = metrics.in_memory()
    steals_before = memory.total("LeaseSteals", worker="b")
    # A longer failover than the other tests': on a loaded machine a renewal late by 0.3 s would
    # let b take an expired lease instead of one handed over, which is another test's subject.
    first, first_events = fleet.start("a", failover_time=1.0)
    wait_until(lambda: len(first.held_leases()) == 4)
    second, recorder = fleet.start("b", failover_time=1.0)
    wait_until(lambda: fleet.owners() == {"a": 2, "b": 2} and len(second.held_leases()) == 2)
    wait_until(lambda: len(first.held_leases()) == 2)
    assert len(recorder.held()) == 2
    requested = [e for e in first_events.events if isinstance(e, LeaseHandoffRequested)]
    assert sum(len(e.leases) for e in requested) == 2
    assert memory.total("LeaseSteals", worker="b") - steals_before == 0  # handed, not stolen
    assert all(lease.checkpoint_owner is None for lease in fleet.table.list_leases())


def test_unanswered_hand_off_is_taken_after_the_timeout(fleet: Fleet) -> None:
    first, first_events = fleet.start("a", hand_over=False)
    wait_until(lambda: len(first.held_leases()) == 4)
    second, _ = fleet.start("b", lease_handoff_timeout=0.2)
    wait_until(lambda: len(second.held_leases()) == 2)
    wait_until(lambda: len(first.held_leases()) == 2)  # lost at its next renewal
    assert len(first_events.held()) == 2


def test_graceful_stop_hands_leases_over_at_once(fleet: Fleet) -> None:
    first, _ = fleet.start("a")
    wait_until(lambda: len(first.held_leases()) == 4)
    second, _ = fleet.start("b")
    wait_until(lambda: len(second.held_leases()) == 2)
    first.stop(release=True)
    started = time.monotonic()
    wait_until(lambda: len(second.held_leases()) == 4)
    assert time.monotonic() - started < FAILOVER  # no need to wait for expiry


def test_stop_without_release_lets_leases_expire(fleet: Fleet) -> None:
    first, _ = fleet.start("a", release_leases_on_shutdown=False)
    wait_until(lambda: len(first.held_leases()) == 4)
    second, _ = fleet.start("b", release_leases_on_shutdown=False)
    wait_until(lambda: len(second.held_leases()) == 2)
    first.stop()
    stopped = time.monotonic()
    assert fleet.owners().get("a", 0) >= 2  # still owned in the table
    wait_until(lambda: len(second.held_leases()) == 4)
    # Expired: unchanged for the failover time since its last renewal, up to a renewal interval
    # before the stop (the leaver's gone heartbeat has the survivor take them at that moment).
    assert time.monotonic() - stopped > FAILOVER - kcl().renewer_interval


def test_released_lease_goes_to_another_worker(fleet: Fleet) -> None:
    first, _ = fleet.start("a")
    wait_until(lambda: len(first.held_leases()) == 4)
    second, _ = fleet.start("b", max_leases_for_worker=1)
    wait_until(lambda: len(second.held_leases()) == 1 and len(first.held_leases()) == 3)
    held = first.held_leases()[0]
    assert first.release(held.shard_id, held.concurrency_token)
    assert not first.release(held.shard_id, held.concurrency_token)
    time.sleep(FAILOVER)
    assert held.shard_id not in {lease.shard_id for lease in first.held_leases()}


def test_checkpoints_and_concurrency_tokens(fleet: Fleet) -> None:
    coordinator, _ = fleet.start("a")
    wait_until(lambda: len(coordinator.held_leases()) == 4)
    held = coordinator.held_leases()[0]
    position = CompoundSequenceNumber("4" * 56, 1)
    coordinator.checkpoint(held.shard_id, position, held.concurrency_token)
    assert fleet.table.get_lease(held.shard_id).checkpoint == position
    assert coordinator.held_leases()[0] == dataclasses.replace(held, checkpoint=position)
    with pytest.raises(ShutdownError):
        coordinator.checkpoint(held.shard_id, position, "another token")
    with pytest.raises(ShutdownError):
        coordinator.checkpoint("shardId-unknown", position, held.concurrency_token)


def steal(table: InMemoryLeaseTable, shard_id: str, thief: str) -> None:
    """Take a lease for ``thief``, retrying if a renewal got in between."""
    while True:
        lease = table.get_lease(shard_id)
        assert lease is not None
        if table.take(lease, thief) is not None:
            return


def test_lost_lease_is_reported_and_its_checkpoints_refused(fleet: Fleet) -> None:
    coordinator, recorder = fleet.start("a")
    wait_until(lambda: len(recorder.held()) == 4)
    held = coordinator.held_leases()[0]
    steal(fleet.table, held.shard_id, "thief")
    wait_until(lambda: held.shard_id not in recorder.held())
    lost = [e for e in recorder.events if isinstance(e, LeasesLost)]
    assert lost[0].leases[0].concurrency_token == held.concurrency_token
    with pytest.raises(ShutdownError):
        coordinator.checkpoint(held.shard_id, CompoundSequenceNumber("1"), held.concurrency_token)


def test_shard_end_creates_children_and_parents_gate_them() -> None:
    fleet = Fleet([shard(0, closed=True), shard(1, 0), shard(2, 0)])
    coordinator, recorder = fleet.start("a")
    try:
        wait_until(lambda: len(coordinator.held_leases()) == 1)
        (parent,) = coordinator.held_leases()
        assert parent.shard_id == sid(0)
        assert coordinator.parents_finished(sid(0))
        children = coordinator.shard_ended(sid(0), parent.concurrency_token)
        assert children == (sid(1), sid(2))
        assert coordinator.shard_ended(sid(0), parent.concurrency_token) == children
        wait_until(lambda: recorder.held() == {sid(0), sid(1), sid(2)})
        assert coordinator.parents_finished(sid(1))
        with pytest.raises(InvalidStateError):
            coordinator.checkpoint(sid(0), CompoundSequenceNumber("5"), parent.concurrency_token)
        child = next(h for h in coordinator.held_leases() if h.shard_id == sid(1))
        assert child.parent_shard_ids == (sid(0),)
        assert child.checkpoint == Sentinel.TRIM_HORIZON
    finally:
        coordinator.stop()


def test_parents_gate_blocks_until_shard_end() -> None:
    fleet = Fleet([shard(0, closed=True), shard(1, 0)])
    fleet.table.put(Lease(sid(0), "other", 1, CompoundSequenceNumber("3")))
    fleet.table.put(Lease(sid(1), None, 0, Sentinel.TRIM_HORIZON, parent_shard_ids=(sid(0),)))
    coordinator, _ = fleet.start("a", max_leases_for_worker=1)
    try:
        wait_until(lambda: len(coordinator.held_leases()) == 1)
        assert coordinator.held_leases()[0].shard_id == sid(1)
        assert not coordinator.parents_finished(sid(1))
        parent = fleet.table.get_lease(sid(0))
        assert parent is not None
        fleet.table.put(dataclasses.replace(parent, checkpoint=Sentinel.SHARD_END))
        assert coordinator.parents_finished(sid(1))
        fleet.table.delete_finished(sid(0))
        assert coordinator.parents_finished(sid(1))
        with pytest.raises(ShutdownError):
            coordinator.parents_finished("shardId-unknown")
    finally:
        coordinator.stop()


def test_stop_taking_keeps_checkpoints_working(fleet: Fleet) -> None:
    coordinator, _ = fleet.start("a", max_leases_for_worker=2)
    wait_until(lambda: len(coordinator.held_leases()) == 2)
    coordinator.stop_taking()
    fleet.table.put(Lease(sid(9), None, 0, Sentinel.TRIM_HORIZON))
    time.sleep(FAILOVER * 2)  # renewals go on; nothing new is taken
    held = coordinator.held_leases()
    assert len(held) == 2
    coordinator.checkpoint(held[0].shard_id, CompoundSequenceNumber("7"), held[0].concurrency_token)
    assert fleet.owners()[None] == 3


class Flaky(InMemoryLeaseTable):
    """Every write fails while ``broken``, as when DynamoDB cannot be reached."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def _take_once(self, lease: Lease, owner: str) -> Lease | None:
        if self.broken:
            raise DependencyError("unreachable")
        return super()._take_once(lease, owner)

    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None:
        if self.broken:
            raise DependencyError("unreachable")
        return super()._renew_once(lease, rates)

    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        if self.broken:
            raise DependencyError("unreachable")
        return super()._checkpoint_once(lease, checkpoint)


def test_unreachable_dynamodb_fences_within_failover_time(fleet: Fleet) -> None:
    fleet.table = Flaky()
    coordinator, recorder = fleet.start("a")
    wait_until(lambda: len(coordinator.held_leases()) == 4)
    fleet.table.broken = True
    broken_at = time.monotonic()
    wait_until(lambda: recorder.held() == set(), timeout=FAILOVER * 3)
    assert time.monotonic() - broken_at < FAILOVER + 0.15
    assert coordinator.held_leases() == ()


def test_restarted_worker_resumes_its_leases(fleet: Fleet) -> None:
    for n in range(4):
        fleet.table.put(Lease(sid(n), "a", 7, CompoundSequenceNumber(str(n + 10))))
    _, recorder = fleet.start("a")
    first = recorder.events[0]
    assert isinstance(first, LeasesGained) and len(first.leases) == 4  # before start() returned
    assert {held.checkpoint for held in first.leases} == {
        CompoundSequenceNumber(str(n + 10)) for n in range(4)
    }


class Manager(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[LeaseEvent] = []

    def on_receive(self, message: Any) -> Any:
        if message == "events":
            return list(self.events)
        self.events.append(message)
        return None


def test_pykka_actor_subscriber_is_told(fleet: Fleet) -> None:
    manager = Manager.start()
    try:
        coordinator, _ = fleet.start("a", subscriber=manager)
        wait_until(lambda: len(coordinator.held_leases()) == 4)
        wait_until(lambda: sum(len(e.leases) for e in manager.ask("events")) == 4)
        coordinator.stop()
    finally:
        manager.stop()
    coordinator.stop()  # a dead subscriber does not matter


def test_subscriber_may_call_back_into_the_coordinator(fleet: Fleet) -> None:
    seen: list[int] = []
    coordinators: list[LeaseCoordinator] = []

    def subscriber(event: LeaseEvent) -> None:
        seen.append(len(coordinators[0].held_leases()))

    coordinator = LeaseCoordinator(
        kcl(),
        table_name="leases",
        stream_name="s",
        kinesis=fleet.kinesis,
        table=fleet.table,
        subscriber=subscriber,
        worker_id="a",
    )
    coordinators.append(coordinator)
    fleet.coordinators.append(coordinator)
    coordinator.start()
    wait_until(lambda: seen == [4])


def test_failing_subscriber_does_not_stop_the_coordinator(fleet: Fleet) -> None:
    def subscriber(event: LeaseEvent) -> None:
        raise RuntimeError("bug in the consumer")

    coordinator, _ = fleet.start("a", subscriber=subscriber)
    wait_until(lambda: len(coordinator.held_leases()) == 4)


class MissingStream(FakeKinesis):
    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        if not self.shards:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no stream"}},
                "ListShards",
            )
        return super().list_shards(**kwargs)


def test_failed_start_raises_and_may_be_retried(fleet: Fleet) -> None:
    fleet.kinesis = MissingStream([])
    with pytest.raises(InvalidStateError, match="does not exist"):
        fleet.start("a")
    coordinator = fleet.coordinators[-1]
    assert not [t for t in threading.enumerate() if t.name.startswith("lease-")]
    fleet.kinesis.shards.append(shard(0))
    coordinator.start()
    wait_until(lambda: len(coordinator.held_leases()) == 1)


def test_start_twice_is_an_error(fleet: Fleet) -> None:
    coordinator, _ = fleet.start("a")
    with pytest.raises(RuntimeError):
        coordinator.start()


def test_needs_a_table_or_a_client() -> None:
    with pytest.raises(ValueError):
        LeaseCoordinator(kcl(), table_name="t", stream_name="s", kinesis=FakeKinesis([]))


def test_from_consumer_conf_uses_the_resolved_table_name() -> None:
    conf = ConsumerConf.from_config(
        load_config(
            "kinesis { application-name = app, c { stream-name = orders, kcl { workerId = w1 } } }"
        ),
        "c",
    )
    coordinator = LeaseCoordinator.from_consumer_conf(
        conf, kinesis=FakeKinesis([]), dynamodb=object()
    )
    assert (coordinator.table.name, coordinator.worker_id) == ("app-orders", "w1")
