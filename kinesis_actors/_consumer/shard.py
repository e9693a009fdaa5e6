"""ShardConsumer: one leased shard's lifecycle and read loop.

Lifecycle (the KCL's): WAITING_ON_PARENTS (a child shard waits until its parents reached
SHARD_END) -> INITIALIZING (first iterator) -> PROCESSING (read, process, repeat) ->
SHUTTING_DOWN (final checkpoint) -> SHUTDOWN_COMPLETE. Each step is a typed message: a timer
tells the step (``_CheckParents``, ``_Initialize``, ``_Fetch``), the blocking call runs on the
consumer's BlockingExecutor and its outcome comes back as a message (``_ParentsChecked``,
``_Initialized``, ``_Fetched``), so a shutdown is handled at once, even mid-read.

In PROCESSING each non-empty GetRecords result becomes one batch (``StartBatch``) for the
shard's BatchTracker, and the next batch is not sent before ``ProcessingComplete``. With
``kcl.dataFetchingStrategy = PREFETCH_CACHED`` the next GetRecords runs while the batch is being
processed (at most one batch ahead); with ``DEFAULT`` only afterwards. Either way a read never
starts before the shard's ReadPacer allows it (``pacing``): once per read interval, at once after a
full read within ``kcl.readsPerSecondPerShard``, later after a throttle.

Shutdown reasons: SHARD_END (all records processed: the BatchTracker has the ShardCheckpointer
write SHARD_END, with the child shards of the last read, retried there until it succeeds, so the
children can start), LEASE_LOST (abort, no checkpoint), REQUESTED (the batch in flight may finish
within half of ``worker.shutdownTimeoutSeconds``, then what is not acknowledged is aborted; forced
checkpoint of what was acknowledged). A LEASE_LOST or REQUESTED during a SHARD_END shutdown ends
the shard at once: the next owner repeats the SHARD_END checkpoint. The supervisor (the
RecordProcessingManager) hears ``ShardFinished``, ``ShardProcessingFailed`` (tolerance exceeded)
or ``ShardActorCrashed``.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._aws import is_throttling
from kinesis_actors._consumer.fanout import (
    FanoutShardReader,
    SubscriptionFailed,
    fanout_reader,
)
from kinesis_actors._consumer.messages import (
    ChildShards,
    GracefulShutdown,
    ProcessingComplete,
    ShardFinished,
    ShardProcessingFailed,
    ShutdownComplete,
    ShutdownReason,
    StartBatch,
    StopShard,
)
from kinesis_actors._consumer.pacing import ReadPacer
from kinesis_actors._consumer.reader import ReadResult, ShardReader
from kinesis_actors._consumer.shard_actors import BatchTrackerFactory, crash_reporter, shard_actors
from kinesis_actors._errors import ShutdownError
from kinesis_actors._logging import get_logger
from kinesis_actors._scheduling import Cancellable, schedule_once

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import ConsumerConf
    from kinesis_actors._consumer.coordination import LeaseCheckpointer
    from kinesis_actors._consumer.dead_letter import DeadLetter
    from kinesis_actors._consumer.executor import BlockingExecutor
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["ShardConsumer", "ShardState"]


log = get_logger(__name__)


class ShardState(enum.Enum):
    """The KCL's lifecycle of a shard on this worker, in order."""

    WAITING_ON_PARENTS = "WAITING_ON_PARENTS"
    INITIALIZING = "INITIALIZING"
    PROCESSING = "PROCESSING"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    SHUTDOWN_COMPLETE = "SHUTDOWN_COMPLETE"


@dataclass(frozen=True)
class _CheckParents:
    """Ask the lease table whether the parent shards are finished (a timer fired)."""


@dataclass(frozen=True)
class _ParentsChecked:
    """True, False, or the exception of the check."""

    result: bool | BaseException


@dataclass(frozen=True)
class _Initialize:
    """Get the first shard iterator (a timer fired after a failure)."""


@dataclass(frozen=True)
class _Initialized:
    error: BaseException | None


@dataclass(frozen=True)
class _Fetch:
    """Read the next records (a timer fired)."""


@dataclass(frozen=True)
class _Fetched:
    result: ReadResult | BaseException


