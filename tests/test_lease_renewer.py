"""Held leases: renewal, loss, self-fencing, concurrency tokens, checkpoints, release."""

from __future__ import annotations

import dataclasses

import pytest

from kinesis_actors._errors import (
    DependencyError,
    InvalidStateError,
    ShutdownError,
    ThrottlingError,
)
from kinesis_actors._leases import (
    InMemoryLeaseTable,
    Lease,
    LeaseEvent,
    LeaseRenewer,
    LeasesGained,
    LeasesLost,
    LeaseTaker,
)
from kinesis_actors._leases.lease import Checkpoint
from kinesis_actors._leases.table import Rates
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

FAILOVER = 10.0
SHARD = "shardId-000000000000"


class FlakyTable(InMemoryLeaseTable):
    """An in-memory table whose writes can be made to fail like an unreachable DynamoDB."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None

    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None:
        if self.failure is not None:
            raise self.failure
        return super()._renew_once(lease, rates)

    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        if self.failure is not None:
            raise self.failure
        return super()._checkpoint_once(lease, checkpoint)


class World:
    def __init__(self) -> None:
        self.table = FlakyTable()
        self.now = 500.0
        self.events: list[LeaseEvent] = []
        self.renewer = LeaseRenewer(
            self.table, "me", failover_time=FAILOVER, notify=self.events.append, clock=self.clock
        )

    def clock(self) -> float:
        return self.now

    def hold(self, shard_id: str = SHARD) -> str:
        """Take a free lease for "me" and adopt it; returns the concurrency token."""
        self.table.put(Lease(shard_id, None, 0, Sentinel.TRIM_HORIZON))
        taken = self.table.take(Lease(shard_id, None, 0, Sentinel.TRIM_HORIZON), "me")
        assert taken is not None
        (held,) = self.renewer.adopt([taken], self.now)
        return held.concurrency_token

    def stored(self, shard_id: str = SHARD) -> Lease:
        lease = self.table.get_lease(shard_id)
        assert lease is not None
        return lease


@pytest.fixture
def world() -> World:
    return World()


def test_adopt_reports_gained_with_a_fresh_token(world: World) -> None:
    token = world.hold()
    (event,) = world.events
    assert isinstance(event, LeasesGained)
    assert event.leases[0].shard_id == SHARD
    assert event.leases[0].concurrency_token == token
    assert event.leases[0].checkpoint == Sentinel.TRIM_HORIZON
    assert world.renewer.held() == event.leases


def test_renewal_bumps_the_counter_and_keeps_the_lease(world: World) -> None:
    world.hold()
    for _ in range(3):
        world.now += FAILOVER / 3
        world.renewer.renew_all()
    assert world.stored().counter == 4
    assert [held.shard_id for held in world.renewer.held()] == [SHARD]


def test_lease_taken_by_another_worker_is_lost_at_next_renewal(world: World) -> None:
    world.hold()
    assert world.table.take(world.stored(), "thief") is not None
    world.renewer.renew_all()
    assert world.renewer.held() == ()
    lost = world.events[-1]
    assert isinstance(lost, LeasesLost) and lost.leases[0].shard_id == SHARD


def test_deleted_lease_is_lost(world: World) -> None:
    world.hold()
    world.table.checkpoint(world.stored(), Sentinel.SHARD_END)  # another worker finished it
    world.table.delete_finished(SHARD)
    world.renewer.renew_all()
    assert world.renewer.held() == ()


def test_self_fencing_before_anyone_else_can_take_the_lease(world: World) -> None:
    """DynamoDB unreachable: the lease is dropped locally before another worker may take it."""
    thief = LeaseTaker(world.table, "thief", failover_time=FAILOVER, clock=world.clock)
    token = world.hold()
    renewed_at = world.now
    world.renewer.renew_all()  # success: renewed at `renewed_at`
    thief.take_leases()  # the thief sees the new counter right away

    world.table.failure = DependencyError("unreachable")
    for _ in range(9):
        world.now += 1.0
        world.renewer.renew_all()  # fails: lease kept, state unknown
        assert world.renewer.fence_expired() is not None
        thief.take_leases()
        assert [held.shard_id for held in world.renewer.held()] == [SHARD]
        assert world.stored().owner == "me"

    world.now = renewed_at + FAILOVER
    assert world.renewer.fence_expired() is None
    assert world.renewer.held() == ()
    assert isinstance(world.events[-1], LeasesLost)
    with pytest.raises(ShutdownError):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), token)
    assert thief.take_leases().taken == []  # not yet: the counter is not seen unchanged for longer
    world.now += 0.01
    assert [lease.owner for lease in thief.take_leases().taken] == ["thief"]
    world.table.failure = None
    world.renewer.renew_all()  # an expired lease is never renewed again
    assert world.renewer.held() == ()


def test_next_deadline_follows_the_oldest_renewal(world: World) -> None:
    assert world.renewer.next_deadline() is None
    world.hold()
    assert world.renewer.next_deadline() == world.now + FAILOVER
    world.now += 2
    world.renewer.renew_all()
    assert world.renewer.next_deadline() == world.now + FAILOVER


def test_fence_margin_drops_leases_early() -> None:
    table = InMemoryLeaseTable()
    now = [0.0]
    renewer = LeaseRenewer(
        table, "me", failover_time=10, fence_margin=1, notify=lambda e: None, clock=lambda: now[0]
    )
    renewer.adopt([Lease(SHARD, "me", 1, Sentinel.LATEST)], 0.0)
    now[0] = 9.0
    assert renewer.held() == ()


def test_throttled_renewal_keeps_the_lease(world: World) -> None:
    world.hold()
    world.table.failure = ThrottlingError("slow down")
    world.renewer.renew_all()
    assert len(world.renewer.held()) == 1


def test_checkpoint_writes_and_counts_as_renewal(world: World) -> None:
    token = world.hold()
    world.now += 8
    position = CompoundSequenceNumber("12345678901234567890123456789012345678901234567890123456", 2)
    world.renewer.checkpoint(SHARD, position, token)
    assert world.stored().checkpoint == position
    world.now += 8  # 16 s after the take, 8 after the checkpoint
    assert len(world.renewer.held()) == 1
    assert world.renewer.next_deadline() == world.now - 8 + FAILOVER


def test_checkpoint_with_a_stale_token_is_refused(world: World) -> None:
    """The KCL's testUpdateRegainedLease: lost, then regained under a new token."""
    old_token = world.hold()
    assert world.table.take(world.stored(), "thief") is not None
    world.renewer.renew_all()
    retaken = world.table.take(world.stored(), "me")
    assert retaken is not None
    (held,) = world.renewer.adopt([retaken], world.now)
    assert held.concurrency_token != old_token
    with pytest.raises(ShutdownError, match="stale"):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), old_token)
    world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), held.concurrency_token)
    assert world.stored().checkpoint == CompoundSequenceNumber("1")


