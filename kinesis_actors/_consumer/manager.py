"""RecordProcessingManager: one ShardConsumer per held lease, supervised.

The lease coordinator tells it ``LeasesGained`` / ``LeasesLost``; it starts a ShardConsumer
(which starts its BatchTracker and ShardCheckpointer) for each lease gained and stops it with
LEASE_LOST when the lease is lost. With a ``process_record`` function it also runs one
RecordProcessor per shard; an event-processor actor is shared by all shards. It sizes the
consumer's BlockingExecutor from the number of shards it runs.

Supervision (Pykka has none): an actor of a shard that dies of an exception tells the manager
(``ShardActorCrashed``); the shard is shut down cleanly (final checkpoint if its actors can still
make it) and restarted from its last checkpoint after ``kcl.taskBackoffTimeMillis``, doubling per
restart. A fourth crash within a minute is a failure for ``worker.failurePolicy``, as is a batch
beyond the failure tolerance (``ShardProcessingFailed``): "consumer" stops the whole consumer
gracefully (the Scala library's behaviour), "shard" stops only that shard and releases its lease.

Stopping (``StopConsumer``): no new leases, and while the shards still process, the other live
workers are let ask for them (`Coordinator.hand_over`, at most ``kcl.leaveHandoffWaitMillis``):
each shard asked for is handed over as in a rebalance. Then every shard left shuts down with
REQUESTED (abort the batch, final checkpoint) within ``worker.shutdownTimeoutSeconds``; the
coordinator releases the leases so other workers take over at once, and ``on_stopped`` is
called. A stop for a failure (policy, coordinator failed) skips the hand-over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._consumer._support import run_in_thread
from kinesis_actors._consumer.messages import (
    ShardActorCrashed,
    ShardFinished,
    ShardProcessingFailed,
    ShutdownReason,
    StopShard,
)
from kinesis_actors._consumer.processor import ProcessRecord, start_processor
from kinesis_actors._consumer.shard import ShardConsumer
from kinesis_actors._errors import ProcessingFailedError
from kinesis_actors._leases.lease import (
    CoordinatorFailed,
    HeldLease,
    LeaseHandoffRequested,
    LeasesGained,
    LeasesLost,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._scheduling import Cancellable, schedule_once

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import ConsumerConf
    from kinesis_actors._consumer.coordination import Coordinator
    from kinesis_actors._consumer.dead_letter import DeadLetter
    from kinesis_actors._consumer.event_loop import ConsumerLoop
    from kinesis_actors._consumer.executor import BlockingExecutor

__all__ = ["RecordProcessingManager", "StopConsumer"]

#: Crashes of one shard allowed within ``_RESTART_WINDOW`` seconds before the failure policy
#: applies (the Scala library's supervisor: 3 restarts per minute).
_MAX_RESTARTS = 3
_RESTART_WINDOW = 60.0
#: Longest wait before a crashed shard is restarted.
_MAX_RESTART_BACKOFF = 30.0
#: Time beyond ``worker.shutdownTimeoutSeconds`` allowed for shards to report back.
_STOP_GRACE = 1.0


@dataclass(frozen=True)
class StopConsumer:
    """Stop gracefully: final checkpoints, then hand the leases over."""


@dataclass(frozen=True)
class _Restart:
    """Timer: the backoff after a crash of this lease's shard is over; start it again."""

    lease: HeldLease


@dataclass(frozen=True)
class _HandedOver:
    """The coordinator's hand-over of a graceful stop is over (``error`` if it failed): stop
    the shards left."""

    error: BaseException | None


@dataclass(frozen=True)
class _StopDeadline:
    """Timer: the shards had their time to report back on a stop; stop without the others."""


@dataclass(frozen=True)
class _CoordinatorStopped:
    """The lease coordinator stopped (on its own thread), with ``error`` if that failed."""

    error: BaseException | None


@dataclass
class _Shard:
    lease: HeldLease
    consumer: pykka.ActorRef[Any]
    #: The shard's own RecordProcessor (function API); None when the processor is shared.
    processor: pykka.ActorRef[Any] | None
    stopping: bool = False
    restart: bool = False
    release: bool = False
    crashes: list[float] = field(default_factory=list)


