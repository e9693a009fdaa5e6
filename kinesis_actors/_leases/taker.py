"""The lease taker: scan, judge expiry, plan the fleet's assignment, do this worker's part.

Expiry is judged only by local observation, never by timestamps in the table: a lease is expired
when its counter has not changed for ``failover_time`` on this worker's monotonic clock, across
scans. A lease first seen free counts as expired at once; a lease first seen owned counts as
fresh, so a newly started worker needs two scans more than ``failover_time`` apart to declare
another worker dead (the KCL's rule, kept for owners without a membership item: Java KCL
workers).

A member of the fleet writes its heartbeat right after each renewal round, so its heartbeat is
evidence of its renewals. When a scan finds a counter not seen before on a lease whose owner is
departed or a suspect (its heartbeat is late: `Membership.last_heard`), the counter was written
before that member's heartbeat was last seen to change, if the member is dead: its change is
back-dated to that local time, but never earlier than ``failover_time`` minus one and a half
renewer intervals before the scan. So a crashed member's leases expire about ``failover_time``
after its last heartbeat, not a late-heartbeat delay plus ``failover_time``; and a second scan at
least one and a half renewer intervals later must still find the counter unchanged, which a live
owner (renewing every renewer interval whatever became of its heartbeats; half an interval is
left for the spread of a renewal round's writes: many leases, a loaded host) never lets happen.
The take stays conditional on the counter.

Each run (`LeaseTaker.take_leases`) is given the live workers (fleet membership), adds the owners
of live leases (Java KCL workers have no membership item), and plans with
`kinesis_actors._leases.assignment.plan_assignment`. Then:

1. free or expired leases planned for this worker are taken (conditional on the counter);
2. leases planned for this worker but held by a live worker get a hand-off request (the KCL 3.x
   ``checkpointOwner`` protocol): the owner finishes its batch, checkpoints and hands over;
3. `LeaseTaker.check_handoffs` (every poll) reads each pending request's lease: handed over ->
   ready to adopt; no answer after ``handoff_timeout`` -> taken anyway, as a KCL steal.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from kinesis_actors import metrics
from kinesis_actors._errors import DependencyError, InvalidStateError, ThrottlingError
from kinesis_actors._leases.assignment import plan_assignment
from kinesis_actors._leases.lease import Lease
from kinesis_actors._leases.table import LeaseTable
from kinesis_actors._logging import get_logger

__all__ = ["LeaseTaker", "TakerRun"]

log = get_logger(__name__)

#: Attempts of one take when DynamoDB throttles (the KCL's TAKE_RETRIES).
TAKE_ATTEMPTS = 3
#: A rescan for expiry comes this long after the lease can first count as expired (seconds).
_EXPIRY_MARGIN = 0.005


@dataclass(frozen=True)
class _Observation:
    lease: Lease
    #: Local monotonic time the counter was last seen to change; None = never (free when found).
    changed_at: float | None


@dataclass(frozen=True)
class TakerRun:
    """What one run did: leases taken (as written) and hand-offs requested (shard ids).

    ``contended``: some take or request lost a race (another worker planned from a different
    view), so the plan is not carried out: run again soon with a fresh scan.
    """

    taken: list[Lease]
    requested: list[str]
    contended: bool = False


class LeaseTaker:
    """Scans the table, tracks counter changes, takes leases and requests hand-offs.

    Single-threaded: the coordinator calls it from its taker thread only. ``renewer_interval``
    (default a third of ``failover_time``) bounds how far a counter is back-dated. ``clock`` is
    a monotonic clock in seconds, injectable for tests.
    """

    def __init__(
        self,
        table: LeaseTable,
        worker_id: str,
        *,
        failover_time: float,
        renewer_interval: float | None = None,
        max_leases_for_worker: int = 2**31 - 1,
        damping: float = 0.5,
        handoff_timeout: float | None = None,
        slow_scan_time: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._worker_id = worker_id
        self._failover_time = failover_time
        # A counter is back-dated by at most this much: a rescan one and a half renewer
        # intervals later must still find it unchanged.
        interval = failover_time / 3 if renewer_interval is None else renewer_interval
        self._max_backdate = max(failover_time - 1.5 * interval, 0.0)
        self._max_leases_for_worker = max_leases_for_worker
        self._damping = damping
        self._handoff_timeout = failover_time if handoff_timeout is None else handoff_timeout
        # A scan slower than this may hold stale counters: re-read leases before stealing them.
        self._slow_scan_time = slow_scan_time if slow_scan_time is not None else failover_time / 6
        self._clock = clock
        self._seen: dict[str, _Observation] = {}
        #: shard id -> monotonic deadline of a hand-off this worker requested.
        self._pending: dict[str, float] = {}
        self._log = log.bind(worker_id=worker_id)

    @property
    def pending_handoffs(self) -> frozenset[str]:
        return frozenset(self._pending)

    def take_leases(
        self,
        workers: Collection[str] = (),
        *,
        exclude: Collection[str] = (),
        keep_free: Collection[str] = (),
        last_heard: Mapping[str, float] | None = None,
        leaving: Collection[str] = (),
    ) -> TakerRun:
        """Scan, plan with the live ``workers``, take and request what the plan gives this one.

        Leases in ``exclude`` (held already) are never taken or requested, nor those in
        ``keep_free`` (just released by this worker) while they are still free: once another
        worker holds one, it is this worker's again if the plan says so (its new owner died).
        ``last_heard``: departed or suspect members -> local time their heartbeat was last seen
        to change (`Membership.last_heard`), to back-date their leases' new counters.
        ``leaving``: members stopping gracefully; the plan is made without them, so their
        leases are asked for by hand-off.
        """
        started = self._clock()
        leases = self._table.list_leases()
        now = self._clock()
        self._observe(leases, now, last_heard or {})
        available = {
            shard_id
            for shard_id, observation in self._seen.items()
            if observation.lease.owner is None or self._expired(observation, now)
        }
        live_owners = {
            observation.lease.owner
            for shard_id, observation in self._seen.items()
            if shard_id not in available and observation.lease.owner is not None
        }
        fleet = {*workers, *live_owners, self._worker_id} - set(leaving)
        plan = plan_assignment(
            [observation.lease for observation in self._seen.values()],
            available,
            fleet,
            max_leases_for_worker=self._max_leases_for_worker,
            damping=self._damping,
        )
        still_free = {s for s in keep_free if s in self._seen and self._seen[s].lease.owner is None}
        mine = sorted(plan.of(self._worker_id) - set(exclude) - still_free)
        to_take = [self._seen[s].lease for s in mine if s in available]
        for lease in to_take:
            self._pending.pop(lease.shard_id, None)  # expired meanwhile: no hand-off to wait for
        to_request = [
            self._seen[s].lease
            for s in mine
            if s not in available
            and s not in self._pending
            and self._seen[s].lease.owner != self._worker_id
            and self._seen[s].lease.checkpoint_owner is None
        ]
        if to_take and now - started > self._slow_scan_time:
            to_take = self._refresh(to_take)
        taken: list[Lease] = []
        for lease in to_take:
            done = self._take(lease)
            if done is not None:
                taken.append(done)
                self._seen[done.shard_id] = _Observation(done, now)
                metrics.count("LeaseTakes", 1, worker=self._worker_id)
        requested = [lease.shard_id for lease in to_request if self._request(lease, now)]
        if requested:
            self._log.info("hand-offs requested", shard_ids=requested, target=plan.counts)
        contended = len(taken) < len(to_take) or len(requested) < len(to_request)
        return TakerRun(taken, requested, contended)

    def rescan_at(
        self,
        members: Mapping[str, int],
        departed: Collection[str],
        *,
        interval: float,
        quiet_interval: float,
    ) -> float:
        """When the lease table must be scanned next (monotonic), unless a change is announced.

        ``members``: the open leases each trusted live member's heartbeat says it holds. If the
        last scan showed every open lease held, unexpired, by such a member, in the numbers they
        announce, nothing can change without a heartbeat saying so: the next scan is a safety
        scan, ``quiet_interval`` on. Otherwise (free or expired leases, owners without a
        membership item such as Java KCL workers, counts that disagree) it is the KCL's
        ``interval``. Leases of ``departed`` members (aged out, left, or late) are scanned
        again the moment they can first count as expired.
        """
        now = self._clock()
        held: Counter[str] = Counter()
        quiet = True
        expiry = float("inf")
        for observation in self._seen.values():
            lease = observation.lease
            owner = lease.actual_owner
            if lease.finished:
                continue
            expired = owner is None or self._expired(observation, now)
            if expired or owner not in members:
                quiet = False
            if owner is not None:
                held[owner] += 1
            if not expired and owner in departed and observation.changed_at is not None:
                expiry = min(expiry, observation.changed_at + self._failover_time + _EXPIRY_MARGIN)
        quiet = quiet and all(
            held[worker_id] == count
            for worker_id, count in members.items()
            if worker_id != self._worker_id
        )
        return min(expiry, now + (quiet_interval if quiet else interval))

    def check_handoffs(self) -> tuple[list[Lease], list[Lease]]:
        """Read each pending hand-off; returns the leases handed over, and those taken on timeout.

        A lease handed over is owned by this worker in the table: adopt it after a renewal. One
        taken was written by this worker (like any take).
        """
        ready: list[Lease] = []
        stolen: list[Lease] = []
        for shard_id, deadline in sorted(self._pending.items()):
            current = self._table.get_lease(shard_id)
            if current is None or current.owner != self._worker_id:
                del self._pending[shard_id]  # gone, or taken by someone else meanwhile
            elif current.checkpoint_owner is None:
                del self._pending[shard_id]
                ready.append(current)
            elif self._clock() > deadline:
                del self._pending[shard_id]
                self._log.warning(
                    "hand-off not completed in time; taking the lease",
                    shard_id=shard_id,
                    owner=current.checkpoint_owner,
                )
                taken = self._take(current)
                if taken is not None:
                    metrics.count("LeaseSteals", 1, worker=self._worker_id)
                    stolen.append(taken)
        return ready, stolen

    def cancel_handoffs(self) -> int:
        """Withdraw every pending hand-off request (this worker is stopping); returns how many."""
        cancelled = 0
        for shard_id in sorted(self._pending):
            try:
                current = self._table.get_lease(shard_id)
                if current is not None and current.owner == self._worker_id:
                    cancelled += self._table.cancel_handoff(current)
            except (ThrottlingError, DependencyError, InvalidStateError) as exc:
                self._log.warning("hand-off cancel failed", shard_id=shard_id, error=str(exc))
        self._pending.clear()
        return cancelled

    def _request(self, lease: Lease, now: float) -> bool:
        try:
            requested = self._table.request_handoff(lease, self._worker_id)
        except (ThrottlingError, DependencyError, InvalidStateError) as exc:
            self._log.warning("hand-off request failed", shard_id=lease.shard_id, error=str(exc))
            return False
        if requested is None:
            return False
        self._pending[lease.shard_id] = now + self._handoff_timeout
        self._seen[lease.shard_id] = _Observation(requested, now)
        metrics.count("LeaseHandoffRequests", 1, worker=self._worker_id)
        return True

    def _observe(self, leases: list[Lease], now: float, last_heard: Mapping[str, float]) -> None:
        seen: dict[str, _Observation] = {}
        for lease in leases:
            before = self._seen.get(lease.shard_id)
            changed_at: float | None
            if before is not None and before.lease.counter == lease.counter:
                changed_at = before.changed_at
            elif before is None and lease.owner is None:
                changed_at = None
            else:
                heard = last_heard.get(lease.actual_owner or "")
                changed_at = now if heard is None else self._backdated(heard, now)
            seen[lease.shard_id] = _Observation(lease, changed_at)
        self._seen = seen

    def _backdated(self, heard: float, now: float) -> float:
        """When a new counter of a departed or suspect member was written at the latest, if it
        is dead (its last heartbeat), but no earlier than the bound a live owner is safe with."""
        return min(now, max(heard, now - self._max_backdate))

    def _expired(self, observation: _Observation, now: float) -> bool:
        changed_at = observation.changed_at
        return changed_at is None or now - changed_at > self._failover_time

    def _refresh(self, wanted: list[Lease]) -> list[Lease]:
        """Re-read leases chosen from a slow scan, so the expected counters are current."""
        fresh: list[Lease] = []
        for lease in wanted:
            current = self._table.get_lease(lease.shard_id)
            if current is not None and current.owner == lease.owner:
                fresh.append(current)
        return fresh

    def _take(self, lease: Lease) -> Lease | None:
        attempt = 1
        while True:
            try:
                taken = self._table.take(lease, self._worker_id)
            except ThrottlingError:
                if attempt < TAKE_ATTEMPTS:
                    attempt += 1
                    continue
                self._log.warning("take throttled, gave up", shard_id=lease.shard_id)
                return None
            except (DependencyError, InvalidStateError) as exc:
                self._log.warning("take failed", shard_id=lease.shard_id, error=str(exc))
                return None
            if taken is None:
                self._log.debug("lease changed before it could be taken", shard_id=lease.shard_id)
            return taken