def test_checkpoint_of_a_lost_lease_reports_it_lost(world: World) -> None:
    token = world.hold()
    assert world.table.take(world.stored(), "thief") is not None
    with pytest.raises(ShutdownError):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), token)
    assert isinstance(world.events[-1], LeasesLost)
    assert world.renewer.held() == ()
    assert world.stored().checkpoint == Sentinel.TRIM_HORIZON


def test_checkpoint_of_an_unknown_shard_is_refused(world: World) -> None:
    with pytest.raises(ShutdownError):
        world.renewer.checkpoint("shardId-x", CompoundSequenceNumber("1"), "token")


def test_checkpoint_errors_keep_the_lease(world: World) -> None:
    token = world.hold()
    world.table.failure = ThrottlingError("slow down")
    with pytest.raises(ThrottlingError):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), token)
    world.table.failure = DependencyError("down")
    with pytest.raises(DependencyError):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), token)
    assert len(world.renewer.held()) == 1


def test_no_sequence_number_after_shard_end(world: World) -> None:
    token = world.hold()
    world.renewer.checkpoint(SHARD, Sentinel.SHARD_END, token)
    with pytest.raises(InvalidStateError):
        world.renewer.checkpoint(SHARD, CompoundSequenceNumber("1"), token)
    with pytest.raises(ValueError):
        world.renewer.checkpoint(SHARD, Sentinel.LATEST, token)
    world.renewer.checkpoint(SHARD, Sentinel.SHARD_END, token)  # idempotent


def test_resume_own_leases_after_a_restart(world: World) -> None:
    world.table.put(Lease(SHARD, "me", 41, CompoundSequenceNumber("99")))
    world.table.put(Lease("shardId-other", "other", 3, Sentinel.LATEST))
    (held,) = world.renewer.resume_own_leases()
    assert (held.shard_id, held.checkpoint) == (SHARD, CompoundSequenceNumber("99"))
    assert world.stored().counter == 42
    assert isinstance(world.events[-1], LeasesGained)


def test_release_frees_the_lease_without_a_message(world: World) -> None:
    token = world.hold()
    world.hold("shardId-000000000001")
    before = list(world.events)
    assert not world.renewer.release(SHARD, "wrong token")
    assert world.renewer.release(SHARD, token)
    assert (world.stored().owner, world.stored().counter) == (None, 2)
    assert world.events == before
    assert world.renewer.release_all() == 1
    assert world.renewer.held() == ()
    assert world.stored("shardId-000000000001").owner is None


def test_release_of_a_stolen_lease_changes_nothing(world: World) -> None:
    token = world.hold()
    stolen = world.table.take(world.stored(), "thief")
    assert not world.renewer.release(SHARD, token)
    assert world.stored() == stolen


def test_drop_all_leaves_the_table_alone(world: World) -> None:
    world.hold()
    world.renewer.drop_all()
    assert world.renewer.held() == ()
    assert world.stored() == dataclasses.replace(world.stored(), owner="me", counter=1)
