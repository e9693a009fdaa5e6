"""ShardCheckpointer: the one writer of a shard's checkpoints, paced so DynamoDB is not hammered.

It pushes ``ReadyToCheckpoint`` to its parent (the shard's BatchTracker) every
``checkpointer.notificationDelayMillis`` while ready; the parent answers with ``Checkpoint`` when
it has a newer position, else with ``NothingToCheckpoint``, which pauses the notifications until
the parent's ``CheckpointWanted`` (so an idle shard costs no timer and no wake-up). After a
checkpoint it waits ``intervalMillis`` (success) or ``backoffMillis`` (any failure) before it is
ready again, so checkpoints are decoupled from batches and at most one is in flight per shard.
A forced checkpoint (shutdown, shard end) runs in any state (after the write in flight, if any)
and ends the pacing: nothing follows it.

The write itself blocks on DynamoDB, so it runs on the consumer's BlockingExecutor and comes back
as a message; the actor's thread never waits for it (except for an asked ``Checkpoint``, whose
answer is the ask result). A forced SHARD_END is retried here, every ``retry_delay``, until it
succeeds or the lease is gone (``ShutdownError``): this is the only place that retries it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._config import CheckpointerConf
from kinesis_actors._consumer._support import FailureReporter
from kinesis_actors._consumer.messages import (
    Checkpoint,
    CheckpointResult,
    CheckpointWanted,
    ChildShards,
    NothingToCheckpoint,
    NotReady,
    ReadyToCheckpoint,
)
from kinesis_actors._errors import (
    InvalidStateError,
    LeaseTableMissingError,
    ShutdownError,
    ThrottlingError,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, Sentinel
from kinesis_actors._scheduling import Cancellable, schedule_every, schedule_once

if TYPE_CHECKING:
    from kinesis_actors._consumer.coordination import LeaseCheckpointer
    from kinesis_actors._consumer.executor import BlockingExecutor

__all__ = ["CheckpointWriter", "ShardCheckpointer", "lease_writer"]

#: Writes one checkpoint (blocking); with SHARD_END, creates the child shards' leases too. Raises
#: the KCL's checkpoint errors.
CheckpointWriter = Callable[[CompoundSequenceNumber | Sentinel, ChildShards], None]


def lease_writer(coordinator: LeaseCheckpointer, shard_id: str, token: str) -> CheckpointWriter:
    """The writer of one held lease: its checkpoints under its concurrency token."""

    def write(position: CompoundSequenceNumber | Sentinel, child_shards: ChildShards) -> None:
        if position == Sentinel.SHARD_END:
            coordinator.shard_ended(shard_id, token, child_shards)
        else:
            coordinator.checkpoint(shard_id, position, token)

    return write


class _State(enum.Enum):
    """READY takes a checkpoint; CHECKPOINTING writes one; WAITING keeps
    ``checkpointer.intervalMillis`` between two writes."""

    READY = "ready"
    CHECKPOINTING = "checkpointing"
    WAITING = "waiting"


@dataclass(frozen=True)
class _AcceptCheckpointRequests:
    """The wait after a checkpoint is over."""


@dataclass(frozen=True)
class _Written:
    """The write of ``checkpoint`` finished on the executor; ``error`` is None on success."""

    checkpoint: Checkpoint
    error: BaseException | None


@dataclass(frozen=True)
class _RetryShardEnd:
    """Timer: write this forced SHARD_END checkpoint again (it failed; children wait on it)."""

    checkpoint: Checkpoint


class ShardCheckpointer(pykka.ThreadingActor):
    """One per shard; a child of the shard's BatchTracker (``parent``)."""

    use_daemon_thread = True

    def __init__(
        self,
        parent: pykka.ActorRef[Any],
        write: CheckpointWriter,
        conf: CheckpointerConf,
        shard_id: str,
        executor: BlockingExecutor,
        report_failure: FailureReporter | None = None,
        *,
        retry_delay: float,
    ) -> None:
        super().__init__()
        self._parent = parent
        self._write = write
        self._conf = conf
        self._executor = executor
        self._report_failure = report_failure
        self._shard_id = shard_id
        self._retry_delay = retry_delay
        self._state = _State.READY
        self._in_flight = False
        self._forced: Checkpoint | None = None
        self._timer: Cancellable | None = None
        self._log = get_logger(__name__).bind(shard_id=shard_id)

    def on_start(self) -> None:
        self._notify_when_ready()

    def on_stop(self) -> None:
        self._cancel_timer()

    def on_failure(self, *exc_info: Any) -> None:
        self._cancel_timer()
        if self._report_failure is not None and exc_info[1] is not None:
            self._report_failure(type(self).__name__, exc_info[1])

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Checkpoint):
            if message.reply_to is None:
                return self._checkpoint_now(message)
            if message.force and self._in_flight:
                self._forced = message  # written once the write in flight is done
            elif self._state is _State.READY or message.force:
                self._start(message)
            else:
                self._log.warning(
                    "checkpoint requested while not ready",
                    state=self._state.value,
                    sequence_number=str(message.sequence_number),
                )
                tell(message.reply_to, NotReady(message))
        elif isinstance(message, _Written):
            self._on_written(message.checkpoint, message.error)
        elif isinstance(message, _RetryShardEnd):
            self._start(message.checkpoint)
        elif isinstance(message, NothingToCheckpoint):
            if self._state is _State.READY:
                self._cancel_timer()  # paused until CheckpointWanted
        elif isinstance(message, CheckpointWanted):
            if self._state is _State.READY and self._timer is None:
                self._notify_when_ready()
        elif isinstance(message, _AcceptCheckpointRequests):
            if self._state is _State.WAITING:
                self._state = _State.READY
                self._notify_when_ready()
        else:
            return super().on_receive(message)
        return None

    def _notify_when_ready(self) -> None:
        delay = self._conf.notification_delay
        self._timer = schedule_every(self._parent, delay, ReadyToCheckpoint(), initial_delay=delay)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self, message: Checkpoint) -> None:
        self._cancel_timer()
        self._state = _State.CHECKPOINTING
        self._in_flight = True
        me, write = self.actor_ref, self._write
        position, children = message.sequence_number, message.child_shards
        self._executor.call(
            lambda: write(position, children),
            lambda outcome: tell(
                me, _Written(message, outcome if isinstance(outcome, BaseException) else None)
            ),
        )

    def _checkpoint_now(self, message: Checkpoint) -> CheckpointResult | NotReady:
        """An asked checkpoint: the answer is the ask result, so wait for the write here."""
        if not (self._state is _State.READY or message.force) or self._in_flight:
            return NotReady(message)
        self._cancel_timer()
        self._state = _State.CHECKPOINTING
        write, position, children = self._write, message.sequence_number, message.child_shards
        error = self._executor.submit(lambda: write(position, children)).exception()
        success = self._judge(position, error)
        self._pace(message, success)
        return CheckpointResult(position, success)

    def _on_written(self, message: Checkpoint, error: BaseException | None) -> None:
        self._in_flight = False
        position = message.sequence_number
        success = self._judge(position, error)
        shard_end = message.force and position == Sentinel.SHARD_END
        if not success and shard_end and not isinstance(error, ShutdownError):
            self._log.warning("SHARD_END checkpoint failed; retrying", delay=self._retry_delay)
            self._timer = schedule_once(self.actor_ref, self._retry_delay, _RetryShardEnd(message))
            return
        self._pace(message, success)
        tell(message.reply_to, CheckpointResult(position, success))
        forced, self._forced = self._forced, None
        if forced is not None:
            self._start(forced)

    def _pace(self, message: Checkpoint, success: bool) -> None:
        if message.force:
            return  # a forced checkpoint is the last one: stay CHECKPOINTING, never ready again
        self._state = _State.WAITING
        wait = self._conf.interval if success else self._conf.backoff
        self._timer = schedule_once(self.actor_ref, wait, _AcceptCheckpointRequests())

    def _judge(
        self, position: CompoundSequenceNumber | Sentinel, error: BaseException | None
    ) -> bool:
        """Every failure means "not checkpointed, back off"; the log says which kind."""
        log = self._log.bind(sequence_number=str(position))
        if error is None:
            log.debug("checkpointed")
            return True
        if isinstance(error, ThrottlingError):
            log.info("Throttled by DynamoDB on checkpointing -- backing off...")
        elif isinstance(error, LeaseTableMissingError):
            # The coordinator fails the consumer with this error; one ERROR is logged there.
            log.warning("checkpoint not written: lease table missing", error=str(error))
        elif isinstance(error, InvalidStateError):
            log.error(
                "Cannot save checkpoint to the DynamoDB table used by the Kinesis Client Library.",
                exc_info=error,
            )
        elif isinstance(error, ShutdownError):
            log.info("Caught shutdown exception, skipping checkpoint.")
        else:
            log.error("Caught unexpected exception, skipping checkpoint.", exc_info=error)
        metrics.count("CheckpointFailures", shard_id=self._shard_id)
        return False