class RecordProcessingManager(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        conf: ConsumerConf,
        kinesis: KinesisClient,
        coordinator: Coordinator,
        processor: pykka.ActorRef[Any] | ProcessRecord,
        on_stopped: Callable[[BaseException | None], object],
        executor: BlockingExecutor,
        loop: ConsumerLoop,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__()
        self._dead_letter = dead_letter
        self._executor = executor
        self._loop = loop
        self._conf = conf
        self._kinesis = kinesis
        self._coordinator = coordinator
        self._processor = processor
        self._on_stopped = on_stopped
        self._log = get_logger(__name__).bind(stream=conf.stream_name)
        self._shards: dict[str, _Shard] = {}
        #: Leases (re)gained while the shard's previous ShardConsumer is still shutting down.
        self._pending: dict[str, HeldLease] = {}
        #: Recent crash times per shard, kept across restarts.
        self._crashes: dict[str, list[float]] = {}
        self._timers: list[Cancellable] = []
        self._stopping = False
        #: A graceful stop's hand-over is under way (shards still process).
        self._handing_over = False
        self._coordinator_stopping = False
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def on_stop(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()
        error = exc_info[1]
        self._log.error("record processing manager died", error=repr(error))
        for shard in self._shards.values():
            self._stop_actors(shard)
        on_stopped = self._on_stopped
        run_in_thread("kinesis-consumer-stop", self._coordinator.stop, lambda _: on_stopped(error))

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LeasesGained):
            for lease in message.leases:
                self._gained(lease)
        elif isinstance(message, LeasesLost):
            for lease in message.leases:
                self._lost(lease)
        elif isinstance(message, LeaseHandoffRequested):
            for lease in message.leases:
                self._hand_off(lease)
        elif isinstance(message, CoordinatorFailed):
            self._begin_stop(message.error)  # e.g. the lease table was deleted
        elif isinstance(message, ShardFinished):
            self._finished(message)
        elif isinstance(message, ShardProcessingFailed):
            shard_id = message.lease.shard_id
            self._apply_failure_policy(
                message.lease,
                ProcessingFailedError(shard_id, message.failed_events, message.error),
            )
        elif isinstance(message, ShardActorCrashed):
            self._crashed(message)
        elif isinstance(message, _Restart):
            self._restart(message.lease)
        elif isinstance(message, StopConsumer):
            self._hand_over()
        elif isinstance(message, _HandedOver):
            if message.error is not None:
                self._log.warning("hand-over before stopping failed", error=repr(message.error))
            self._begin_stop(None)
        elif isinstance(message, _StopDeadline):
            self._stop_deadline()
        elif isinstance(message, _CoordinatorStopped):
            self._on_stopped(self._error or message.error)
            self.actor_ref.stop(block=False)
        else:
            self._log.warning("unexpected message dropped", message=type(message).__name__)

    def _current(self, lease: HeldLease) -> _Shard | None:
        """The running shard of this acquisition (same token), if any."""
        shard = self._shards.get(lease.shard_id)
        if shard is None or shard.lease.concurrency_token != lease.concurrency_token:
            return None
        return shard

    def _gained(self, lease: HeldLease) -> None:
        if self._stopping or self._handing_over:
            return  # released with the others when the coordinator stops
        running = self._shards.get(lease.shard_id)
        if running is None:
            self._start(lease)
        elif running.lease.concurrency_token != lease.concurrency_token:
            # Regained while the old ShardConsumer still runs: its token is stale; start after it.
            self._pending[lease.shard_id] = lease
            self._stop_shard(running, ShutdownReason.LEASE_LOST)

    def _lost(self, lease: HeldLease) -> None:
        pending = self._pending.get(lease.shard_id)
        if pending is not None and pending.concurrency_token == lease.concurrency_token:
            del self._pending[lease.shard_id]
        shard = self._current(lease)
        if shard is not None:
            self._log.info("lease lost", shard_id=lease.shard_id)
            shard.restart = False
            self._stop_shard(shard, ShutdownReason.LEASE_LOST)

    def _start(self, lease: HeldLease) -> None:
        processor: pykka.ActorRef[Any] | None = None
        if isinstance(self._processor, pykka.ActorRef):
            target = self._processor
        else:
            processor = target = start_processor(
                self._processor, lease.shard_id, self._conf.worker, self._loop
            )
        consumer = ShardConsumer.start(
            lease,
            self._conf,
            self._kinesis,
            self._coordinator,
            target,
            self.actor_ref,
            executor=self._executor,
            batch_processor=processor is not None,
            dead_letter=self._dead_letter,
        )
        crashes = self._crashes.setdefault(lease.shard_id, [])
        self._shards[lease.shard_id] = _Shard(lease, consumer, processor, crashes=crashes)
        self._executor.resize(len(self._shards))
        self._log.info("shard consumer started", shard_id=lease.shard_id)

    def _stop_shard(self, shard: _Shard, reason: ShutdownReason) -> None:
        if shard.stopping and reason is not ShutdownReason.LEASE_LOST:
            return
        shard.stopping = True
        if not tell(shard.consumer, StopShard(reason)):
            self._remove(shard)

    def _finished(self, message: ShardFinished) -> None:
        shard = self._current(message.lease)
        if shard is None:
            return
        self._remove(shard)
        if shard.release:  # during a stop too: a hand-off completes now, not after every shard
            coordinator, lease = self._coordinator, shard.lease
            self._executor.submit(
                lambda: coordinator.release(lease.shard_id, lease.concurrency_token)
            )
        if shard.restart and not self._stopping:
            delay = min(
                self._conf.kcl.task_backoff_time * 2 ** (len(shard.crashes) - 1),
                _MAX_RESTART_BACKOFF,
            )
            self._timers.append(schedule_once(self.actor_ref, delay, _Restart(shard.lease)))

    def _remove(self, shard: _Shard) -> None:
        """Forget a stopped shard; start the lease regained meanwhile; finish a stop."""
        shard_id = shard.lease.shard_id
        if self._shards.get(shard_id) is shard:
            del self._shards[shard_id]
            self._executor.resize(len(self._shards))
        self._stop_actors(shard)
        pending = self._pending.pop(shard_id, None)
        if pending is not None and not self._stopping:
            self._start(pending)
        if self._stopping and not self._shards:
            self._stop_coordinator()

    @staticmethod
    def _stop_actors(shard: _Shard) -> None:
        shard.consumer.stop(block=False)
        if shard.processor is not None:
            shard.processor.stop(block=False)

    # -- supervision ----------------------------------------------------------------------------

    def _crashed(self, message: ShardActorCrashed) -> None:
        shard = self._current(message.lease)
        if shard is None:
            return
        now = time.monotonic()
        shard.crashes[:] = [t for t in shard.crashes if now - t < _RESTART_WINDOW] + [now]
        self._log.error(
            "shard actor crashed",
            shard_id=shard.lease.shard_id,
            actor=message.actor,
            error=repr(message.error),
            crashes=len(shard.crashes),
        )
        if len(shard.crashes) > _MAX_RESTARTS:
            self._apply_failure_policy(shard.lease, message.error)
            return
        shard.restart = True
        if message.actor == ShardConsumer.__name__:
            # It cannot shut down by itself any more; its children were stopped by its failure.
            self._finished(ShardFinished(shard.lease, ShutdownReason.REQUESTED, False))
        else:
            self._stop_shard(shard, ShutdownReason.REQUESTED)

    def _restart(self, lease: HeldLease) -> None:
        if self._stopping or lease.shard_id in self._shards:
            return
        for held in self._coordinator.held_leases():
            if (
                held.shard_id == lease.shard_id
                and held.concurrency_token == lease.concurrency_token
            ):
                self._log.info("restarting shard", shard_id=lease.shard_id)
                self._start(held)  # from the latest checkpoint
                return
        self._log.info("not restarted: lease no longer held", shard_id=lease.shard_id)

    def _hand_off(self, lease: HeldLease) -> None:
        """Another worker asked for this shard (rebalancing, or this worker is leaving): shut it
        down as on a graceful stop (finish or abort the batch, final checkpoint), then release it
        to that worker (a shard already stopping is released as soon as it has stopped)."""
        shard = self._current(lease)
        if shard is None:
            return  # not running: the coordinator's stop, or the hand-off timeout, moves it
        self._log.info("handing the shard over", shard_id=lease.shard_id)
        shard.restart = False
        shard.release = True
        self._stop_shard(shard, ShutdownReason.REQUESTED)

    def _apply_failure_policy(self, lease: HeldLease, error: BaseException) -> None:
        if self._conf.worker.failure_policy == "consumer":
            self._log.error("shutting the consumer down (worker.failurePolicy = consumer)")
            self._begin_stop(error)
            return
        shard = self._current(lease)
        if shard is not None:
            self._log.error(
                "shutting the shard down and releasing its lease (worker.failurePolicy = shard)",
                shard_id=lease.shard_id,
            )
            shard.restart = False
            shard.release = True
            self._stop_shard(shard, ShutdownReason.REQUESTED)

    # -- stopping -------------------------------------------------------------------------------

    def _hand_over(self) -> None:
        """A graceful stop: let the coordinator hand the leases over (its own thread, bounded),
        answering requests as rebalancing does, then stop the rest."""
        if self._stopping or self._handing_over:
            return
        self._handing_over = True
        self._log.info("stopping the consumer: handing leases over", shards=sorted(self._shards))
        self._run_then_tell("kinesis-consumer-hand-over", self._coordinator.hand_over, _HandedOver)

    def _begin_stop(self, error: BaseException | None) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._error = error
        self._log.info("stopping the consumer", shards=sorted(self._shards))
        for timer in self._timers:
            timer.cancel()
        self._pending.clear()
        self._executor.submit(self._coordinator.stop_taking)
        deadline = self._conf.worker.shutdown_timeout + _STOP_GRACE
        self._timers = [schedule_once(self.actor_ref, deadline, _StopDeadline())]
        for shard in list(self._shards.values()):
            shard.restart = False
            self._stop_shard(shard, ShutdownReason.REQUESTED)
        if not self._shards:
            self._stop_coordinator()

    def _stop_deadline(self) -> None:
        if not self._shards:
            return
        self._log.warning("shards did not shut down in time", shards=sorted(self._shards))
        for shard in list(self._shards.values()):
            self._remove(shard)

    def _stop_coordinator(self) -> None:
        if self._coordinator_stopping:
            return
        self._coordinator_stopping = True
        self._run_then_tell("kinesis-consumer-stop", self._coordinator.stop, _CoordinatorStopped)

    def _run_then_tell(
        self,
        name: str,
        work: Callable[[], object],
        outcome: Callable[[BaseException | None], object],
    ) -> None:
        """Run a blocking coordinator step on a thread of its own; this actor is told
        ``outcome(error)`` when it returns (``error`` None unless it raised)."""
        ref = self.actor_ref

        def done(result: object) -> None:
            tell(ref, outcome(result if isinstance(result, BaseException) else None))

        run_in_thread(name, work, done)
