"""Fleet balancing: time to balance, duplicates per rebalance, lease-table reads, hand-off time.

Run ``python benchmarks/fleet.py`` (about a minute; ``--no-processes`` skips the part that needs
kinesalite + dynalite).

Simulated part (one process, virtual time, KCL-default timings: failover 10 s, renewals every
3.308 s, taker every 20.05 s, membership poll every 1 s): N workers are real `LeaseRenewer`s and
takers on one `InMemoryLeaseTable`, driven by an event queue with an injected clock. "ours" is
`LeaseTaker` with fleet membership and graceful hand-offs (the consumer's answer to a hand-off
request is modelled as a final checkpoint and release 0.1 s later); "KCL-style" is the KCL 2.x
taker (workers counted from lease owners, free leases first, else one steal per run from the
busiest worker, the off-by-one rule; no hand-off, no release on shutdown), in the same harness.

* balance: time from the last worker's start until every open lease is held and counts differ
  by at most one;
* duplicates per moved lease: each shard carries 10 records/s and checkpoints every 2 s
  (``checkpointer.intervalMillis``) at a random phase; a steal re-delivers what the old owner
  processed after its last checkpoint until it noticed the loss (its next failed renewal); a
  hand-off re-delivers nothing (final checkpoint, then release, then the new owner starts);
* reads: lease-table items read per worker per hour at idle, 10 workers on a 200-lease table
  (KCL 2.x also scans every 5 minutes for its leader election); the membership table's items
  and an estimate of read units (0.4 KB per lease item, 0.1 KB per member, 0.5 unit per 4 KB
  and at least one unit per request, eventually consistent) are shown too.

Measured part (real processes on kinesalite + dynalite, default timings): four
``integration/lease_worker.py`` workers on 12 shards; three in turn stop gracefully (SIGTERM at a
random phase of the others' membership poll). Per stop: the processing gap of each moved shard,
from the moment the leaver starts its release write (the hand-off's, or the plain release of a
shard nobody asked for) to the new owner holding it; the stop's duration, from the SIGTERM to
the leaver's exit; and from the SIGTERM to the others holding all its shards.
``--processes-only`` skips the simulation (e.g. to run this part against an older tree).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The repository root instead of benchmarks/ (whose asyncio.py would shadow the standard one).
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kinesis_actors._leases import InMemoryLeaseTable, Lease, LeaseRenewer, LeaseTaker
from kinesis_actors._leases.lease import LeaseEvent, LeaseHandoffRequested, LeasesLost
from kinesis_actors._leases.membership import InMemoryMembershipTable, Member, Membership
from kinesis_actors._leases.taker import TakerRun
from kinesis_actors._leases.taker_loop import TakerLoop
from kinesis_actors._models import Sentinel

FAILOVER = 10.0
EPSILON = 0.025
RENEWER_INTERVAL = FAILOVER / 3 - EPSILON
TAKER_INTERVAL = (FAILOVER + EPSILON) * 2
POLL_INTERVAL = 1.0
SAFETY_SCAN_INTERVAL = 900.0
SHARD_SYNC_INTERVAL = 60.0
KCL_SHARD_SYNC_AUDIT_INTERVAL = 120.0
LEADER_ELECTION_INTERVAL = 300.0
HANDOFF_TIMEOUT = 30.0
HANDOFF_CHECK = 0.05
BATCH_FINISH = 0.1
RECORDS_PER_SECOND = 10.0
CHECKPOINT_INTERVAL = 2.0


#: Item sizes (KB) for read units: eventually consistent reads cost 0.5 unit per 4 KB per request
#: (at least one), consistent reads 1 unit per 4 KB.
LEASE_ITEM_KB = 0.4
MEMBER_ITEM_KB = 0.1


def _scan_units(items: int, item_kb: float) -> float:
    return 0.5 * max(1, math.ceil(items * item_kb / 4))


class CountingTable(InMemoryLeaseTable):
    """Counts the lease items every read returns, and their read units."""

    def __init__(self) -> None:
        super().__init__()
        self.items_read = 0
        self.units = 0.0

    def list_leases(self) -> list[Lease]:
        leases = super().list_leases()
        self.items_read += len(leases)
        self.units += _scan_units(len(leases), LEASE_ITEM_KB)
        return leases

    def get_lease(self, shard_id: str) -> Lease | None:
        self.items_read += 1
        self.units += 1.0  # ConsistentRead
        return super().get_lease(shard_id)


class CountingMembers(InMemoryMembershipTable):
    def __init__(self) -> None:
        super().__init__()
        self.items_read = 0
        self.units = 0.0

    def members(self) -> list[Member]:
        found = super().members()
        self.items_read += len(found)
        self.units += _scan_units(len(found), MEMBER_ITEM_KB)
        return found


class KclStyleTaker(LeaseTaker):
    """The KCL 2.x taker's choice (kcl-leases.md 2.2), on this library's expiry tracking."""

    def take_leases(
        self, workers: Collection[str] = (), *, exclude: Collection[str] = ()
    ) -> TakerRun:
        leases = self._table.list_leases()
        now = self._clock()
        self._observe(leases, now, {})  # no membership: the KCL rule
        available = [
            o.lease for o in self._seen.values() if o.lease.owner is None or self._expired(o, now)
        ]
        counts: Counter[str] = Counter({self._worker_id: 0})
        for o in self._seen.values():
            if o.lease not in available and o.lease.owner is not None:
                counts[o.lease.owner] += 1
        if not self._seen:
            return TakerRun([], [])
        target = 1 if len(counts) >= len(self._seen) else math.ceil(len(self._seen) / len(counts))
        needed = target - counts[self._worker_id]
        chosen: list[Lease] = []
        if needed > 0 and available:
            chosen = [le for le in available if le.shard_id not in exclude][:needed]
        elif needed > 0:
            others = [(c, w) for w, c in counts.items() if w != self._worker_id]
            if others:
                most, victim = max(others)
                if most >= target:
                    n = min(needed, most - target) or (1 if needed > 1 else 0)
                    victims = [o.lease for o in self._seen.values() if o.lease.owner == victim]
                    chosen = victims[: min(n, 1)]
        taken = [t for le in chosen if (t := self._table.take(le, self._worker_id)) is not None]
        return TakerRun(taken, [])


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class Simulation:
    """Workers on one table, in virtual time."""

    def __init__(self, style: str, seed: int = 1) -> None:
        self.style = style
        self.now = 0.0
        self.table = CountingTable()
        self.members = CountingMembers()
        self.workers: dict[str, Worker] = {}
        self._queue: list[_Event] = []
        self._seq = 0
        self.rng = random.Random(seed)
        self.moves = 0
        self.duplicates = 0.0
        self.phase = {}  # shard id -> checkpoint phase

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(when, self._seq, action))

    def add_shards(self, count: int) -> None:
        for n in range(count):
            shard_id = f"shardId-{n:012d}"
            self.table.put(Lease(shard_id, None, 0, Sentinel.TRIM_HORIZON))
            self.phase[shard_id] = self.rng.uniform(0, CHECKPOINT_INTERVAL)

    def start(self, worker_id: str, when: float) -> None:
        self.at(when, lambda: self._start(worker_id))

    def _start(self, worker_id: str) -> None:
        self.workers[worker_id] = Worker(self, worker_id)

    def run_until(self, done: Callable[[], bool], limit: float) -> float | None:
        while self._queue and self._queue[0].at <= limit:
            event = heapq.heappop(self._queue)
            self.now = event.at
            event.action()
            if done():
                return self.now
        return None

    def balanced(self) -> bool:
        live = [w for w in self.workers.values() if not w.stopped]
        if not live:
            return False
        counts = [len(w.renewer.held()) for w in live]
        return (
            sum(counts) == len(self.table.list_leases_silently()) and max(counts) - min(counts) <= 1
        )

    def last_checkpoint(self, shard_id: str, before: float) -> float:
        phase = self.phase[shard_id]
        return phase + math.floor((before - phase) / CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL


def _list_silently(self: CountingTable) -> list[Lease]:
    return InMemoryLeaseTable.list_leases(self)


CountingTable.list_leases_silently = _list_silently  # type: ignore[attr-defined]


class Worker:
    def __init__(self, sim: Simulation, worker_id: str) -> None:
        self.sim = sim
        self.worker_id = worker_id
        self.stopped = False
        self.events: list[LeaseEvent] = []
        self.renewer = LeaseRenewer(
            sim.table, worker_id, failover_time=FAILOVER, notify=self.events.append,
            fence_margin=EPSILON, clock=sim.clock,
        )  # fmt: skip
        taker_class = LeaseTaker if sim.style == "ours" else KclStyleTaker
        self.taker = taker_class(
            sim.table, worker_id, failover_time=FAILOVER, handoff_timeout=HANDOFF_TIMEOUT,
            slow_scan_time=1e9, clock=sim.clock,
        )  # fmt: skip
        self.membership = Membership(
            sim.members, worker_id, failover_time=FAILOVER, clock=sim.clock,
            suspect_after=RENEWER_INTERVAL + POLL_INTERVAL + FAILOVER / 10,
        )  # fmt: skip
        # The coordinator's taker thread, stepped in virtual time.
        self.loop = TakerLoop(
            renewer=self.renewer, taker=self.taker, membership=self.membership,
            table_name=sim.table.name, failover_time=FAILOVER, taker_interval=TAKER_INTERVAL,
            renewer_interval=RENEWER_INTERVAL, poll_interval=POLL_INTERVAL,
            safety_interval=SAFETY_SCAN_INTERVAL, handoff_check_interval=HANDOFF_CHECK,
            stopped=threading.Event(),
            notify=self.events.append, flush=lambda: None, wake_fence=lambda: None,
            worker_id=worker_id, clock=sim.clock,
        )  # fmt: skip
        if sim.style == "ours":
            self.membership.beat()
            sim.at(sim.now, self.step)
            sim.at(sim.now + SHARD_SYNC_INTERVAL, self.shard_sync)
        else:
            sim.at(sim.now, self.full_run)
            sim.at(sim.now + 60.0, self.leader_election)
            sim.at(sim.now + KCL_SHARD_SYNC_AUDIT_INTERVAL, self.shard_sync)
        sim.at(sim.now + RENEWER_INTERVAL, self.renew)

    def full_run(self) -> None:
        """The KCL-style taker: a full run every taker interval."""
        if self.stopped:
            return
        run = self.taker.take_leases(exclude=self.renewer.held_shard_ids())
        if run.taken:
            self.renewer.adopt(run.taken, self.sim.now)
        self.sim.at(self.sim.now + TAKER_INTERVAL, self.full_run)

    def leader_election(self) -> None:
        if not self.stopped:
            self.sim.table.list_leases()  # the KCL 2.x DeterministicShuffle leader decider
            self.sim.at(self.sim.now + LEADER_ELECTION_INTERVAL, self.leader_election)

    def shard_sync(self) -> None:
        """The leader's periodic lease scan: ours, shard sync by the lowest live worker id;
        the KCL 2.x leader's shard-sync auditor (kcl-leases.md 7)."""
        if self.stopped:
            return
        live = [w for w in self.sim.workers.values() if not w.stopped]
        if self.sim.style == "ours":
            leader = min(self.membership.live())
            interval = SHARD_SYNC_INTERVAL
        else:
            leader = min(w.worker_id for w in live)
            interval = KCL_SHARD_SYNC_AUDIT_INTERVAL
        if leader == self.worker_id:
            self.sim.table.list_leases()
        self.sim.at(self.sim.now + interval, self.shard_sync)

    def step(self) -> None:
        if self.stopped:
            return
        delay = self.loop.step()
        self._answer()
        if delay is not None:
            self.sim.at(self.sim.now + delay, self.step)

    def renew(self) -> None:
        if self.stopped:
            return
        self.renewer.renew_all()
        if self.sim.style == "ours":
            self.loop.heartbeat()
        self._answer()
        self.sim.at(self.sim.now + RENEWER_INTERVAL, self.renew)

    def _answer(self) -> None:
        """The consumer's side: hand-off requests answered, lost leases counted."""
        for event in self.events:
            if isinstance(event, LeaseHandoffRequested):
                for lease in event.leases:
                    self.sim.moves += 1  # checkpoint of everything acknowledged, then release
                    self.sim.at(
                        self.sim.now + BATCH_FINISH,
                        lambda s=lease.shard_id, t=lease.concurrency_token: self.release(s, t),
                    )
            elif isinstance(event, LeasesLost):
                for lease in event.leases:  # stolen: processed since the last checkpoint again
                    self.sim.moves += 1
                    last = self.sim.last_checkpoint(lease.shard_id, self.sim.now)
                    self.sim.duplicates += RECORDS_PER_SECOND * (self.sim.now - last)
        self.events.clear()

    def release(self, shard_id: str, token: str) -> None:
        """`LeaseCoordinator.release`."""
        if self.renewer.release(shard_id, token):
            self.loop.released(shard_id)

    def stop(self) -> None:
        self.stopped = True
        if self.sim.style == "ours":
            self.renewer.release_all()
            self.loop.leave()
        else:
            self.renewer.drop_all()


