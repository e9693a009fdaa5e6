"""BatchTracker: the batch protocol of one shard (the Scala library's ConsumerWorker).

A batch (``StartBatch``) fans out as one ``ProcessEvent`` per record to the event processor
and completes when every record is acknowledged by ``EventProcessed``. Each attempt has
``worker.batchTimeoutSeconds``; on timeout only the unacknowledged records are re-sent, up to
``worker.failedMessageRetries`` times. Then the failure tolerance decides: within
``int(failureTolerancePercentage / 100 * batch size)`` the batch completes and the rest are
skipped; beyond it the processor gets ``ConsumerWorkerFailure`` and the batch ends unsuccessful.

With a dead-letter path (``worker.deadLetterStream`` / ``worker.onSkipped``, see `dead_letter`),
skipped records (those forgiven by the tolerance and those acknowledged with
``EventProcessed(successful=False)``) are handed to it on the BlockingExecutor before the batch
completes, and the checkpoint target stays below them until it returned; if it fails, the batch
ends unsuccessful as beyond the tolerance, with its error, and is never checkpointed past them.

A requested shutdown (a graceful stop, or a hand-off to another worker) first lets the batch in
flight finish, for half of ``worker.shutdownTimeoutSeconds`` at most, so that the records the
processor is working on are checkpointed by this worker rather than processed again by the next
owner; what is still unacknowledged then is aborted. A lost lease aborts at once.

The checkpoint target is the highest *contiguous* acknowledged position, carried across batches;
it is offered to the shard's ShardCheckpointer (this actor's child) when that one is ready, and
never the same or an older position twice. Fixed here, unlike the original: positions compare as
integers, an ack never resets the retry count, and acks of records outside the current batch are
not counted.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._config import WorkerConf
from kinesis_actors._consumer._support import FailureReporter, positions
from kinesis_actors._consumer.acks import CheckpointPositions, ResponseCollector
from kinesis_actors._consumer.dead_letter import DeadLetter, SkipLedger
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.failures import describe_error
from kinesis_actors._consumer.messages import (
    Checkpoint,
    CheckpointResult,
    CheckpointWanted,
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    GracefulShutdown,
    NothingToCheckpoint,
    NotReady,
    ProcessEvent,
    ProcessingComplete,
    ProcessRecords,
    ReadyToCheckpoint,
    RecordsAcknowledged,
    RecordsFailed,
    ShutdownComplete,
    ShutdownReason,
    StartBatch,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel
from kinesis_actors._scheduling import Cancellable, schedule_once

__all__ = ["BatchTracker", "CheckpointerFactory"]

#: Starts the shard's ShardCheckpointer with the given parent (the BatchTracker).
CheckpointerFactory = Callable[[pykka.ActorRef[Any]], pykka.ActorRef[Any]]


class _State(enum.Enum):
    READY = "ready"
    PROCESSING = "processing"
    #: Every record acknowledged or forgiven; the skipped ones are with the dead-letter path.
    DEAD_LETTERING = "dead-lettering"
    SHUTTING_DOWN = "shutting down"


@dataclass(frozen=True)
class _BatchTimeout:
    """The batch timeout of attempt ``attempt`` of batch ``batch`` expired (stale ones are
    ignored)."""

    batch: int
    attempt: int


@dataclass(frozen=True)
class _DeadLettered:
    """The dead-letter path of batch ``batch`` returned (``error`` None) or failed."""

    batch: int
    error: BaseException | None


@dataclass(frozen=True)
class _ShutdownTimeout:
    """The final checkpoint did not answer within ``worker.shutdownTimeoutSeconds``."""


@dataclass(frozen=True)
class _FinishTimeout:
    """The batch in flight at a requested shutdown did not finish in half the shutdown time."""


class BatchTracker(pykka.ThreadingActor):
    """One per shard, a child of its ShardConsumer. ``processor`` receives one ``ProcessEvent``
    per record, or one ``ProcessRecords`` per attempt if ``batch_processor`` (the built-in
    RecordProcessor); ``checkpointer`` starts the ShardCheckpointer child (a factory, so tests
    can put a probe there). ``dead_letter`` keeps skipped records before they are checkpointed
    past; it runs on ``executor``."""

    use_daemon_thread = True

    def __init__(
        self,
        shard_id: str,
        processor: pykka.ActorRef[Any],
        conf: WorkerConf,
        checkpointer: CheckpointerFactory,
        report_failure: FailureReporter | None = None,
        *,
        batch_processor: bool = False,
        dead_letter: DeadLetter | None = None,
        executor: BlockingExecutor | None = None,
    ) -> None:
        super().__init__()
        if dead_letter is not None and executor is None:
            raise ValueError("a dead-letter path needs the BlockingExecutor to run on")
        self._dead_letter = dead_letter
        self._executor = executor
        self._shard_id = shard_id
        self._processor = processor
        self._batch_processor = batch_processor
        self._conf = conf
        self._checkpointer_factory = checkpointer
        self._report_failure = report_failure
        self._log = get_logger(__name__).bind(shard_id=shard_id)
        self._checkpointer: pykka.ActorRef[Any] | None = None
        self._state = _State.READY
        self._stash: deque[StartBatch] = deque()
        # Batch in flight.
        self._collector: ResponseCollector | None = None
        self._batch_reply_to: pykka.ActorRef[Any] | None = None
        self._batch = 0
        self._attempt = 0
        #: The batch's skipped records (logged when it ends) and last errors (``lastError``).
        self._skips = SkipLedger(shard_id)
        self._timer: Cancellable | None = None
        # Checkpoint positions: processed (the target carried across batches), written and in
        # flight.
        self._latest: CompoundSequenceNumber | None = None
        self._checkpoints = CheckpointPositions()
        #: NothingToCheckpoint was sent: tell CheckpointWanted once something newer is processed.
        self._checkpointer_paused = False
        # Shutdown.
        #: A requested shutdown waiting for the batch in flight to finish, and its time limit.
        self._shutdown_after_batch: GracefulShutdown | None = None
        self._finish_timer: Cancellable | None = None
        self._shutdown_reply_to: pykka.ActorRef[Any] | None = None
        self._final_checkpoint: CompoundSequenceNumber | Sentinel | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._checkpointer = self._checkpointer_factory(self.actor_ref)
        except Exception as exc:
            # Pykka would stop the actor silently; make the failure visible to the supervisor.
            self._report(exc)
            self.actor_ref.stop(block=False)

    def on_stop(self) -> None:
        self._cancel_timer()
        self._cancel_finish_timer()
        if self._checkpointer is not None:
            self._checkpointer.stop(block=False)

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()
        if exc_info[1] is not None:
            self._report(exc_info[1])

    def _report(self, error: BaseException) -> None:
        if self._report_failure is not None:
            self._report_failure(type(self).__name__, error)

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        state = self._state
        if isinstance(message, RecordsAcknowledged):
            self._on_acks(message.sequence_numbers, True)
        elif isinstance(message, EventProcessed):
            if message.error is not None:
                self._on_failures(((message.sequence_number, describe_error(message.error)),))
            self._on_acks((message.sequence_number,), message.successful)
        elif isinstance(message, RecordsFailed):
            self._on_failures(message.failures)
        elif state is _State.SHUTTING_DOWN:
            self._while_shutting_down(message)
        elif isinstance(message, StartBatch):
            if state is _State.READY:
                self._start_batch(message)
            else:
                self._stash.append(message)
        elif isinstance(message, _BatchTimeout):
            self._on_timeout(message)
        elif isinstance(message, _DeadLettered):
            self._on_dead_lettered(message)
        elif isinstance(message, ReadyToCheckpoint):
            self._offer_checkpoint()
        elif isinstance(message, CheckpointResult):
            self._on_checkpoint_result(message)
        elif isinstance(message, NotReady):
            self._log.debug("checkpointer not ready", sequence_number=str(message.checkpoint))
            self._checkpoints.in_flight = None
        elif isinstance(message, GracefulShutdown):
            self._shutdown(message)
        elif isinstance(message, _FinishTimeout):
            self._on_finish_timeout()
        else:
            self._log.warning("unexpected message dropped", message=type(message).__name__)

    def _start_batch(self, message: StartBatch) -> None:
        if not message.events:
            tell(message.reply_to, ProcessingComplete())
            return
        self._state = _State.PROCESSING
        self._collector = ResponseCollector(message.events, self._latest)
        self._batch_reply_to = message.reply_to
        self._skips.clear()
        self._batch += 1
        self._attempt = 0
        self._send(message.events)
        self._schedule_timeout()

    def _send(self, events: tuple[ConsumerEvent, ...]) -> None:
        me, processor = self.actor_ref, self._processor
        if self._batch_processor:
            processor.tell(ProcessRecords(events, me))
            return
        for event in events:
            processor.tell(ProcessEvent(event, me))

    def _on_acks(
        self, sequence_numbers: tuple[CompoundSequenceNumber, ...], successful: bool
    ) -> None:
        collector = self._collector
        if collector is None:
            return
        # Without a dead-letter path a skipped record counts as processed at once.
        hold = not successful and self._dead_letter is not None
        for sequence_number in sequence_numbers:
            if not collector.ack(sequence_number, hold=hold):
                # A late ack of an earlier, already completed or forgiven batch: not counted.
                self._log.debug("ack outside the current batch ignored", seq=str(sequence_number))
            elif not successful:
                self._skips.skipped.append(sequence_number)
        if collector.done and self._state is _State.PROCESSING:
            self._batch_done(collector, ())
        self._resume_checkpointer()

    def _on_failures(self, failures: tuple[tuple[CompoundSequenceNumber, str], ...]) -> None:
        # A record not of this batch is never looked up; the ledger is cleared per batch.
        if self._collector is not None:
            self._skips.failed(failures)

    def _on_timeout(self, message: _BatchTimeout) -> None:
        collector = self._collector
        if (
            collector is None
            or self._state is not _State.PROCESSING
            or (message.batch, message.attempt) != (self._batch, self._attempt)
        ):
            return  # stale timer
        unconfirmed = collector.unconfirmed
        if self._attempt < self._conf.failed_message_retries:
            self._attempt += 1
            self._log.debug(
                "Timed out processing batch, retrying",
                count=len(unconfirmed),
                attempt=self._attempt,
            )
            self._send(unconfirmed)
            self._schedule_timeout()
            return
        allowed = self._conf.allowed_failures(len(collector.events))
        self._log.warning(
            "batch timed out after all retries",
            unconfirmed=positions(unconfirmed),
            allowed_failures=allowed,
        )
        if len(unconfirmed) <= allowed:
            self._log.warning(
                "Ignoring unconfirmed messages, setting next checkpoint at latest event",
                checkpoint_at=str(collector.latest_event),
            )
            self._batch_done(collector, unconfirmed)
        else:
            self._log.warning("Shutting down the shard on this worker", failed=len(unconfirmed))
            tell(self._processor, ConsumerWorkerFailure(unconfirmed, self._shard_id))
            self._complete_batch(collector.latest_confirmed, ProcessingComplete(False, unconfirmed))

    def _batch_done(
        self, collector: ResponseCollector, forgiven: tuple[ConsumerEvent, ...]
    ) -> None:
        """Every record acknowledged or ``forgiven`` by the tolerance: complete the batch, after
        the dead-letter path kept its skipped records if there is one."""
        attempts, timeout = self._attempt + 1, self._conf.batch_timeout
        why = f"not acknowledged after {attempts} attempt(s) of {timeout:g} s each"
        skipped = self._skips.groups(collector.events, forgiven, why)
        if self._dead_letter is None or not skipped:
            self._complete_batch(collector.latest_event, ProcessingComplete())
            return
        self._cancel_timer()
        self._state = _State.DEAD_LETTERING
        dead_letter, me, batch = self._dead_letter, self.actor_ref, self._batch

        def work() -> None:
            for records in skipped:
                dead_letter(records)

        def deliver(outcome: object) -> None:
            error = outcome if isinstance(outcome, BaseException) else None
            tell(me, _DeadLettered(batch, error))

        assert self._executor is not None
        self._executor.call(work, deliver)

    def _on_dead_lettered(self, message: _DeadLettered) -> None:
        collector = self._collector
        if collector is None or self._state is not _State.DEAD_LETTERING:
            return
        if message.batch != self._batch:
            return
        if message.error is None:
            self._complete_batch(collector.latest_event, ProcessingComplete())
            return
        groups = self._skips.groups(collector.events, (), "")
        failed = tuple(e for group in groups for e in group.events)
        failed += collector.unconfirmed
        self._log.error(
            "dead-letter path failed: the skipped records are not checkpointed past",
            records=positions(failed),
            error=repr(message.error),
        )
        tell(self._processor, ConsumerWorkerFailure(failed, self._shard_id))
        self._complete_batch(
            collector.latest_confirmed, ProcessingComplete(False, failed, message.error)
        )

    def _complete_batch(
        self, latest: CompoundSequenceNumber | None, reply: ProcessingComplete
    ) -> None:
        self._cancel_timer()
        skipped = self._skips.skipped
        if skipped:
            # One line per batch, however many records the processor skipped.
            self._log.warning(
                "Skipping messages due to client failure",
                skipped=len(skipped),
                first=str(skipped[0]),
                last=str(skipped[-1]),
            )
        if self._collector is not None:
            acknowledged = len(self._collector.events) - self._collector.pending
            metrics.count("RecordsProcessed", acknowledged, shard_id=self._shard_id)
        self._latest = latest
        self._collector = None
        self._skips.clear()
        self._resume_checkpointer()
        self._state = _State.READY
        tell(self._batch_reply_to, reply)
        self._batch_reply_to = None
        if self._shutdown_after_batch is not None:
            pending, self._shutdown_after_batch = self._shutdown_after_batch, None
            self._cancel_finish_timer()
            self._shutdown(pending)
            return
        while self._stash and self._state is _State.READY:
            self._start_batch(self._stash.popleft())

    def _schedule_timeout(self) -> None:
        self._cancel_timer()
        self._timer = schedule_once(
            self.actor_ref, self._conf.batch_timeout, _BatchTimeout(self._batch, self._attempt)
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_finish_timer(self) -> None:
        if self._finish_timer is not None:
            self._finish_timer.cancel()
            self._finish_timer = None

    def _on_finish_timeout(self) -> None:
        self._finish_timer = None
        pending = self._shutdown_after_batch
        if pending is not None:
            self._log.warning("the batch in flight did not finish in time: aborting it")
            self._shutdown(pending)

    # -- checkpoints ----------------------------------------------------------------------------

    def _processed(self) -> CompoundSequenceNumber | None:
        if self._collector is not None:
            return self._collector.latest_confirmed
        return self._latest

    def _offer_checkpoint(self) -> None:
        target = self._processed()
        if not self._checkpoints.is_new(target):
            if not self._checkpointer_paused:
                self._checkpointer_paused = True
                tell(self._checkpointer, NothingToCheckpoint())
            return
        if self._checkpoints.offer(target):
            self._checkpointer_paused = False  # it leaves READY; its notifications restart after
            assert target is not None
            tell(self._checkpointer, Checkpoint(target, reply_to=self.actor_ref))

    def _resume_checkpointer(self) -> None:
        """Something newer than the last checkpoint was processed: end the pause, if any."""
        if self._checkpointer_paused and self._checkpoints.is_new(self._processed()):
            self._checkpointer_paused = False
            tell(self._checkpointer, CheckpointWanted())

    def _on_checkpoint_result(self, message: CheckpointResult) -> None:
        position = message.sequence_number
        self._checkpoints.answered(position, message.success)
        if not message.success and isinstance(position, CompoundSequenceNumber):
            self._log.warning("Failed to checkpoint", sequence_number=str(position))

    # -- shutdown -------------------------------------------------------------------------------

    def _shutdown(self, message: GracefulShutdown) -> None:
        if (
            message.reason is ShutdownReason.REQUESTED
            and self._collector is not None
            and self._shutdown_after_batch is None
        ):
            # A graceful stop or a hand-off: let the batch in flight finish first (its records
            # are then checkpointed here rather than processed again by the next owner), for
            # half the shutdown time at most; then what is not acknowledged is aborted.
            self._log.info("shutdown requested: finishing the batch in flight first")
            self._stash.clear()
            self._shutdown_after_batch = message
            self._finish_timer = schedule_once(
                self.actor_ref, self._conf.shutdown_timeout / 2, _FinishTimeout()
            )
            return
        self._shutdown_after_batch = None
        target = self._processed()
        self._state = _State.SHUTTING_DOWN
        self._shutdown_reply_to = message.reply_to
        self._stash.clear()
        if self._collector is not None:
            # Abort the batch in flight; only what was acknowledged so far is checkpointed.
            self._cancel_timer()
            self._collector = None
            tell(self._batch_reply_to, ProcessingComplete(False))
            self._batch_reply_to = None
        self._log.info("shutting down", reason=message.reason.value)
        final: CompoundSequenceNumber | Sentinel | None = None
        if message.reason is ShutdownReason.SHARD_END:
            final = Sentinel.SHARD_END
        elif message.reason is ShutdownReason.REQUESTED and self._checkpoints.is_new(target):
            final = target
        if final is None:
            if message.reason is ShutdownReason.REQUESTED:
                self._log.info("Skipped checkpointing on shutdown: nothing new processed")
            self._finalise(checkpointed=False)
            return
        self._final_checkpoint = final
        checkpoint = Checkpoint(
            final, force=True, reply_to=self.actor_ref, child_shards=message.child_shards
        )
        if not tell(self._checkpointer, checkpoint):
            self._log.warning("Failed to checkpoint on shutdown: checkpointer is gone")
            self._finalise(checkpointed=False)
            return
        if final is not Sentinel.SHARD_END:
            # (The checkpointer retries SHARD_END until it succeeds or the lease is lost; the
            # ShardConsumer gives up on it when told to stop for another reason.)
            self._timer = schedule_once(
                self.actor_ref, self._conf.shutdown_timeout, _ShutdownTimeout()
            )

    def _while_shutting_down(self, message: Any) -> None:
        if (
            isinstance(message, CheckpointResult | NotReady)
            and self._checkpoints.in_flight is not None
        ):
            # The answer to the checkpoint sent before the shutdown: the forced one comes next.
            self._checkpoints.in_flight = None
        elif isinstance(message, CheckpointResult) and self._final_checkpoint is not None:
            if not message.success:
                self._log.warning(
                    "Failed to checkpoint on shutdown", sequence_number=str(message.sequence_number)
                )
            self._finalise(checkpointed=message.success)
        elif isinstance(message, _ShutdownTimeout):
            self._log.warning("Failed to checkpoint on shutdown: no answer in time")
            self._finalise(checkpointed=False)
        else:
            self._log.debug("ignored while shutting down", message=type(message).__name__)

    def _finalise(self, *, checkpointed: bool) -> None:
        self._cancel_timer()
        self._final_checkpoint = None
        tell(self._shutdown_reply_to, ShutdownComplete(checkpointed))
        tell(self._processor, ConsumerShutdown(self._shard_id))
        self.actor_ref.stop(block=False)
