"""When the taker scans the lease table: membership signals, crash failover, safety scans.

Workers are the coordinator's parts (`LeaseRenewer`, `LeaseTaker`, `Membership`, `TakerLoop`)
on one in-memory lease table and membership table, stepped in virtual time (no threads, no
sleeps), so the bounds asserted are the protocol's, not the machine's.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kinesis_actors._leases import InMemoryLeaseTable, Lease, LeaseRenewer, LeaseTaker
from kinesis_actors._leases.lease import LeaseEvent, LeaseHandoffRequested, LeasesGained
from kinesis_actors._leases.membership import InMemoryMembershipTable, Member, Membership
from kinesis_actors._leases.taker_loop import TakerLoop
from kinesis_actors._models import Sentinel

FAILOVER = 2.0
EPSILON = 0.025
RENEWER_INTERVAL = FAILOVER / 3 - EPSILON
TAKER_INTERVAL = (FAILOVER + EPSILON) * 2
POLL = 0.25
SUSPECT_AFTER = RENEWER_INTERVAL + POLL + FAILOVER / 10
SAFETY = 300.0
HANDOFF_CHECK = 0.05
LEAVE_WAIT = 1.5
#: A consumer's time to finish a shard's batch and checkpoint, after a hand-off request.
BATCH_FINISH = 0.1
FORGET_AFTER = 60.0


class CountingTable(InMemoryLeaseTable):
    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def list_leases(self) -> list[Lease]:
        self.scans += 1
        return super().list_leases()


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class World:
    """Workers in virtual time; ``java`` leases are renewed by a worker with no membership."""

    def __init__(self, shards: int) -> None:
        self.now = 0.0
        self.table = CountingTable()
        self.members = InMemoryMembershipTable()
        self.workers: dict[str, Worker] = {}
        self._queue: list[_Event] = []
        self._seq = 0
        for n in range(shards):
            self.table.put(Lease(f"shardId-{n:012d}", None, 0, Sentinel.TRIM_HORIZON))

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(when, self._seq, action))

    def start(self, worker_id: str) -> Worker:
        self.workers[worker_id] = Worker(self, worker_id)
        return self.workers[worker_id]

    def run(self, until: Callable[[], bool], limit: float) -> float:
        """Run events until ``until()`` holds (returns the time) or ``limit`` seconds pass."""
        end = self.now + limit
        while self._queue and self._queue[0].at <= end:
            event = heapq.heappop(self._queue)
            self.now = event.at
            event.action()
            if until():
                return self.now
        raise AssertionError(f"not reached within {limit} s (virtual)")

    def idle(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0].at <= end:
            event = heapq.heappop(self._queue)
            self.now = event.at
            event.action()
        self.now = end

    def held(self) -> dict[str, int]:
        return {w: len(worker.renewer.held()) for w, worker in self.workers.items() if worker.up}


class Worker:
    def __init__(self, world: World, worker_id: str) -> None:
        self.world = world
        self.worker_id = worker_id
        self.up = True
        #: False: renewals go on, heartbeats are not written (the membership table fails).
        self.beats = True
        #: Each renewal round's writes land up to this long after its start (a loaded host).
        self.spread = 0.0
        self.rng = random.Random(worker_id)
        self.last_beat = world.now
        #: False once a graceful stop began: the taker thread is stopped.
        self.taking = True
        #: shard id -> virtual time this worker released it (after its final checkpoint).
        self.released: dict[str, float] = {}
        #: (virtual time, message) for every message to the subscriber.
        self.events: list[tuple[float, LeaseEvent]] = []
        self.renewer = LeaseRenewer(
            world.table, worker_id, failover_time=FAILOVER, notify=self.notify,
            fence_margin=EPSILON, clock=world.clock,
        )  # fmt: skip
        taker = LeaseTaker(
            world.table, worker_id, failover_time=FAILOVER, renewer_interval=RENEWER_INTERVAL,
            clock=world.clock,
        )  # fmt: skip
        self.membership = Membership(
            world.members, worker_id, failover_time=FAILOVER, suspect_after=SUSPECT_AFTER,
            forget_after=FORGET_AFTER, clock=world.clock,
        )  # fmt: skip
        self.loop = TakerLoop(
            renewer=self.renewer, taker=taker, membership=self.membership, table_name="leases",
            failover_time=FAILOVER, taker_interval=TAKER_INTERVAL,
            renewer_interval=RENEWER_INTERVAL, poll_interval=POLL, safety_interval=SAFETY,
            handoff_check_interval=HANDOFF_CHECK, stopped=threading.Event(), notify=self.notify,
            flush=lambda: None, wake_fence=lambda: None, worker_id=worker_id, clock=world.clock,
        )  # fmt: skip
        self.membership.beat()
        world.at(world.now, self.step)
        world.at(world.now + RENEWER_INTERVAL, self.renew)

    def notify(self, event: LeaseEvent) -> None:
        self.events.append((self.world.now, event))
        if isinstance(event, LeaseHandoffRequested):  # the consumer: finish, checkpoint, release
            for lease in event.leases:
                self.world.at(
                    self.world.now + BATCH_FINISH,
                    lambda s=lease.shard_id, t=lease.concurrency_token: self.release(s, t),
                )

    def release(self, shard_id: str, token: str) -> None:
        """`LeaseCoordinator.release`."""
        lease = self.renewer.lease(shard_id)
        handed_over = lease is not None and lease.checkpoint_owner == self.worker_id
        if self.renewer.release(shard_id, token):
            self.released[shard_id] = self.world.now
            self.loop.released(shard_id, keep_free=not handed_over)

    def stop_gracefully(self) -> None:
        """`LeaseCoordinator.hand_over`, then `LeaseCoordinator.stop`."""
        self.taking = False
        if self.loop.begin_leave(LEAVE_WAIT):
            self.world.at(self.world.now, self._leave_step)
        else:
            self._stop()

    def _leave_step(self) -> None:
        delay = self.loop.leave_step()
        if delay is None:
            self.world.at(self.world.now + BATCH_FINISH, self._stop)
        else:
            self.world.at(self.world.now + delay, self._leave_step)

    def _stop(self) -> None:
        for shard_id in self.renewer.held_shard_ids():
            if self.renewer.release(shard_id):
                self.released[shard_id] = self.world.now
        self.loop.leave()
        self.up = False

    def step(self) -> None:
        if self.up and self.taking:
            delay = self.loop.step()
            assert delay is not None
            self.world.at(self.world.now + delay, self.step)

    def renew(self) -> None:
        if self.up and self.spread:
            self.world.at(self.world.now + RENEWER_INTERVAL, self.renew)
            self.world.at(self.world.now + self.rng.uniform(0, self.spread), self.renewer.renew_all)
        elif self.up:
            self.renewer.renew_all()
            self.renewer.fence_expired()
            if self.beats:
                self.loop.heartbeat()
                self.last_beat = self.world.now
            self.world.at(self.world.now + RENEWER_INTERVAL, self.renew)

    def crash(self) -> None:
        """SIGKILL: no release, no leave, nothing written any more."""
        self.up = False


def balanced(world: World, *counts: int) -> Callable[[], bool]:
    return lambda: sorted(world.held().values()) == sorted(counts)


def test_killed_workers_leases_move_about_failover_time_after_its_last_heartbeat() -> None:
    world = World(4)
    a, b = world.start("a"), world.start("b")
    world.run(balanced(world, 2, 2), 60)
    for phase in (7.3, 5.1, 6.2):  # some phases between renewals and polls
        world.idle(phase)
        b.crash()
        taken = world.run(lambda: len(a.renewer.held()) == 4, 30)
        # Not before the victim's leases could expire. Its last heartbeat (written right after
        # its last renewal) is seen within a poll; its leases' counters are dated back to it, or
        # to one and a half renewal intervals before the scan its late heartbeat set off if that
        # is later: not a late-heartbeat delay plus failover time.
        backdated = max(FAILOVER, SUSPECT_AFTER + POLL + 1.5 * RENEWER_INTERVAL)
        assert FAILOVER < taken - b.last_beat <= POLL + backdated + 0.01 < SUSPECT_AFTER + FAILOVER
        assert a.membership.live() == frozenset({"a"})
        b = world.start(f"b{phase}")
        world.run(balanced(world, 2, 2), 60)


def test_a_member_whose_heartbeats_fail_but_renewals_go_on_keeps_its_leases() -> None:
    world = World(4)
    world.start("a")
    b = world.start("b")
    world.run(balanced(world, 2, 2), 60)
    b.beats = False
    b.spread = 0.45 * RENEWER_INTERVAL  # its renewals land late, by up to this much
    scans = world.table.scans
    # Suspect, aged out, then its item forgotten (a Java-KCL-like owner): never robbed.
    world.idle(FORGET_AFTER + 3 * TAKER_INTERVAL)
    assert world.table.scans - scans > 3  # a scanned: it suspected b
    assert world.held() == {"a": 2, "b": 2}
    assert {type(event).__name__ for _, event in b.events} == {"LeasesGained"}


def test_leases_of_an_owner_without_membership_need_failover_time_unchanged() -> None:
    world = World(1)
    java_leases = ("shardId-java-1",)  # its fair share: no hand-off is asked of it
    for shard_id in java_leases:
        world.table.put(Lease(shard_id, "java-worker", 1, Sentinel.TRIM_HORIZON))
    renewing = [True]
    renewed = [0.0]

    def java_renews() -> None:
        if not renewing[0]:
            return
        for shard_id in java_leases:
            lease = world.table.get_lease(shard_id)
            assert lease is not None and world.table.renew(lease) is not None
        renewed[0] = world.now
        world.at(world.now + RENEWER_INTERVAL, java_renews)

    world.at(0.0, java_renews)
    a = world.start("a")
    world.idle(2 * TAKER_INTERVAL + 0.3)
    assert world.held() == {"a": 1}
    renewing[0] = False  # the Java worker dies
    taken = world.run(lambda: len(a.renewer.held()) == 2, 30)
    # Its last counters were first observed by a scan after its last renewal: failover time
    # after that scan, on the KCL's taker cadence.
    assert taken - renewed[0] > FAILOVER + RENEWER_INTERVAL


def test_a_quiet_fleet_scans_the_lease_table_only_for_safety() -> None:
    world = World(6)
    for worker_id in "abc":
        world.start(worker_id)
    world.run(balanced(world, 2, 2, 2), 60)
    world.idle(2 * TAKER_INTERVAL)  # the last counts announced and planned with
    scans = world.table.scans
    world.idle(SAFETY)
    # One safety scan per worker (the KCL would scan SAFETY / TAKER_INTERVAL ~ 74 times each).
    assert world.table.scans - scans <= 3 * 2


def test_a_lease_held_by_a_worker_without_membership_brings_back_the_kcl_cadence() -> None:
    world = World(2)
    java_leases = ("shardId-java-1", "shardId-java-2")
    for shard_id in java_leases:
        world.table.put(Lease(shard_id, "java-worker", 1, Sentinel.TRIM_HORIZON))

    def java_renews() -> None:
        for shard_id in java_leases:
            lease = world.table.get_lease(shard_id)
            assert lease is not None and world.table.renew(lease) is not None
        world.at(world.now + RENEWER_INTERVAL, java_renews)

    world.at(0.0, java_renews)
    world.start("a")
    world.run(lambda: world.held() == {"a": 2}, 60)
    scans = world.table.scans
    world.idle(10 * TAKER_INTERVAL)
    assert 9 <= world.table.scans - scans <= 12  # one per taker interval: the Java lease is live
    assert {lease.owner for lease in world.table.list_leases()} == {"a", "java-worker"}


def test_an_owner_learns_of_a_hand_off_request_at_its_next_poll() -> None:
    world = World(4)
    a = world.start("a")
    world.run(lambda: world.held() == {"a": 4}, 60)
    renewals = int(world.now / RENEWER_INTERVAL) + 1  # a started at 0 and renews on a grid
    world.idle(renewals * RENEWER_INTERVAL + 0.01 - world.now)  # just after a renewal
    world.start("b")
    joined = world.now
    asked = world.run(lambda: any(isinstance(e, LeaseHandoffRequested) for _, e in a.events), 10)
    # b's heartbeat names the leases it asked for; a renews them at its next poll and sees the
    # request, instead of at its next renewal.
    assert asked - joined <= 2 * POLL < RENEWER_INTERVAL


def test_a_release_is_announced_and_taken_at_the_next_poll() -> None:
    world = World(4)
    a, b = world.start("a"), world.start("b")
    world.run(balanced(world, 2, 2), 60)
    world.idle(2 * TAKER_INTERVAL)
    a.renewer.release_all()
    a.loop.leave()
    a.up = False
    stopped = world.now
    taken = world.run(lambda: len(b.renewer.held()) == 4, 30)
    assert taken - stopped <= POLL + 1e-9


# -- graceful leave: announce, then hand over while still processing ---------------------------


def _gained_at(worker: Worker, shard_id: str) -> float:
    return min(
        at
        for at, event in worker.events
        if isinstance(event, LeasesGained) and shard_id in {le.shard_id for le in event.leases}
    )


def test_a_graceful_leave_announces_then_hands_each_lease_over_while_processing() -> None:
    world = World(4)
    a, b = world.start("a"), world.start("b")
    world.run(balanced(world, 2, 2), 60)
    world.idle(2 * TAKER_INTERVAL + 0.37)  # settled; some phase of b's poll
    shards = a.renewer.held_shard_ids()
    begun = world.now
    a.stop_gracefully()
    assert a.membership.table.members()  # the leaving heartbeat
    assert {m.worker_id for m in a.membership.table.members() if m.leaving} == {"a"}
    moved = world.run(lambda: len(b.renewer.held()) == 4 and not a.up, 30)
    # b planned without a at its next poll and asked for a's leases; a answered each request
    # (finish the batch, checkpoint, release: the release completes the hand-off) ...
    asked = {
        le.shard_id for _, e in a.events if isinstance(e, LeaseHandoffRequested) for le in e.leases
    }
    assert asked == shards
    assert moved - begun <= POLL + BATCH_FINISH + 2 * HANDOFF_CHECK + BATCH_FINISH + 1e-9
    # ... and b started each one within a hand-off check of its release, where a left it.
    for shard_id in shards:
        assert 0 <= _gained_at(b, shard_id) - a.released[shard_id] <= HANDOFF_CHECK + 1e-9
        lease = world.table.get_lease(shard_id)
        assert lease is not None and (lease.owner, lease.checkpoint_owner) == ("b", None)
    assert not b.loop._taker.pending_handoffs
    assert [m.worker_id for m in world.members.members()] == ["b"]  # a left


def test_a_leave_nobody_answers_releases_plainly_after_the_wait() -> None:
    world = World(4)
    a, b = world.start("a"), world.start("b")
    world.run(balanced(world, 2, 2), 60)
    b.taking = False  # alive (it beats and renews) but never plans: a KCL 2.x-like peer
    begun = world.now
    a.stop_gracefully()
    world.run(lambda: not a.up, 30)
    assert LEAVE_WAIT <= world.now - begun <= LEAVE_WAIT + BATCH_FINISH + 1e-9
    assert not any(isinstance(e, LeaseHandoffRequested) for _, e in a.events)
    assert all(lease.owner != "a" for lease in world.table.list_leases())  # released


def test_a_worker_alone_stops_without_waiting() -> None:
    world = World(2)
    a = world.start("a")
    world.run(lambda: world.held() == {"a": 2}, 60)
    assert not a.loop.begin_leave(LEAVE_WAIT)
    assert not [m for m in world.members.members() if m.leaving]


# -- the membership items of dead workers ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_dead_workers_item_is_deleted_once_unchanged_for_the_cleanup_time() -> None:
    table, clock = InMemoryMembershipTable(), Clock()
    me = Membership(table, "me", failover_time=FAILOVER, forget_after=FORGET_AFTER, clock=clock)
    table.put(Member("dead", heartbeat=7, leases=3))
    me.poll()
    clock.now += FAILOVER + 1
    me.poll()
    assert me.live() == {"me"} and "dead" in me.departed()
    assert [m.worker_id for m in table.members()] == ["dead"]  # aged out, not forgotten yet
    clock.now += FORGET_AFTER
    me.poll()
    assert table.members() == []


def test_a_worker_that_beats_again_keeps_its_item() -> None:
    table, clock = InMemoryMembershipTable(), Clock()
    me = Membership(table, "me", failover_time=FAILOVER, forget_after=FORGET_AFTER, clock=clock)
    table.put(Member("slow", heartbeat=7))
    me.poll()
    clock.now += FORGET_AFTER + 1
    table.put(Member("slow", heartbeat=8))  # written after this worker's poll read heartbeat 7
    assert not table.remove("slow", heartbeat=7)  # the conditional delete of that poll fails
    me.poll()
    assert me.live() == {"me", "slow"}
    assert [m.heartbeat for m in table.members()] == [8]


def test_needs_plan_on_announced_changes_only() -> None:
    table, clock = InMemoryMembershipTable(), Clock()
    me = Membership(table, "me", failover_time=FAILOVER, clock=clock)
    table.put(Member("w", heartbeat=1, leases=2, bytes_per_second=10_000.0))
    assert me.poll()  # joined
    me.planned()
    table.put(Member("w", heartbeat=2, leases=2, bytes_per_second=11_000.0))
    assert not me.poll()  # a heartbeat, and load within the damping
    table.put(Member("w", heartbeat=3, leases=2, bytes_per_second=20_000.0))
    assert me.poll()  # load moved
    me.planned()
    for change in ({"leases": 3}, {"releases": 1}, {"created": 1}):
        table.put(Member("w", heartbeat=4, bytes_per_second=20_000.0, **({"leases": 2} | change)))
        assert me.poll(), change
    table.remove("w")
    assert me.poll() and me.live() == {"me"} and me.departed() == {"w"}