@dataclass(frozen=True)
class BalanceResult:
    seconds: float | None
    moves: int
    duplicates_per_move: float


def balance(style: str, workers: int, shards: int, stagger: float) -> BalanceResult:
    sim = Simulation(style)
    sim.add_shards(shards)
    for n in range(workers):
        sim.start(f"w{n:02d}", n * stagger)
    last = (workers - 1) * stagger
    sim.run_until(lambda: sim.now >= last and len(sim.workers) == workers, last + 1)
    done = sim.run_until(sim.balanced, last + 7200)
    per_move = sim.duplicates / sim.moves if sim.moves else 0.0
    return BalanceResult(None if done is None else done - last, sim.moves, per_move)


def idle_reads(style: str, workers: int = 10, leases: int = 200) -> tuple[float, ...]:
    """Per worker-hour, balanced and idle: lease items read, lease-table read units,
    membership read units, both tables' read units."""
    sim = Simulation(style)
    sim.add_shards(leases)
    for n in range(workers):
        sim.start(f"w{n:02d}", 0.0)
    sim.run_until(sim.balanced, 7200)
    sim.run_until(lambda: False, sim.now + 600)  # settle: no cold-start leftovers in the hour
    start = sim.now
    before = (sim.table.items_read, sim.table.units, sim.members.units)
    sim.run_until(lambda: False, start + 3600)
    after = (sim.table.items_read, sim.table.units, sim.members.units)
    items, lease_units, member_units = (
        (a - b) / workers for a, b in zip(after, before, strict=True)
    )
    return items, lease_units, member_units, lease_units + member_units


