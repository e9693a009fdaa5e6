"""The coordinator's taker thread: when to scan the lease table, and what to do after.

Every ``releasedLeasePollMillis`` the thread reads the membership table (one small scan), then
scans the lease table and plans only when something can have changed:

* the fleet announced a change (`Membership.needs_plan`: a join, a leave, a member aged out or
  late, a member's lease count, releases, created leases or load moved), or this worker's own
  shard sync created leases (`TakerLoop.plan_soon`);
* a lease of a departed member can first count as expired (so a crashed worker's leases move
  about ``failoverTimeMillis`` after its last renewal, not a taker interval or two later);
* the next scan is due (`LeaseTaker.rescan_at`): a taker interval after the last one, as the KCL
  does, while any lease is free, expired, or held by a worker without a membership item (a Java
  KCL worker), or ``leaseTableSafetyScanMillis`` after it when every lease is accounted for by
  the heartbeats;
* a run lost a race (re-plan at the next poll), the lease table is missing, or this worker's
  renewals are late (a deleted lease table is found by a scan).

Between scans it reads the leases it asked a hand-off for, and adopts those handed over: every
hand-off check interval while some are pending, so a lease handed over is adopted at once.

A graceful stop hands over before it stops processing (`TakerLoop.begin_leave`, then
`TakerLoop.leave_step` until done): the leaver's heartbeat says it is leaving, the others plan
without it and ask for its leases, and the leaver, polling the membership table every hand-off
check interval, answers each request at once (the consumer finishes the shard's batch,
checkpoints, and its release completes the hand-off).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kinesis_actors._errors import KinesisActorsError, LeaseTableMissingError
from kinesis_actors._leases.lease import CoordinatorFailed, LeaseEvent
from kinesis_actors._leases.membership import Membership
from kinesis_actors._leases.renewer import LeaseRenewer
from kinesis_actors._leases.taker import LeaseTaker
from kinesis_actors._logging import get_logger

__all__ = ["MIN_INTERVAL", "TakerLoop"]

log = get_logger(__name__)

#: Shortest wait between two runs of a coordinator thread, whatever the settings say.
MIN_INTERVAL = 0.01


class TakerLoop:
    """The taker thread's work (`run`) and the fleet side of the coordinator. Thread-safe.

    ``notify`` queues a message for the subscriber, ``flush`` delivers the queue, ``wake_fence``
    tells the fence thread that held leases changed; ``stopped`` ends `run`.
    ``handoff_check_interval``: how often pending hand-offs are read (only while some are),
    and how often a leaving worker polls the membership table. ``clock`` is monotonic seconds
    (the same as the renewer's and the taker's), injectable for simulations.
    """

    def __init__(
        self,
        *,
        renewer: LeaseRenewer,
        taker: LeaseTaker,
        membership: Membership,
        table_name: str,
        failover_time: float,
        taker_interval: float,
        renewer_interval: float,
        poll_interval: float,
        safety_interval: float,
        handoff_check_interval: float,
        stopped: threading.Event,
        notify: Callable[[LeaseEvent], object],
        flush: Callable[[], None],
        wake_fence: Callable[[], None],
        worker_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewer = renewer
        self._taker = taker
        self._membership = membership
        self._table_name = table_name
        self._failover_time = failover_time
        self._taker_interval = max(taker_interval, MIN_INTERVAL)
        self._renewer_interval = renewer_interval
        self._poll_interval = max(poll_interval, MIN_INTERVAL)
        self._safety_interval = max(safety_interval, self._taker_interval)
        self._handoff_check_interval = max(handoff_check_interval, MIN_INTERVAL)
        self._stopped = stopped
        self._notify = notify
        self._flush = flush
        self._wake_fence = wake_fence
        self._clock = clock
        self._worker_id = worker_id
        self._plan_now = threading.Event()
        self._next_scan = clock()
        self._next_poll = clock()
        #: Monotonic deadline of a graceful leave's wait for hand-off requests.
        self._leave_deadline: float | None = None
        #: Held shards whose hand-off requests (seen in heartbeats) were answered by a renewal.
        self._answered: frozenset[str] = frozenset()
        #: The held leases' first deadline when renewals were last found late.
        self._late_deadline: float | None = None
        self._lock = threading.Lock()
        #: shard id -> monotonic time this worker released it (not retaken for a taker interval).
        self._released: dict[str, float] = {}
        #: Monotonic time the lease table was first found missing, since the last success.
        self._missing_since: float | None = None
        self._log = log.bind(worker_id=worker_id, table=table_name)

    # -- the fleet side --------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Announce this worker (and its load) in the membership table."""
        self._try(lambda: self._membership.beat(*self._renewer.load()), "membership heartbeat")

    def released(self, shard_id: str, *, keep_free: bool = True) -> None:
        """This worker released a lease: tell the fleet. ``keep_free`` (a plain release, not a
        completed hand-off): leave it alone for a taker interval, so that another worker gets
        it."""
        if keep_free:
            with self._lock:
                self._released[shard_id] = self._clock()
        self._try(self._membership.released, "membership heartbeat")

    def leases_created(self) -> None:
        """This worker created leases (shard sync, shard end): the fleet, this worker too,
        plans again."""
        self._try(self._membership.leases_created, "membership heartbeat")
        self.plan_soon()

    def plan_soon(self) -> None:
        """Scan and plan at the next poll."""
        self._plan_now.set()

    def leave(self) -> None:
        """Leave the fleet (after releasing): the others re-plan at their next poll."""
        self._try(self._membership.leave, "leaving the membership table")

    def begin_leave(self, wait: float) -> bool:
        """A graceful stop begins (taking stopped, shards still processing): if other live
        members exist and leases are held, announce leaving; True if `leave_step` should run,
        for at most ``wait`` seconds (0: no wait)."""
        others = self._membership.live() - {self._worker_id}
        if wait <= 0 or not others or not self._renewer.held_shard_ids():
            return False
        self._leave_deadline = self._clock() + wait
        self._try(self._membership.leaving, "membership heartbeat")
        return True

    def leave_step(self) -> float | None:
        """Poll the membership table and answer the hand-off requests found; seconds until the
        next step, or None once every held lease was asked for (or handed over), no other live
        member is left, or the wait is over: then leases not asked for are released plainly."""
        deadline = self._leave_deadline
        if deadline is None:
            return None
        self._poll_membership()
        self._answer_requests()
        remaining = deadline - self._clock()
        done = self._renewer.held_shard_ids() <= self._answered
        if done or remaining <= 0 or self._membership.live() == {self._worker_id}:
            self._leave_deadline = None
            return None
        return min(self._handoff_check_interval, remaining)

    def _try(self, action: Callable[[], object], what: str) -> None:
        try:
            action()
        except KinesisActorsError as exc:
            self._log.warning(f"{what} failed", error=str(exc))

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        """Step until stopped (`stop_taking`) or the lease table is gone."""
        while not self._stopped.is_set():
            delay = self.step()
            if delay is None:
                return
            self._stopped.wait(delay)

    def step(self) -> float | None:
        """Poll, scan and plan if needed, check hand-offs; seconds until the next step, or None
        when the coordinator failed (lease table gone)."""
        now = self._clock()
        due = self._plan_now.is_set() or now >= self._next_scan or self._missing_since is not None
        if due or now >= self._next_poll:  # a scan plans with the fleet as it is now
            self._next_poll = now + self._poll_interval
            self._poll_membership()
            self._answer_requests()
            now = self._clock()
        if due or self._renewals_failing(now) or self._membership.needs_plan():
            self._plan_now.clear()
            self._membership.planned()  # changes announced during the scan: next poll
            self._next_scan = self._take()
        self._check_handoffs()
        if self._table_gone():
            return None
        now = self._clock()
        wake = min(self._next_scan, self._next_poll)
        if self._taker.pending_handoffs:
            wake = min(wake, now + self._handoff_check_interval)
        return max(wake - now, 0.0)

    def _poll_membership(self) -> None:
        live = self._membership.live()
        try:
            self._membership.poll()
        except KinesisActorsError as exc:
            self._log.warning("membership poll failed", error=str(exc))
            return
        if self._membership.live() != live:
            self._log.info("fleet changed", workers=sorted(self._membership.live()))

    def _renewals_failing(self, now: float) -> bool:
        """True once per held lease whose renewal is two renewal intervals late: renewals fail
        (DynamoDB unreachable, or the table deleted, which only a scan reports)."""
        deadline = self._renewer.next_deadline()
        if deadline is None or deadline == self._late_deadline:
            return False
        if deadline - now > self._failover_time - 2 * self._renewer_interval:
            return False
        self._late_deadline = deadline
        return True

    def _answer_requests(self) -> None:
        """Renew held leases other workers asked for, so the hand-off starts now rather than at
        the next renewal (the renewal shows the request, as KCL 3.x owners learn it)."""
        asked = self._membership.asked_for() & self._renewer.held_shard_ids()
        new = asked - self._answered
        self._answered = asked
        if new:
            self._renewer.renew_now(new)
            self._flush()

    def _take(self) -> float:
        """One planning run; returns when the next is due."""
        started = self._clock()
        with self._lock:
            self._released = {
                shard_id: at
                for shard_id, at in self._released.items()
                if started - at < self._taker_interval
            }
            released = set(self._released)
        retry = started + self._poll_interval
        try:
            run = self._taker.take_leases(
                self._membership.live(),
                exclude=self._renewer.held_shard_ids(),
                keep_free=released,
                last_heard=self._membership.last_heard(),
                leaving=self._membership.leaving_members(),
            )
        except LeaseTableMissingError as exc:
            self._table_missing(exc, started)
            return retry
        except KinesisActorsError as exc:
            self._log.warning("lease taker run failed", error=str(exc))
            return retry
        except Exception:
            self._log.exception("lease taker run failed")
            return retry
        self._missing_since = None
        if run.taken:
            self._renewer.adopt(run.taken, started)
            self._gained()
        if run.requested:
            self._announce_requests()
        if run.contended:  # a lost race leaves part of the plan undone: re-plan at the next poll
            return retry
        return self._taker.rescan_at(
            self._membership.lease_counts(),
            self._membership.departed(),
            interval=self._taker_interval,
            quiet_interval=self._safety_interval,
        )

    def _announce_requests(self) -> None:
        self._try(
            lambda: self._membership.requesting(self._taker.pending_handoffs),
            "membership heartbeat",
        )

    def _gained(self) -> None:
        self._wake_fence()
        self._flush()
        self.heartbeat()  # the fleet learns the new count now, not at the next renewal

    def _check_handoffs(self) -> None:
        if not self._taker.pending_handoffs:
            return
        started = self._clock()
        try:
            handed, stolen = self._taker.check_handoffs()
            self._renewer.adopt_handed_over(handed)
        except KinesisActorsError as exc:
            self._log.warning("hand-off check failed", error=str(exc))
            return
        if stolen:
            self._renewer.adopt(stolen, started)
        if handed or stolen:
            self._gained()
        self._announce_requests()

    def _table_missing(self, error: LeaseTableMissingError, at: float) -> None:
        if self._missing_since is None:
            self._missing_since = at
            self._log.warning("lease table missing", error=str(error))

    def _table_gone(self) -> bool:
        """After two failover times of a missing table: give up, tell the subscriber, True."""
        since = self._missing_since
        if since is None or self._clock() - since < 2 * self._failover_time:
            return False
        error = LeaseTableMissingError(
            self._table_name, f"missing for {self._clock() - since:.1f} s; not recreated"
        )
        self._log.warning("lease coordinator failed: lease table missing")
        self._stopped.set()
        self._renewer.lose_all("lease table missing")
        self.leave()
        self._notify(CoordinatorFailed(error))
        self._flush()
        return True
