"""The lease taker: which leases this worker should take, by the KCL 2.x rules, and taking them.

Expiry is judged only by local observation, never by timestamps in the table: a lease is expired
when its counter has not changed for ``failover_time`` on this worker's monotonic clock, across
scans. A lease first seen free counts as expired at once; a lease first seen owned counts as
fresh, so a newly started worker needs two scans more than ``failover_time`` apart to declare
another worker dead.

Each run (`LeaseTaker.take_leases`):

1. count, per worker, the leases that are neither free nor expired (this worker counts, with 0);
2. target = ceil(leases / workers), at least 1, at most ``max_leases_for_worker``;
3. if this worker is below target: take free or expired leases first (random ones), up to target;
4. only when none are available, steal from the single most loaded worker: at most
   ``max_leases_to_steal`` and at most what it holds over target, but one when this worker needs
   more than one; never when this worker needs exactly one and the other is at target (the
   off-by-one rule that prevents ping-pong).

Departure from KCL 2.x (as in KCL 1.x): there is no "very old lease" priority path, which lets a
worker take every lease unseen for three failover times regardless of target; takes here never go
beyond the target. (A worker that scans a new table before any other worker owns a lease still
sees itself alone, so it takes everything; the others then steal their share.)
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from kinesis_actors import metrics
from kinesis_actors._errors import DependencyError, InvalidStateError, ThrottlingError
from kinesis_actors._leases.lease import Lease
from kinesis_actors._leases.table import LeaseTable
from kinesis_actors._logging import get_logger

__all__ = ["LeaseTaker"]

log = get_logger(__name__)

#: Attempts of one take when DynamoDB throttles (the KCL's TAKE_RETRIES).
TAKE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Observation:
    lease: Lease
    #: Local monotonic time the counter was last seen to change; None = never (free when found).
    changed_at: float | None


class LeaseTaker:
    """Scans the table, tracks counter changes, and takes leases by the KCL rules.

    Single-threaded: the coordinator calls it from its taker thread only. ``clock`` is a
    monotonic clock in seconds, injectable for tests.
    """

    def __init__(
        self,
        table: LeaseTable,
        worker_id: str,
        *,
        failover_time: float,
        max_leases_for_worker: int = 2**31 - 1,
        max_leases_to_steal: int = 1,
        slow_scan_time: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._worker_id = worker_id
        self._failover_time = failover_time
        self._max_leases_for_worker = max_leases_for_worker
        self._max_leases_to_steal = max_leases_to_steal
        # A scan slower than this may hold stale counters: re-read leases before stealing them.
        self._slow_scan_time = slow_scan_time if slow_scan_time is not None else failover_time / 6
        self._clock = clock
        self._rng = rng or random.Random()
        self._seen: dict[str, _Observation] = {}
        self._log = log.bind(worker_id=worker_id)

    def take_leases(self, *, steal: bool = True, exclude: Collection[str] = ()) -> list[Lease]:
        """Scan, then take what the rules allow; returns the leases taken (as written).

        ``steal=False`` takes only free or expired leases (the quick runs between taker runs).
        Leases in ``exclude`` (held already, or just released) are never taken.
        """
        started = self._clock()
        leases = self._table.list_leases()
        now = self._clock()
        self._observe(leases, now)
        available, counts = self._classify(now)
        wanted = self._choose(available, counts, steal=steal, exclude=exclude)
        if wanted and now - started > self._slow_scan_time and any(lease.owner for lease in wanted):
            wanted = self._refresh(wanted)
        taken: list[Lease] = []
        free = {lease.shard_id for lease in available}
        for lease in wanted:
            done = self._take(lease)
            if done is not None:
                taken.append(done)
                self._seen[done.shard_id] = _Observation(done, now)
                kind = "LeaseTakes" if lease.shard_id in free else "LeaseSteals"
                metrics.count(kind, 1, worker=self._worker_id)
        return taken

    def _observe(self, leases: list[Lease], now: float) -> None:
        seen: dict[str, _Observation] = {}
        for lease in leases:
            before = self._seen.get(lease.shard_id)
            if before is not None and before.lease.counter == lease.counter:
                changed_at = before.changed_at
            elif before is None and lease.owner is None:
                changed_at = None
            else:
                changed_at = now
            seen[lease.shard_id] = _Observation(lease, changed_at)
        self._seen = seen

    def _expired(self, observation: _Observation, now: float) -> bool:
        changed_at = observation.changed_at
        return changed_at is None or now - changed_at > self._failover_time

    def _classify(self, now: float) -> tuple[list[Lease], Counter[str]]:
        """Free-or-expired leases, and the live leases per worker (this worker included)."""
        available: list[Lease] = []
        counts: Counter[str] = Counter({self._worker_id: 0})
        for observation in self._seen.values():
            lease = observation.lease
            if lease.owner is None or self._expired(observation, now):
                available.append(lease)
            else:
                counts[lease.owner] += 1
        return available, counts

    def target(self, workers: int) -> int:
        """Leases each of ``workers`` should hold, by the current scan."""
        leases = len(self._seen)
        share = 1 if workers >= leases else math.ceil(leases / workers)
        if share > self._max_leases_for_worker:
            self._log.info("lease spillover", target=share, cap=self._max_leases_for_worker)
        return min(share, self._max_leases_for_worker)

    def _choose(
        self,
        available: list[Lease],
        counts: Counter[str],
        *,
        steal: bool,
        exclude: Collection[str],
    ) -> list[Lease]:
        if not self._seen:
            return []
        target = self.target(len(counts))
        needed = target - counts[self._worker_id]
        if needed <= 0:
            return []
        if available:
            candidates = [lease for lease in available if lease.shard_id not in exclude]
            self._rng.shuffle(candidates)
            return candidates[:needed]
        if not steal:
            return []
        others = [(count, worker) for worker, count in counts.items() if worker != self._worker_id]
        if not others:
            return []
        most_count, most_loaded = max(others)
        if most_count < target:
            return []
        steal_count = min(needed, most_count - target)
        if needed > 1 and steal_count == 0:
            steal_count = 1
        steal_count = min(steal_count, self._max_leases_to_steal)
        victims = [
            observation.lease
            for observation in self._seen.values()
            if observation.lease.owner == most_loaded and observation.lease.shard_id not in exclude
        ]
        self._rng.shuffle(victims)
        chosen = victims[:steal_count]
        if chosen:
            self._log.info(
                "stealing leases",
                victim=most_loaded,
                shard_ids=[lease.shard_id for lease in chosen],
                target=target,
            )
        return chosen

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