class ShardConsumer(pykka.ThreadingActor):
    """One per held lease; started and stopped by the RecordProcessingManager (``supervisor``).

    ``processor`` gets the records (``batch_processor``: as ``ProcessRecords``, see
    BatchTracker); ``executor`` runs the blocking calls.
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
        batch_tracker: BatchTrackerFactory | None = None,
        *,
        executor: BlockingExecutor,
        batch_processor: bool = False,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__()
        self._lease = lease
        self._shard_id = lease.shard_id
        self._kcl = conf.kcl
        self._coordinator = coordinator
        self._supervisor = supervisor
        self._executor = executor
        self._report_failure = crash_reporter(supervisor, lease)
        self._batch_tracker_factory = batch_tracker or shard_actors(
            lease,
            conf,
            coordinator,
            processor,
            executor,
            self._report_failure,
            batch_processor,
            dead_letter,
        )
        self._kinesis = kinesis
        self._stream = conf.stream
        self._reader = ShardReader(kinesis, conf.stream, lease, conf.kcl)
        #: FANOUT: the subscription (None: polling, also after a fallback to polling).
        self._fanout = fanout_reader(
            kinesis, lease, conf.kcl, partial(tell, self.actor_ref, _Fetch())
        )
        self._prefetch = conf.kcl.data_fetching_strategy == "PREFETCH_CACHED"
        self._log = log.bind(shard_id=lease.shard_id)
        self._tracker: pykka.ActorRef[Any] | None = None
        self._state = ShardState.WAITING_ON_PARENTS
        self._reason: ShutdownReason | None = None
        self._timer: Cancellable | None = None
        # The read loop.
        self._fetching = False
        self._prefetched: ReadResult | None = None
        self._batch_in_flight = False
        self._at_end = False
        self._failed = False
        self._pacer = ReadPacer(conf.kcl, phase=random.random)  # idle shards out of step
        self._child_shards: ChildShards = None

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._tracker = self._batch_tracker_factory()
        except Exception as exc:
            self._report_failure(type(self).__name__, exc)
            self.actor_ref.stop(block=False)
            return
        self._log.info(
            "Initializing record processor for shard", checkpoint=str(self._lease.checkpoint)
        )
        if self._lease.parent_shard_ids:
            self._check_parents()
        else:
            self._initialize()

    def on_stop(self) -> None:
        self._cancel_timer()
        if self._fanout is not None:
            self._fanout.close()
        if self._tracker is not None:
            self._tracker.stop(block=False)

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()
        if exc_info[1] is not None:
            self._report_failure(type(self).__name__, exc_info[1])

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessingComplete):
            self._on_processing_complete(message)
        elif isinstance(message, _Fetched):
            self._on_fetched(message.result)
        elif isinstance(message, _Fetch):
            self._fetch()
        elif isinstance(message, StopShard):
            self._shutdown(message.reason)
        elif isinstance(message, ShutdownComplete):
            self._on_shutdown_complete(message)
        elif self._state is ShardState.WAITING_ON_PARENTS:
            if isinstance(message, _CheckParents):
                self._check_parents()
            elif isinstance(message, _ParentsChecked):
                self._on_parents_checked(message.result)
        elif self._state is ShardState.INITIALIZING:
            if isinstance(message, _Initialize):
                self._initialize()
            elif isinstance(message, _Initialized):
                self._on_initialized(message.error)
        elif not isinstance(message, _CheckParents | _ParentsChecked | _Initialize | _Initialized):
            self._log.warning("unexpected message dropped", message=type(message).__name__)

    def _call(self, work: Callable[[], Any], reply: Callable[[Any], object]) -> None:
        """Run ``work`` on the executor; its outcome comes back to this actor as ``reply(...)``."""
        me = self.actor_ref
        self._executor.call(work, lambda outcome: tell(me, reply(outcome)))

    def _schedule(self, message: object, delay: float) -> None:
        self._cancel_timer()
        self._timer = schedule_once(self.actor_ref, delay, message)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_parents(self) -> None:
        coordinator, shard_id = self._coordinator, self._shard_id
        self._call(lambda: coordinator.parents_finished(shard_id), _ParentsChecked)

    def _on_parents_checked(self, result: bool | BaseException) -> None:
        if result is True:
            self._initialize()
            return
        if isinstance(result, ShutdownError):
            self._log.info("lease gone while waiting on parent shards")
            self._shutdown(ShutdownReason.LEASE_LOST)
            return
        if isinstance(result, BaseException):
            self._log.warning("parent shard check failed", error=repr(result))
        else:
            self._log.info("waiting on parent shards", parents=self._lease.parent_shard_ids)
        self._schedule(_CheckParents(), self._kcl.parent_shard_poll_interval)

    def _initialize(self) -> None:
        self._state = ShardState.INITIALIZING
        if self._fanout is not None:
            self._fanout.start()  # its own thread: nothing blocks here
            self._on_initialized(None)
            return
        self._call(self._reader.start, lambda outcome: _Initialized(_error(outcome)))

    def _on_initialized(self, error: BaseException | None) -> None:
        if error is not None:
            self._log.warning("shard initialization failed; retrying", error=repr(error))
            self._schedule(_Initialize(), self._kcl.task_backoff_time)
        else:
            self._state = ShardState.PROCESSING
            self._fetch()

    # -- the read loop --------------------------------------------------------------------------

    def _fetch(self) -> None:
        """Read now if the pacer allows, else when it will (a ``_Fetch`` timer)."""
        if (
            self._state is not ShardState.PROCESSING
            or self._fetching
            or self._at_end
            or self._failed
            or self._prefetched is not None
            or (self._batch_in_flight and not self._prefetch)
        ):
            return
        if self._fanout is not None:  # pushed: paced by the subscription, not by the pacer
            self._cancel_timer()
            self._take_from_subscription(self._fanout)
            return
        now = time.monotonic()
        wait = self._pacer.next_read_at() - now
        if wait > 0:
            self._schedule(_Fetch(), wait)
            return
        self._cancel_timer()
        self._fetching = True
        self._pacer.started(now)
        self._call(self._read, _Fetched)

    def _read(self) -> ReadResult:
        """One read, counted as the shard's load (the fleet weighs leases by it)."""
        return self._counted(self._reader.read())

    def _counted(self, result: ReadResult) -> ReadResult:
        size = sum(len(event.payload) for event in result.events)
        self._coordinator.record_read(self._shard_id, len(result.events), size)
        return result

    def _take_from_subscription(self, fanout: FanoutShardReader) -> None:
        """The next batch of the subscription, if one is there (else it tells ``_Fetch`` when one
        arrives)."""
        item = fanout.take()
        if isinstance(item, SubscriptionFailed):
            self._fanout = None
            fanout.close()
            if item.protocol and self._kcl.fanout_fallback_to_polling:
                self._log.warning(
                    "enhanced fan-out failed at the protocol level: this shard is read by "
                    "polling from now on (kcl.fanoutFallbackToPolling)",
                    error=str(item.error),
                )
                metrics.count("FanoutFallbacks", shard_id=self._shard_id)
                self._reader = ShardReader(
                    self._kinesis,
                    self._stream,
                    self._lease,
                    self._kcl,
                    resume_after=item.resume_after,
                )
                self._fetch()
            else:
                self._failed = True  # the supervisor restarts the shard
                self._report_failure(type(fanout).__name__, item.error)
        elif item is not None:
            self._on_fetched(self._counted(item))

    def _on_fetched(self, result: ReadResult | BaseException) -> None:
        self._fetching = False
        if self._state is not ShardState.PROCESSING or self._failed:
            return
        if isinstance(result, BaseException):
            if is_throttling(result):
                delay = self._pacer.throttled()
                self._log.warning("GetRecords throttled; backing off", delay=delay)
            else:
                delay = self._pacer.failed()
                self._log.warning("GetRecords failed; retrying", error=repr(result), delay=delay)
            self._fetch()
            return
        if self._fanout is None:
            self._pacer.read(records=result.records_read, full=result.full)
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
                self._fetch()

    def _dispatch(self, result: ReadResult) -> None:
        self._batch_in_flight = True
        self._log.debug("Processing records", count=len(result.events))
        tell(self._tracker, StartBatch(result.events, self._shard_id, self.actor_ref))
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
            failed = ShardProcessingFailed(self._lease, message.failed_events, message.error)
            tell(self._supervisor, failed)
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
                # Stop waiting for the SHARD_END checkpoint; the next owner repeats it.
                self._reason = reason
                self._finish(checkpointed=False)
            return
        self._state = ShardState.SHUTTING_DOWN
        self._reason = reason
        self._cancel_timer()
        if self._fanout is not None:
            self._fanout.close()  # at once: lease lost, shutdown, or the shard's end
        self._prefetched = None
        self._log.info("*** Shutting down record processor for shard ***", reason=reason.value)
        children = self._child_shards if reason is ShutdownReason.SHARD_END else None
        if not tell(self._tracker, GracefulShutdown(reason, self.actor_ref, children)):
            self._finish(checkpointed=False)

    def _on_shutdown_complete(self, message: ShutdownComplete) -> None:
        if self._state is ShardState.SHUTTING_DOWN:
            self._finish(checkpointed=message.checkpoint_successful)

    def _finish(self, *, checkpointed: bool) -> None:
        self._cancel_timer()
        self._state = ShardState.SHUTDOWN_COMPLETE
        reason = self._reason or ShutdownReason.REQUESTED
        self._log.info("shard shut down", reason=reason.value, checkpointed=checkpointed)
        tell(self._supervisor, ShardFinished(self._lease, reason, checkpointed))
        self.actor_ref.stop(block=False)


def _error(outcome: object) -> BaseException | None:
    return outcome if isinstance(outcome, BaseException) else None