@dataclass(frozen=True)
class StopResult:
    """One graceful stop, measured from the leaver's and the others' logs."""

    #: Per moved shard: the leaver's release write begins -> the new owner holds it (s).
    gaps: list[float]
    #: SIGTERM -> the leaver stopped (s).
    stop_seconds: float
    #: SIGTERM -> the others hold every shard the leaver held (s).
    all_held_seconds: float


def _stop_one(fleet: Any, leaving: str, workers: int, phase: float) -> StopResult:
    """Balance ``workers`` workers, stop ``leaving`` gracefully, measure the move."""
    from integration.lease_fleet import wait_until

    share = 12 // workers
    wait_until(
        lambda: sorted(map(len, fleet.held().values())) == [share] * workers, 120, "balanced"
    )
    # The fleet balanced by a step of every worker just now: their next membership polls are a
    # poll interval away. Stop at a random phase of that interval instead (seeded).
    time.sleep(phase * POLL_INTERVAL)
    worker = fleet.workers[leaving]
    shards = worker.held()
    others = [w for w in fleet.live() if w is not worker]
    requested = time.time()
    worker.request_stop()
    taken = wait_until(lambda: shards <= set().union(*(w.held() for w in others)), 60, "taken")
    wait_until(lambda: worker.first("stopped") is not None, 30, "stopped")
    stopped, stopping = worker.first("stopped"), worker.first("stopping")
    assert stopped is not None and stopping is not None
    # A hand-off's release begins at its "lost" (handoff) line; the rest at "stopping".
    freed = dict.fromkeys(shards, float(stopping["t"]))
    for event in worker.snapshot():
        if event["event"] == "lost" and event.get("handoff") and event["t"] >= requested:
            freed.update(dict.fromkeys(set(event["shards"]) & shards, float(event["t"])))
    gaps = []
    for shard_id in sorted(shards):
        gained = min(
            float(e["t"])
            for w in others
            for e in w.snapshot()
            if e["event"] == "gained" and shard_id in e["shards"] and e["t"] >= requested
        )
        gaps.append(gained - freed[shard_id])
    worker.terminate()
    return StopResult(gaps, float(stopped["t"]) - requested, float(taken) - requested)


