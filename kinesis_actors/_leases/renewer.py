"""The leases this worker holds: renewal, self-fencing, checkpoints and release.

Self-fencing is what makes "one worker per shard" hold without clocks agreeing: a held lease
whose last successful counter-bumping write *started* more than ``failover_time`` ago is dropped
and reported lost, even if DynamoDB merely went unreachable. Another worker can only take the
lease after seeing its counter unchanged for ``failover_time`` from a scan that came after that
write, so this worker has always let go first. An expired lease is never renewed again (it was
already reported lost); the taker may take it back as a fresh acquisition with a new token.

Every write to one lease (renewal, checkpoint, release) holds that lease's lock, so a renewal and
a checkpoint never race each other's counter condition; the lock of the whole set is never held
during a DynamoDB call.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from kinesis_actors import metrics
from kinesis_actors._errors import (
    DependencyError,
    InvalidStateError,
    LeaseTableMissingError,
    ShutdownError,
    ThrottlingError,
)
from kinesis_actors._leases.lease import (
    Checkpoint,
    HeldLease,
    Lease,
    LeaseEvent,
    LeaseHandoffRequested,
    LeasesGained,
    LeasesLost,
)
from kinesis_actors._leases.table import LeaseTable, Rates
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

__all__ = ["LeaseRenewer"]

log = get_logger(__name__)

#: Attempts of one renewal when DynamoDB throttles (the KCL's RENEWAL_RETRIES).
RENEW_ATTEMPTS = 2
#: Weight of the newest interval in a shard's measured read rates (an exponential average).
RATE_SMOOTHING = 0.3


@dataclass(eq=False)
class _Held:
    lease: Lease
    token: str
    #: Monotonic time at which the last successful counter-bumping write was sent.
    renewed_at: float
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Records and bytes read since ``counted_since``, and the smoothed rates written so far.
    records: int = 0
    bytes: int = 0
    counted_since: float = 0.0
    rates: Rates | None = None
    handoff_reported: bool = False

    def measure(self, now: float) -> Rates | None:
        """Fold the reads since the last call into the rates; None until something was read."""
        elapsed = now - self.counted_since
        if elapsed <= 0 or (self.rates is None and self.records == 0):
            return self.rates
        current = (self.bytes / elapsed, self.records / elapsed)
        if self.rates is None:
            self.rates = current
        else:
            self.rates = (
                self.rates[0] + RATE_SMOOTHING * (current[0] - self.rates[0]),
                self.rates[1] + RATE_SMOOTHING * (current[1] - self.rates[1]),
            )
        self.records = self.bytes = 0
        self.counted_since = now
        return self.rates

    def view(self) -> HeldLease:
        return HeldLease.of(self.lease, self.token)


class LeaseRenewer:
    """The set of held leases. Thread-safe.

    ``notify`` receives `LeasesGained` / `LeasesLost`; it is called with the set's lock held, so
    that messages keep the order of the changes, and must only enqueue. ``fence_margin`` makes a
    lease count as expired that much before ``failover_time``, to absorb scheduling delay.
    """

    def __init__(
        self,
        table: LeaseTable,
        worker_id: str,
        *,
        failover_time: float,
        notify: Callable[[LeaseEvent], object],
        fence_margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._worker_id = worker_id
        self._lifetime = failover_time - fence_margin
        self._notify = notify
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._log = log.bind(worker_id=worker_id)

    # -- acquisition ---------------------------------------------------------------------------

    def adopt(self, leases: Iterable[Lease], acquired_at: float) -> tuple[HeldLease, ...]:
        """Hold leases just taken by a write sent at ``acquired_at`` or later; new tokens each."""
        with self._lock:
            gained = []
            for lease in leases:
                entry = _Held(lease, uuid.uuid4().hex, acquired_at, counted_since=acquired_at)
                self._held[lease.shard_id] = entry
                gained.append(entry.view())
            if gained:
                self._notify(LeasesGained(tuple(gained)))
            metrics.gauge("LeasesHeld", len(self._held), worker=self._worker_id)
        for held in gained:
            self._log.info("lease gained", shard_id=held.shard_id, checkpoint=str(held.checkpoint))
        return tuple(gained)

    def resume_own_leases(self) -> tuple[HeldLease, ...]:
        """Adopt the leases the table says this worker owns (a restart with the same worker id).

        Each is renewed first, even if it looks expired: no other worker took it meanwhile.
        """
        resumed: list[Lease] = []
        started = self._clock()
        for lease in self._table.list_leases():
            if lease.checkpoint_owner == self._worker_id:
                self._table.release(lease)  # a hand-off this worker was asked for: complete it
            elif (
                lease.owner == self._worker_id
                and lease.checkpoint_owner is None
                and lease.shard_id not in self.held_shard_ids()
            ):
                renewed = self._table.renew(lease)
                if renewed is not None:
                    resumed.append(renewed)
        return self.adopt(resumed, started)

    def adopt_handed_over(self, leases: Iterable[Lease]) -> tuple[HeldLease, ...]:
        """Hold leases another worker handed to this one: renew each first (as after a restart)."""
        started = self._clock()
        renewed = [r for lease in leases if (r := self._table.renew(lease)) is not None]
        return self.adopt(renewed, started)

    def record_read(self, shard_id: str, records: int, size: int) -> None:
        """Count what the consumer read from a held shard (its measured load)."""
        with self._lock:
            entry = self._held.get(shard_id)
            if entry is not None:
                entry.records += records
                entry.bytes += size

    def load(self) -> tuple[int, Rates]:
        """Open leases held, and the sum of their measured rates (bytes/s, records/s)."""
        with self._lock:
            entries = [e for e in self._held.values() if not e.lease.finished]
        rates = [e.rates for e in entries if e.rates is not None]
        return len(entries), (sum(r[0] for r in rates), sum(r[1] for r in rates))

    # -- queries -------------------------------------------------------------------------------

    def _alive(self, entry: _Held, now: float) -> bool:
        return now - entry.renewed_at < self._lifetime

    def held(self) -> tuple[HeldLease, ...]:
        """The leases held and not expired, sorted by shard id."""
        now = self._clock()
        with self._lock:
            return tuple(
                entry.view() for _, entry in sorted(self._held.items()) if self._alive(entry, now)
            )

    def held_shard_ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def lease(self, shard_id: str) -> Lease | None:
        """The held lease as last written by this worker, or None."""
        with self._lock:
            entry = self._held.get(shard_id)
            return entry.lease if entry is not None else None

    def next_deadline(self) -> float | None:
        """When the first held lease expires unless renewed (monotonic), or None."""
        with self._lock:
            if not self._held:
                return None
            return min(entry.renewed_at for entry in self._held.values()) + self._lifetime

    # -- renewal and fencing -------------------------------------------------------------------

    def renew_all(self) -> None:
        """Renew every held lease once; drop those lost or expired."""
        with self._lock:
            entries = list(self._held.values())
        for entry in entries:
            self._renew(entry)

    def renew_now(self, shard_ids: Collection[str]) -> None:
        """Renew these held leases now (another worker asked for them: learn it at once)."""
        with self._lock:
            entries = [entry for shard_id, entry in self._held.items() if shard_id in shard_ids]
        for entry in entries:
            self._renew(entry)

    def _renew(self, entry: _Held) -> None:
        shard_id = entry.lease.shard_id
        with entry.write_lock:
            started = self._clock()
            with self._lock:
                if self._held.get(shard_id) is not entry:
                    return
                if not self._alive(entry, started):
                    self._drop_locked([entry], "not renewed in time")
                    return
                lease = entry.lease
                rates = entry.measure(started)
            renewed = None
            for attempt in range(1, RENEW_ATTEMPTS + 1):
                try:
                    renewed = self._table.renew(lease, rates)
                    break
                except ThrottlingError:
                    if attempt == RENEW_ATTEMPTS:
                        self._log.warning("renewal throttled", shard_id=shard_id)
                        return
                except (DependencyError, InvalidStateError) as exc:
                    # Unknown state: keep the lease; fencing drops it if this lasts. A missing
                    # table is reported once, by the coordinator.
                    missing = isinstance(exc, LeaseTableMissingError)
                    report = self._log.debug if missing else self._log.warning
                    report("renewal failed", shard_id=shard_id, error=str(exc))
                    return
            with self._lock:
                if self._held.get(shard_id) is not entry:
                    return
                if renewed is None:
                    self._drop_locked([entry], "taken by another worker or deleted")
                else:
                    entry.lease = renewed
                    entry.renewed_at = started
                    self._report_handoff_locked(entry)

    def _report_handoff_locked(self, entry: _Held) -> None:
        """Tell the subscriber (once) that another worker asked for this lease."""
        lease = entry.lease
        if lease.checkpoint_owner == self._worker_id and not entry.handoff_reported:
            entry.handoff_reported = True
            self._log.info("hand-off requested", shard_id=lease.shard_id, next_owner=lease.owner)
            self._notify(LeaseHandoffRequested((entry.view(),)))

    def fence_expired(self) -> float | None:
        """Drop and report the leases whose renewals are overdue; returns `next_deadline`."""
        now = self._clock()
        with self._lock:
            expired = [entry for entry in self._held.values() if not self._alive(entry, now)]
            if expired:
                self._drop_locked(expired, "not renewed in time (self-fenced)")
        return self.next_deadline()

    def _drop_locked(self, entries: list[_Held], reason: str) -> None:
        for entry in entries:
            del self._held[entry.lease.shard_id]
            self._log.warning("lease lost", shard_id=entry.lease.shard_id, reason=reason)
        self._notify(LeasesLost(tuple(entry.view() for entry in entries)))
        metrics.count("LeaseLosses", len(entries), worker=self._worker_id)
        metrics.gauge("LeasesHeld", len(self._held), worker=self._worker_id)

    # -- checkpoints ---------------------------------------------------------------------------

    def _entry(self, shard_id: str, token: str) -> _Held:
        """The live entry for ``shard_id`` acquired with ``token``, else ShutdownError."""
        with self._lock:
            entry = self._held.get(shard_id)
            if entry is None:
                raise ShutdownError(f"lease {shard_id} is not held by {self._worker_id}")
            if entry.token != token:
                raise ShutdownError(
                    f"lease {shard_id} was re-acquired since; the concurrency token is stale"
                )
            if not self._alive(entry, self._clock()):
                raise ShutdownError(f"lease {shard_id} expired locally (not renewed in time)")
            return entry

    def checkpoint(self, shard_id: str, checkpoint: Checkpoint, token: str) -> Lease:
        """Write a checkpoint for a held lease; the write also counts as a renewal.

        Raises ShutdownError if the lease is not held with ``token`` (it is dropped and
        reported lost if the write finds it taken), InvalidStateError for a finished shard,
        ThrottlingError / DependencyError when DynamoDB fails (the lease is kept).
        """
        if not (isinstance(checkpoint, CompoundSequenceNumber) or checkpoint == Sentinel.SHARD_END):
            raise ValueError(f"checkpoint must be a sequence number or SHARD_END: {checkpoint!r}")
        entry = self._entry(shard_id, token)
        with entry.write_lock:
            entry = self._entry(shard_id, token)
            if entry.lease.finished and checkpoint != Sentinel.SHARD_END:
                raise InvalidStateError(f"shard {shard_id} is finished; cannot checkpoint before")
            started = self._clock()
            written = self._table.checkpoint(entry.lease, checkpoint)
            with self._lock:
                current = self._held.get(shard_id) is entry
                if written is None:
                    if current:
                        self._drop_locked([entry], "taken by another worker or deleted")
                    raise ShutdownError(f"lease {shard_id} was lost; checkpoint not written")
                if current:
                    entry.lease = written
                    entry.renewed_at = started
                    self._report_handoff_locked(entry)
            return written

    # -- letting go ----------------------------------------------------------------------------

    def release(self, shard_id: str, token: str | None = None) -> bool:
        """Stop renewing a lease and free it in the table (if still owner); no message sent.

        Returns whether the table write succeeded; if not, the lease expires as usual.
        """
        with self._lock:
            entry = self._held.get(shard_id)
            if entry is None or (token is not None and entry.token != token):
                return False
            del self._held[shard_id]
        with entry.write_lock:
            try:
                released = self._table.release(entry.lease)
                if not released:
                    # A hand-off requested since the last renewal (complete it), or one
                    # withdrawn since (a plain release).
                    current = self._table.get_lease(shard_id)
                    if current is not None and self._worker_id in (
                        current.checkpoint_owner,
                        current.owner if current.checkpoint_owner is None else None,
                    ):
                        released = self._table.release(current)
            except (ThrottlingError, DependencyError, InvalidStateError) as exc:
                self._log.warning("release failed", shard_id=shard_id, error=str(exc))
                return False
        self._log.info("lease released", shard_id=shard_id, released=released)
        return released

    def release_all(self) -> int:
        """Release every held lease; returns how many the table freed."""
        return sum(self.release(shard_id) for shard_id in sorted(self.held_shard_ids()))

    def lose_all(self, reason: str) -> None:
        """Stop renewing every lease without a write, and report them lost."""
        with self._lock:
            entries = list(self._held.values())
            if entries:
                self._drop_locked(entries, reason)

    def drop_all(self) -> None:
        """Stop renewing every lease without a write, as the KCL does; they expire in the table."""
        with self._lock:
            self._held.clear()
