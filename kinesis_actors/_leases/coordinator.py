"""The lease coordinator: which shards this worker processes, and its checkpoints.

The consumer creates one per worker process and drives it through this interface::

    coordinator = LeaseCoordinator(
        conf.kcl, table_name=conf.table_name, stream_name=conf.stream_name,
        kinesis=kinesis, dynamodb=dynamodb, subscriber=manager_ref,
    )                                 # or LeaseCoordinator.from_consumer_conf(conf, ...)
    coordinator.start()               # table, startup shard sync, own leases, threads
    # subscriber receives LeasesGained(leases) / LeasesLost(leases), each a HeldLease with
    # shard_id, checkpoint (where to resume), concurrency_token, parent ids, hash range.
    coordinator.held_leases()         # what is held now
    coordinator.parents_finished(shard_id)     # may this (child) shard start yet?
    coordinator.checkpoint(shard_id, CompoundSequenceNumber(...), token)
    coordinator.shard_ended(shard_id, token)   # SHARD_END checkpoint + child leases
    coordinator.release(shard_id, token)       # hand one shard over (after its last checkpoint)
    coordinator.hand_over()           # graceful shutdown, first: no new leases, hand-offs asked
                                      # for by the others answered (LeaseHandoffRequested)
    coordinator.stop_taking()         # graceful shutdown: no new leases; then final checkpoints
    coordinator.stop()                # release held leases (owner-conditional), stop threads

``checkpoint`` raises ShutdownError (lease lost, stolen or token stale: stop the shard),
ThrottlingError / DependencyError (back off, retry), InvalidStateError (don't retry). A lease
gained with checkpoint SHARD_END belongs to a shard finished earlier: call ``shard_ended`` for it
again (it is idempotent) so that its children exist, rather than reading the shard.

Threads, so that user code can never starve a renewal: a renewer (every ``failover/3 -
epsilon``, then a membership heartbeat), a fence that drops leases the moment their renewal is
overdue, a taker (`kinesis_actors._leases.taker_loop`: polls the membership table every
``releasedLeasePollMillis`` and scans the lease table only when that or the leases it saw call for
it), and a periodic shard sync (by the fleet's lowest live worker id). All are daemon threads and
all are joined by `LeaseCoordinator.stop`.

Messages go out in the order of the changes, one at a time, from whichever thread made the
change, after the change (``held_leases`` may show a lease a moment before its LeasesGained
arrives) and without holding the locks of the lease state: a subscriber may call back into the
coordinator. A Pykka ``ActorRef`` subscriber is told the message; a callable is called with it
and should be quick.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._errors import KinesisActorsError, ShutdownError
from kinesis_actors._leases.dynamodb_leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import Checkpoint, ChildShards, HeldLease, LeaseEvent
from kinesis_actors._leases.membership import (
    DynamoDBMembershipTable,
    InMemoryMembershipTable,
    Membership,
    MembershipTable,
    membership_table_name,
)
from kinesis_actors._leases.renewer import LeaseRenewer
from kinesis_actors._leases.shard_sync import ShardSync
from kinesis_actors._leases.table import LeaseTable
from kinesis_actors._leases.taker import LeaseTaker
from kinesis_actors._leases.taker_loop import MIN_INTERVAL, TakerLoop
from kinesis_actors._lifecycle import StartedOnEnter
from kinesis_actors._logging import get_logger
from kinesis_actors._models import Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import ConsumerConf, KclConf

__all__ = ["LeaseCoordinator", "Subscriber", "default_worker_id"]

log = get_logger(__name__)

#: Who hears about gained and lost leases: a Pykka actor (told) or a callable (called).
Subscriber = Callable[[LeaseEvent], object] | pykka.ActorRef[Any]


def default_worker_id() -> str:
    """``<hostname>:<pid>:<random>``: unique per process, readable in the lease table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseCoordinator(StartedOnEnter):
    """Holds, renews, takes and releases this worker's leases. Thread-safe.

    Pass ``dynamodb`` (a DynamoDB lease table named ``table_name`` is used) or ``table`` (any
    `LeaseTable`, e.g. `InMemoryLeaseTable` in tests). ``worker_id`` defaults to
    ``kcl.worker_id``, else `default_worker_id`. ``membership_table`` defaults to the side table
    ``<table>-Workers`` in DynamoDB (with ``dynamodb``), else an in-memory one that only this
    worker sees (share one `InMemoryMembershipTable` between coordinators to test a fleet).
    """

    def __init__(
        self,
        kcl: KclConf,
        *,
        table_name: str,
        stream_name: str | StreamRef,
        kinesis: KinesisClient,
        dynamodb: DynamoDBClient | None = None,
        table: LeaseTable | None = None,
        subscriber: Subscriber | None = None,
        worker_id: str | None = None,
        membership_table: MembershipTable | None = None,
    ) -> None:
        if table is None:
            if dynamodb is None:
                raise ValueError("LeaseCoordinator needs a dynamodb client or a lease table")
            table = DynamoDBLeaseTable(dynamodb, table_name)
        self._kcl = kcl
        self._table = table
        self._subscriber = subscriber
        self._worker_id = worker_id or kcl.worker_id or default_worker_id()
        self._log = log.bind(worker_id=self._worker_id, table=table.name)

        self._stopping = threading.Event()
        self._taking_stopped = threading.Event()
        self._fence_wake = threading.Event()
        self._outbox: deque[LeaseEvent] = deque()
        self._delivery_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._taking_threads: list[threading.Thread] = []
        self._started = False

        self._renewer = LeaseRenewer(
            table,
            self._worker_id,
            failover_time=kcl.failover_time,
            fence_margin=kcl.epsilon,
            notify=self._outbox.append,
        )
        self._taker = LeaseTaker(
            table,
            self._worker_id,
            failover_time=kcl.failover_time,
            renewer_interval=kcl.renewer_interval,
            max_leases_for_worker=kcl.max_leases_for_worker,
            damping=kcl.lease_balance_damping,
            handoff_timeout=kcl.lease_handoff_timeout,
            slow_scan_time=kcl.renewer_interval / 2,
        )
        if membership_table is None:
            membership_table = (
                DynamoDBMembershipTable(dynamodb, membership_table_name(table.name))
                if dynamodb is not None
                else InMemoryMembershipTable(membership_table_name(table.name))
            )
        poll_interval = max(kcl.released_lease_poll_interval, MIN_INTERVAL)
        self._membership = Membership(
            membership_table,
            self._worker_id,
            failover_time=kcl.failover_time,
            # A heartbeat later than a renewal interval and a poll, plus a tenth of the failover
            # time for scheduling: this member's leases may be expiring (scan now; their new
            # counters are back-dated to its last heartbeat, see LeaseTaker).
            suspect_after=kcl.renewer_interval + poll_interval + kcl.failover_time / 10,
            forget_after=kcl.dead_worker_cleanup_time,
        )
        self._taker_loop = TakerLoop(
            renewer=self._renewer,
            taker=self._taker,
            membership=self._membership,
            table_name=table.name,
            failover_time=kcl.failover_time,
            taker_interval=kcl.taker_interval,
            renewer_interval=kcl.renewer_interval,
            poll_interval=poll_interval,
            safety_interval=kcl.lease_table_safety_scan_interval,
            handoff_check_interval=kcl.lease_handoff_check_interval,
            stopped=self._taking_stopped,
            notify=self._outbox.append,
            flush=self._flush,
            wake_fence=self._fence_wake.set,
            worker_id=self._worker_id,
        )
        self._shard_sync = ShardSync(
            table,
            kinesis,
            stream_name,
            initial_position=Sentinel(kcl.initial_position),
            cleanup=kcl.cleanup_leases_upon_shard_completion,
            list_shards_backoff=kcl.list_shards_backoff_time,
            list_shards_attempts=kcl.max_list_shards_retry_attempts,
            stop_event=self._taking_stopped,
        )

    @classmethod
    def from_consumer_conf(
        cls,
        conf: ConsumerConf,
        *,
        kinesis: KinesisClient,
        dynamodb: DynamoDBClient,
        subscriber: Subscriber | None = None,
        worker_id: str | None = None,
    ) -> Self:
        """A coordinator for a resolved consumer config (its table, stream and ``kcl``)."""
        return cls(
            conf.kcl,
            table_name=conf.table_name,
            stream_name=conf.stream,
            kinesis=kinesis,
            dynamodb=dynamodb,
            subscriber=subscriber,
            worker_id=worker_id,
        )

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def table(self) -> LeaseTable:
        return self._table

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the table if missing, sync shards, resume own leases, start the threads.

        Errors of the startup steps (table, ListShards) are raised here; nothing is left running
        and ``start()`` may be called again. A missing stream raises `StreamNotFoundError` before
        the table is created. The table is created only here: if it disappears later, the
        coordinator fails (`CoordinatorFailed` with `LeaseTableMissingError`) rather than
        recreate it without its checkpoints.
        """
        with self._state_lock:
            if self._started:
                raise RuntimeError("LeaseCoordinator.start() called twice")
            self._started = True
        try:
            shards = self._shard_sync.list_shards()  # a missing stream fails before any table
            self._table.create_if_missing(**self._kcl.lease_table.create_options())
            self._membership.table.create_if_missing(**self._kcl.lease_table.create_options())
            skip_sync = self._kcl.skip_shard_sync_at_startup_if_leases_exist
            if not (skip_sync and self._table.list_leases()):
                self._shard_sync.sync(shards)
            self._renewer.resume_own_leases()
            self._membership.beat(*self._renewer.load())  # known to the fleet before taking
        except BaseException:
            with self._state_lock:
                self._started = False  # nothing runs yet: start() may be retried
            raise
        self._flush()
        self._threads = [
            self._thread("renewer", self._run_renewer),
            self._thread("fence", self._run_fence),
        ]
        self._taking_threads = [
            self._thread("taker", self._taker_loop.run),
            self._thread("shard-sync", self._run_shard_sync),
        ]
        for thread in (*self._threads, *self._taking_threads):
            thread.start()
        self._log.info("lease coordinator started")

    def _thread(self, role: str, target: Callable[[], None]) -> threading.Thread:
        return threading.Thread(target=target, name=f"lease-{role}-{self._worker_id}", daemon=True)

    def stop_taking(self) -> None:
        """Take no more leases and stop shard sync; held leases stay renewed (checkpoints work).

        The first step of a graceful shutdown, before the consumer's final checkpoints.
        """
        self._taking_stopped.set()
        for thread in self._taking_threads:
            if thread is not threading.current_thread():
                thread.join()

    def hand_over(self) -> None:
        """The first step of a graceful shutdown, while the shards still process: stop taking;
        then, if other live members exist, announce that this worker is leaving and wait up to
        ``leaveHandoffWaitMillis`` for them to ask for its leases. Each request is told to the
        subscriber at once (`LeaseHandoffRequested`: finish the batch, checkpoint, `release`).
        Returns when every held lease was asked for or handed over, or the wait is over;
        `stop` then releases the rest (and completes hand-offs not released yet). Without
        ``releaseLeasesOnShutdown`` (the KCL's shutdown: leases expire) nothing is handed over.
        """
        self.stop_taking()
        wait = self._kcl.leave_handoff_wait if self._kcl.release_leases_on_shutdown else 0.0
        if not self._taker_loop.begin_leave(wait):
            return
        self._log.info("leaving: waiting for hand-off requests")
        while (delay := self._taker_loop.leave_step()) is not None:
            self._stopping.wait(delay)
        self._flush()

    def stop(self, release: bool | None = None) -> None:
        """Stop taking, let go of every held lease, and stop all threads. Idempotent.

        With ``release`` (default ``releaseLeasesOnShutdown``), each lease is freed with a
        write conditional on this worker still owning it, so other workers take it at once;
        without, leases are just no longer renewed and expire after ``failoverTimeMillis`` (the
        KCL's behaviour). Call it after the final checkpoints. No LeasesLost is sent.
        """
        self.stop_taking()
        self._taker.cancel_handoffs()  # asked for leases this worker will not take any more
        if self._kcl.release_leases_on_shutdown if release is None else release:
            released = self._renewer.release_all()
            self._log.info("leases released", count=released)
        else:
            self._renewer.drop_all()
        self._taker_loop.leave()
        self._stopping.set()
        self._fence_wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._flush()
        self._log.info("lease coordinator stopped")

    # -- the consumer's calls ------------------------------------------------------------------

    def held_leases(self) -> tuple[HeldLease, ...]:
        """Leases held now (renewed within failover time), with their latest checkpoints."""
        return self._renewer.held()

    def checkpoint(self, shard_id: str, checkpoint: Checkpoint, concurrency_token: str) -> None:
        """Record progress on a held shard: a sequence number, or SHARD_END.

        Raises ShutdownError if the lease is not held under ``concurrency_token`` any more,
        ThrottlingError / DependencyError on DynamoDB trouble, InvalidStateError when it makes
        no sense (a sequence number after SHARD_END, table missing).
        """
        try:
            self._renewer.checkpoint(shard_id, checkpoint, concurrency_token)
        finally:
            self._flush()

    def shard_ended(
        self, shard_id: str, concurrency_token: str, child_shards: ChildShards | None = None
    ) -> tuple[str, ...]:
        """Checkpoint SHARD_END and create the children's leases; returns the children's ids.

        ``child_shards`` is GetRecords' ``ChildShards`` when the response had them; without,
        the children come from ListShards. Safe to call again (e.g. on a lease gained at
        SHARD_END, or after an error): every step is idempotent.
        """
        try:
            finished = self._renewer.checkpoint(shard_id, Sentinel.SHARD_END, concurrency_token)
        finally:
            self._flush()
        children = self._shard_sync.create_children(finished, child_shards)
        self._taker_loop.leases_created()  # a finished lease and new ones: the fleet re-plans
        return children

    def parents_finished(self, shard_id: str) -> bool:
        """Whether ``shard_id`` may be processed: every parent lease left is at SHARD_END.

        Call again every ``parentShardPollIntervalMillis`` until True. Parent leases already
        deleted (cleaned up, or never created) do not block.
        """
        lease = self._renewer.lease(shard_id) or self._table.get_lease(shard_id)
        if lease is None:
            raise ShutdownError(f"no lease for shard {shard_id}")
        for parent_id in lease.parent_shard_ids:
            parent = self._table.get_lease(parent_id)
            if parent is not None and not parent.finished:
                return False
        return True

    def record_read(self, shard_id: str, records: int, size: int) -> None:
        """Count records and bytes read from a held shard: its measured load, for balancing."""
        self._renewer.record_read(shard_id, records, size)

    def release(self, shard_id: str, concurrency_token: str) -> bool:
        """Hand one held lease over now (after its final checkpoint); True if freed.

        During a hand-off another worker asked for, this completes it (that worker holds the
        lease now). Otherwise the lease is free: the fleet hears of it at its next membership
        poll, and this worker leaves it alone for a taker interval so that another one gets it.
        """
        held = self._renewer.lease(shard_id)
        handed_over = held is not None and held.checkpoint_owner == self._worker_id
        released = self._renewer.release(shard_id, concurrency_token)
        if released:
            self._taker_loop.released(shard_id, keep_free=not handed_over)
        return released

    # -- threads ---------------------------------------------------------------------------------

    def _run_renewer(self) -> None:
        interval = max(self._kcl.renewer_interval, MIN_INTERVAL)
        next_run = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._renewer.renew_all()
            except Exception:
                self._log.exception("lease renewal run failed")
            self._flush()
            # Until it leaves (then no heartbeat is written): during a stop too, so that the
            # others neither suspect it nor lose sight of its leaving.
            self._taker_loop.heartbeat()
            next_run = max(next_run + interval, time.monotonic())
            self._stopping.wait(next_run - time.monotonic())

    def _run_fence(self) -> None:
        while True:
            deadline = self._renewer.fence_expired()
            self._flush()
            if self._stopping.is_set():
                return
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._fence_wake.wait(timeout)
            self._fence_wake.clear()

    def _run_shard_sync(self) -> None:
        interval = max(self._kcl.shard_sync_interval, MIN_INTERVAL)
        while not self._taking_stopped.wait(interval):
            if self._worker_id != min(self._membership.live()):
                continue  # the fleet's lowest worker id syncs (two that disagree are harmless)
            try:
                if self._shard_sync.sync():
                    self._taker_loop.leases_created()
            except KinesisActorsError as exc:
                self._log.warning("shard sync failed", error=str(exc))
            except Exception:
                self._log.exception("shard sync failed")

    # -- messages --------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Deliver queued messages in order, one at a time, with no lock but this one held."""
        with self._delivery_lock:
            while self._outbox:
                self._deliver(self._outbox.popleft())

    def _deliver(self, event: LeaseEvent) -> None:
        subscriber = self._subscriber
        if subscriber is None:
            return
        try:
            if not isinstance(subscriber, pykka.ActorRef):
                subscriber(event)
            elif not tell(subscriber, event):
                self._log.warning("lease subscriber is dead; message dropped", message=type(event))
        except Exception:
            self._log.exception("lease subscriber failed", message=type(event).__name__)