def graceful_handoffs(rounds: int) -> list[StopResult]:
    """Hand-off times on graceful stop, real processes on kinesalite + dynalite (defaults):
    per round, a fleet of four whose workers stop one by one, each at a random poll phase."""
    from integration.lease_fleet import LeaseFleet
    from kinesis_actors.testing._local import LocalKinesis

    rng = random.Random(7)
    results: list[StopResult] = []
    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())
        kinesis = local.kinesis_client()
        for _ in range(rounds):
            stream = f"fleet-bench-{uuid.uuid4().hex[:8]}"
            kinesis.create_stream(StreamName=stream, ShardCount=12)
            kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
            fleet = LeaseFleet(stream, f"{stream}-leases", failover_ms=10000, poll_ms=1000)
            try:
                for name in "abcd":
                    fleet.start(name)
                for n, leaving in enumerate("abc"):
                    results.append(_stop_one(fleet, leaving, 4 - n, rng.random()))
            finally:
                fleet.close()
                kinesis.delete_stream(StreamName=stream)
                for table in (fleet.table, f"{fleet.table}-Workers"):
                    local.dynamodb_client().delete_table(TableName=table)
    return results


def print_simulation() -> None:
    """The simulated part: time to balance, duplicates per moved lease, idle reads."""
    print("fleet balancing, simulated (KCL-default timings, virtual time)")
    print(
        f"{'time to balance after the last start':44}{'ours':>10}{'KCL-style':>12}{'ours/KCL':>10}"
    )
    duplicates: dict[str, BalanceResult] = {}
    for label, workers, shards, stagger in (
        ("2 workers x 100 shards, 5 s apart", 2, 100, 5.0),
        ("30 workers x 30 shards, 1 s apart", 30, 30, 1.0),
    ):
        ours = balance("ours", workers, shards, stagger)
        kcl = balance("kcl", workers, shards, stagger)
        duplicates[label] = ours
        duplicates[label + " (KCL)"] = kcl

        def fmt(r: BalanceResult) -> str:
            return "never" if r.seconds is None else f"{r.seconds:.1f}s"

        ratio = "-" if not (ours.seconds and kcl.seconds) else f"{ours.seconds / kcl.seconds:.3f}"
        print(f"{label:44}{fmt(ours):>10}{fmt(kcl):>12}{ratio:>10}")
    print(f"\n{'duplicates per moved lease':44}{'ours':>10}{'KCL-style':>12}{'moves':>14}")
    for label in ("2 workers x 100 shards, 5 s apart", "30 workers x 30 shards, 1 s apart"):
        ours, kcl = duplicates[label], duplicates[label + " (KCL)"]
        print(
            f"{label:44}{ours.duplicates_per_move:>10.1f}{kcl.duplicates_per_move:>12.1f}"
            f"{f'{ours.moves} / {kcl.moves}':>14}"
        )
    ours_reads, kcl_reads = idle_reads("ours"), idle_reads("kcl")
    header = "idle reads per worker-hour (10 x 200)"
    print(f"\n{header:44}{'ours':>10}{'KCL-style':>12}{'ours/KCL':>10}")
    for index, label in enumerate(
        (
            "lease-table items",
            "lease-table read units",
            "membership-table read units",
            "read units, both tables",
        )
    ):
        ours_value, kcl_value = ours_reads[index], kcl_reads[index]
        ratio = f"{ours_value / kcl_value:.3f}" if kcl_value else "-"
        print(f"{label:44}{ours_value:>10.0f}{kcl_value:>12.0f}{ratio:>10}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-processes", action="store_true", help="simulation only")
    parser.add_argument("--processes-only", action="store_true", help="no simulation")
    parser.add_argument(
        "--handoff-rounds", type=int, default=3, help="fleets of four stopped one by one"
    )
    args = parser.parse_args(argv)
    logging.getLogger("kinesis_actors").setLevel(logging.ERROR)  # tables, not log lines
    started = time.monotonic()
    if not args.processes_only:
        print_simulation()
    if not args.no_processes:
        results = graceful_handoffs(args.handoff_rounds)
        print("\ngraceful stop, 4 -> 1 lease_worker processes, 12 shards, defaults")
        print(f"{'per stop or moved shard':44}{'runs':>6}{'median':>10}{'max':>10}{'target':>10}")
        rows = (
            ("processing gap per moved shard", [g for r in results for g in r.gaps], "<= 1 s"),
            (
                "SIGTERM -> the others hold all its shards",
                [r.all_held_seconds for r in results],
                "",
            ),
            ("stop duration (SIGTERM -> exit)", [r.stop_seconds for r in results], ""),
        )
        for label, values, target in rows:
            print(
                f"{label:44}{len(values):>6}{statistics.median(values):>9.2f}s"
                f"{max(values):>9.2f}s{target:>10}"
            )
        gaps = sorted(g for r in results for g in r.gaps)
        print(
            f"membership poll {POLL_INTERVAL:.1f} s; gaps, sorted: "
            + " ".join(f"{g:.2f}" for g in gaps)
        )
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
