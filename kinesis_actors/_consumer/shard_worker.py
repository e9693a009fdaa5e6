"""ShardWorker: one leased shard's lifecycle and read loop.

Lifecycle (the KCL's): WAITING_ON_PARENTS (a child shard waits until its parents reached
SHARD_END) -> INITIALIZING (first iterator) -> PROCESSING (read, process, repeat) ->
SHUTTING_DOWN (final checkpoint) -> SHUTDOWN_COMPLETE.

In PROCESSING each non-empty GetRecords result becomes one batch (``ProcessEvents``) for the
shard's ConsumerWorker, and the next batch is not sent before ``ProcessingComplete``. With
``kcl.dataFetchingStrategy = PREFETCH_CACHED`` the next GetRecords runs while the batch is being
processed (at most one batch ahead); with ``DEFAULT`` only afterwards. An empty read waits
``kcl.idleTimeBetweenReadsInMillis``; a throttled one backs off exponentially from
``kcl.taskBackoffTimeMillis``. Every blocking call (GetRecords, DynamoDB) runs on a helper
thread and reports back as a message, so a shutdown is handled at once, even mid-read.

Shutdown reasons: SHARD_END (all records processed: checkpoint SHARD_END, retried until it
succeeds, so the children can start), LEASE_LOST (abort, no checkpoint), REQUESTED (abort the
batch, forced checkpoint of what was acknowledged). The supervisor (the RecordProcessingManager)
hears ``ShardFinished``, ``ShardProcessingFailed`` (tolerance exceeded) or ``ShardFailed``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._consumer._support import run_blocking
from kinesis_actors._consumer.checkpoint import CheckpointWorker
from kinesis_actors._consumer.messages import (
    GracefulShutdown,
    ProcessEvents,
    ProcessingComplete,
    ShardFailed,
    ShardFinished,
    ShardProcessingFailed,
    ShutdownComplete,
    ShutdownReason,
)
from kinesis_actors._consumer.reader import ReadResult, ShardReader, is_throttling
from kinesis_actors._consumer.worker import ConsumerWorker
from kinesis_actors._errors import ShutdownError
from kinesis_actors._logging import get_logger
from kinesis_actors._models import Sentinel
from kinesis_actors._scheduling import Cancellable, schedule_once

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import ConsumerConf
    from kinesis_actors._consumer.coordination import LeaseCheckpointer
    from kinesis_actors._leases.lease import Checkpoint, HeldLease

__all__ = ["ConsumerWorkerFactory", "ShardState", "ShardWorker", "StopShard"]

#: Starts the shard's ConsumerWorker (a factory, so tests can put a probe there).
ConsumerWorkerFactory = Callable[[], pykka.ActorRef[Any]]

#: Longest wait after repeated throttling.
_MAX_THROTTLE_BACKOFF = 10.0


class ShardState(enum.Enum):
    WAITING_ON_PARENTS = "WAITING_ON_PARENTS"
    INITIALIZING = "INITIALIZING"
    PROCESSING = "PROCESSING"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    SHUTDOWN_COMPLETE = "SHUTDOWN_COMPLETE"


@dataclass(frozen=True)
class StopShard:
    """From the manager: stop this shard for ``reason``; ``ShardFinished`` follows."""

    reason: ShutdownReason


@dataclass(frozen=True)
class _Step:
    """Run a lifecycle step now (a timer fired)."""

    name: str


@dataclass(frozen=True)
class _StepDone:
    """A blocking step finished on its helper thread: its result, or the exception."""

    name: str
    result: Any


class ShardWorker(pykka.ThreadingActor):
    """One per held lease; started and stopped by the RecordProcessingManager (``supervisor``).

    ``processor`` gets the records (``batch_processor``: as ``ProcessEventBatch``, see
    ConsumerWorker).
    """

    use_daemon_thread = True

    def __init__(
        self,
        lease: HeldLease,
        conf: ConsumerConf,
        kinesis: KinesisClient,
        coordinator: LeaseCheckpointer,
        processor: pykka.ActorRef[Any],
        supervisor: pykka.ActorRef[Any] | None = None,
        consumer_worker: ConsumerWorkerFactory | None = None,
        *,
        batch_processor: bool = False,
    ) -> None:
        super().__init__()
        self._batch_processor = batch_processor
        self._lease = lease
        self._shard_id = lease.shard_id
        self._conf = conf
        self._kcl = conf.kcl
        self._coordinator = coordinator
        self._processor = processor
        self._supervisor = supervisor
        self._consumer_worker_factory = consumer_worker or self._start_consumer_worker
        self._reader = ShardReader(kinesis, conf.stream_name, lease, conf.kcl)
        self._prefetch = conf.kcl.data_fetching_strategy == "PREFETCH_CACHED"
        self._log = get_logger(__name__).bind(shard_id=lease.shard_id)
        self._worker: pykka.ActorRef[Any] | None = None
        self._state = ShardState.WAITING_ON_PARENTS
        self._reason: ShutdownReason | None = None
        self._timer: Cancellable | None = None
        # The read loop.
        self._fetching = False
        self._prefetched: ReadResult | None = None
        self._batch_in_flight = False
        self._at_end = False
        self._failed = False
        self._throttles = 0
        self._child_shards: tuple[Mapping[str, Any], ...] | None = None
        self._retrying_shard_end = False

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._worker = self._consumer_worker_factory()
        except Exception as exc:
            self._report_failure(type(self).__name__, exc)
            self.actor_ref.stop(block=False)
            return
        self._log.info(
            "Initializing record processor for shard", checkpoint=str(self._lease.checkpoint)
        )
        if self._lease.parent_shard_ids:
            self._run("parents", self._parents_finished)
        else:
            self._initialize()

    def on_stop(self) -> None:
        self._cancel_timer()
        if self._worker is not None:
            self._worker.stop(block=False)

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()
        if exc_info[1] is not None:
            self._report_failure(type(self).__name__, exc_info[1])

    def _report_failure(self, actor: str, error: BaseException) -> None:
        self._log.error("shard actor died", actor=actor, error=repr(error))
        tell(self._supervisor, ShardFailed(self._lease, actor, error))

    def _start_consumer_worker(self) -> pykka.ActorRef[Any]:
        conf, shard_id, report = self._conf, self._shard_id, self._report_failure

        def checkpoint_worker(parent: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
            return CheckpointWorker.start(
                parent, self._write_checkpoint, conf.checkpointer, shard_id, report
            )

        return ConsumerWorker.start(
            shard_id,
            self._processor,
            conf.worker,
            checkpoint_worker,
            report,
            batch_processor=self._batch_processor,
        )

    def _write_checkpoint(self, position: Checkpoint) -> None:
        """The CheckpointWorker's write (on its thread): SHARD_END also creates the children."""
        token = self._lease.concurrency_token
        if position == Sentinel.SHARD_END:
            self._coordinator.shard_ended(self._shard_id, token, self._child_shards)
        else:
            self._coordinator.checkpoint(self._shard_id, position, token)

    def _parents_finished(self) -> bool:
        return self._coordinator.parents_finished(self._shard_id)

    def _initialize(self) -> None:
        self._state = ShardState.INITIALIZING
        self._run("initialize", self._reader.start)

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessingComplete):
            self._on_processing_complete(message)
        elif isinstance(message, _StepDone):
            self._on_step_done(message.name, message.result)
        elif isinstance(message, _Step):
            self._on_step(message.name)
        elif isinstance(message, StopShard):
            self._shutdown(message.reason)
        elif isinstance(message, ShutdownComplete):
            self._on_shutdown_complete(message)
        else:
            self._log.warning("unexpected message dropped", message=repr(message))

    def _run(self, step: str, work: Callable[[], Any]) -> None:
        ref = self.actor_ref
        run_blocking(
            f"kinesis-{self._shard_id}-{step}",
            work,
            lambda result: tell(ref, _StepDone(step, result)),
        )

    def _schedule(self, step: str, delay: float) -> None:
        self._cancel_timer()
        self._timer = schedule_once(self.actor_ref, delay, _Step(step))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_step(self, step: str) -> None:
        if step == "parents" and self._state is ShardState.WAITING_ON_PARENTS:
            self._run("parents", self._parents_finished)
        elif step == "initialize" and self._state is ShardState.INITIALIZING:
            self._initialize()
        elif step == "fetch":
            self._fetch()
        elif step == "shard_end" and self._state is ShardState.SHUTTING_DOWN:
            self._run("shard_end", self._end_shard)

    def _on_step_done(self, step: str, result: Any) -> None:
        if step == "fetch":
            self._on_fetched(result)
        elif step == "parents" and self._state is ShardState.WAITING_ON_PARENTS:
            if result is True:
                self._initialize()
            elif isinstance(result, ShutdownError):
                self._log.info("lease gone while waiting on parent shards")
                self._shutdown(ShutdownReason.LEASE_LOST)
            else:
                if isinstance(result, BaseException):
                    self._log.warning("parent shard check failed", error=repr(result))
                else:
                    self._log.info("waiting on parent shards", parents=self._lease.parent_shard_ids)
                self._schedule("parents", self._kcl.parent_shard_poll_interval)
        elif step == "initialize" and self._state is ShardState.INITIALIZING:
            if isinstance(result, BaseException):
                self._log.warning("shard initialization failed; retrying", error=repr(result))
                self._schedule("initialize", self._kcl.task_backoff_time)
            else:
                self._state = ShardState.PROCESSING
                self._fetch()
        elif step == "shard_end" and self._state is ShardState.SHUTTING_DOWN:
            if not isinstance(result, BaseException):
                self._finish(checkpointed=True)
            elif isinstance(result, ShutdownError):
                self._log.info("lease lost before the SHARD_END checkpoint")
                self._reason = ShutdownReason.LEASE_LOST
                self._finish(checkpointed=False)
            else:
                self._log.warning("SHARD_END checkpoint failed; retrying", error=repr(result))
                self._schedule("shard_end", self._kcl.task_backoff_time)

    # -- the read loop --------------------------------------------------------------------------

    def _fetch(self) -> None:
        if (
            self._state is not ShardState.PROCESSING
            or self._fetching
            or self._at_end
            or self._failed
            or self._prefetched is not None
        ):
            return
        self._cancel_timer()
        self._fetching = True
        self._run("fetch", self._reader.read)

    def _on_fetched(self, result: ReadResult | BaseException) -> None:
        self._fetching = False
        if self._state is not ShardState.PROCESSING or self._failed:
            return
        if isinstance(result, BaseException):
            if is_throttling(result):
                self._throttles += 1
                delay = min(
                    self._kcl.task_backoff_time * 2 ** (self._throttles - 1), _MAX_THROTTLE_BACKOFF
                )
                self._log.warning("GetRecords throttled; backing off", delay=delay)
            else:
                delay = self._kcl.task_backoff_time
                self._log.warning("GetRecords failed; retrying", error=repr(result), delay=delay)
            if not self._batch_in_flight:
                self._schedule("fetch", delay)
            return
        self._throttles = 0
        self._publish_lag(result)
        if result.shard_end:
            self._at_end = True
            self._child_shards = result.child_shards
        if result.events:
            if self._batch_in_flight:
                self._prefetched = result
            else:
                self._dispatch(result)
        elif not self._batch_in_flight:
            if self._at_end:
                self._shutdown(ShutdownReason.SHARD_END)
            else:
                self._schedule("fetch", self._kcl.idle_time_between_reads)

    def _dispatch(self, result: ReadResult) -> None:
        self._batch_in_flight = True
        self._log.debug("Processing records", count=len(result.events))
        tell(self._worker, ProcessEvents(result.events, self._shard_id, self.actor_ref))
        if self._prefetch:
            self._fetch()

    def _on_processing_complete(self, message: ProcessingComplete) -> None:
        self._batch_in_flight = False
        if self._state is not ShardState.PROCESSING:
            return
        if not message.successful:
            # Beyond the failure tolerance: read nothing more; the supervisor applies the policy.
            self._failed = True
            self._prefetched = None
            tell(self._supervisor, ShardProcessingFailed(self._lease, message.failed_events))
            return
        if self._prefetched is not None:
            result, self._prefetched = self._prefetched, None
            self._dispatch(result)
        elif self._at_end and not self._fetching:
            self._shutdown(ShutdownReason.SHARD_END)
        else:
            self._fetch()

    def _publish_lag(self, result: ReadResult) -> None:
        if result.millis_behind_latest is not None:
            metrics.gauge(
                "MillisBehindLatest", result.millis_behind_latest, shard_id=self._shard_id
            )
        if result.events:
            age = datetime.now(UTC) - result.events[-1].timestamp
            metrics.gauge(
                "IteratorAgeMillis", max(age.total_seconds() * 1000, 0.0), shard_id=self._shard_id
            )

    # -- shutdown -------------------------------------------------------------------------------

    def _shutdown(self, reason: ShutdownReason) -> None:
        if self._state is ShardState.SHUTDOWN_COMPLETE:
            return
        if self._state is ShardState.SHUTTING_DOWN:
            if self._reason is ShutdownReason.SHARD_END and reason is not ShutdownReason.SHARD_END:
                # Stop retrying the SHARD_END checkpoint; the next owner repeats it.
                self._reason = reason
                if self._retrying_shard_end:
                    self._finish(checkpointed=False)
            return
        self._state = ShardState.SHUTTING_DOWN
        self._reason = reason
        self._cancel_timer()
        self._prefetched = None
        self._log.info("*** Shutting down record processor for shard ***", reason=reason.value)
        if not tell(self._worker, GracefulShutdown(reason, self.actor_ref)):
            self._finish(checkpointed=False)

    def _on_shutdown_complete(self, message: ShutdownComplete) -> None:
        if self._state is not ShardState.SHUTTING_DOWN:
            return
        if self._reason is ShutdownReason.SHARD_END and not message.checkpoint_successful:
            self._log.warning("SHARD_END checkpoint failed; retrying")
            self._retrying_shard_end = True
            self._schedule("shard_end", self._kcl.task_backoff_time)
            return
        self._finish(checkpointed=message.checkpoint_successful)

    def _end_shard(self) -> None:
        self._write_checkpoint(Sentinel.SHARD_END)

    def _finish(self, *, checkpointed: bool) -> None:
        self._cancel_timer()
        self._state = ShardState.SHUTDOWN_COMPLETE
        reason = self._reason or ShutdownReason.REQUESTED
        self._log.info("shard shut down", reason=reason.value, checkpointed=checkpointed)
        tell(self._supervisor, ShardFinished(self._lease, reason, checkpointed))
        self.actor_ref.stop(block=False)
