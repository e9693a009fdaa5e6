"""CheckpointWorker: writes a shard's checkpoints, paced so DynamoDB is not hammered.

It pushes ``ReadyToCheckpoint`` to its parent (the shard's ConsumerWorker) every
``checkpointer.notificationDelayMillis`` while ready; the parent answers with ``Checkpoint`` when
it has a newer position. After a checkpoint the worker waits ``intervalMillis`` (success) or
``backoffMillis`` (any failure) before it is ready again, so checkpoints are decoupled from batches
and at most one is in flight per shard. A forced checkpoint (shutdown, shard end) runs at once in
any state and ends the pacing: nothing follows it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._config import CheckpointerConf
from kinesis_actors._consumer.messages import (
    Checkpoint,
    CheckpointResult,
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

__all__ = ["CheckpointFunction", "CheckpointWorker", "FailureReporter"]

#: Writes one checkpoint (blocking); raises the KCL's checkpoint errors.
CheckpointFunction = Callable[[CompoundSequenceNumber | Sentinel], None]
#: Tells the shard's supervisor that an actor died: (actor name, error).
FailureReporter = Callable[[str, BaseException], None]


class _State(enum.Enum):
    READY = "ready"
    CHECKPOINTING = "checkpointing"
    WAITING = "waiting"


@dataclass(frozen=True)
class _AcceptCheckpointRequests:
    """The wait after a checkpoint is over."""


class CheckpointWorker(pykka.ThreadingActor):
    """One per shard; a child of the shard's ConsumerWorker (``parent``)."""

    use_daemon_thread = True

    def __init__(
        self,
        parent: pykka.ActorRef[Any],
        checkpoint: CheckpointFunction,
        conf: CheckpointerConf,
        shard_id: str,
        report_failure: FailureReporter | None = None,
    ) -> None:
        super().__init__()
        self._parent = parent
        self._checkpoint_fn = checkpoint
        self._conf = conf
        self._report_failure = report_failure
        self._shard_id = shard_id
        self._state = _State.READY
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
            if self._state is _State.READY or message.force:
                return self._checkpoint(message)
            self._log.warning(
                "checkpoint requested while not ready",
                state=self._state.value,
                sequence_number=str(message.sequence_number),
            )
            return self._reply(message, NotReady(message))
        if isinstance(message, _AcceptCheckpointRequests):
            if self._state is _State.WAITING:
                self._state = _State.READY
                self._notify_when_ready()
            return None
        return super().on_receive(message)

    def _notify_when_ready(self) -> None:
        delay = self._conf.notification_delay
        self._timer = schedule_every(self._parent, delay, ReadyToCheckpoint(), initial_delay=delay)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _checkpoint(self, message: Checkpoint) -> Any:
        self._cancel_timer()
        self._state = _State.CHECKPOINTING
        success = self._checkpoint_or_backoff(message.sequence_number)
        if not message.force:
            # A forced checkpoint is the last one: stay in CHECKPOINTING, never ready again.
            self._state = _State.WAITING
            wait = self._conf.interval if success else self._conf.backoff
            self._timer = schedule_once(self.actor_ref, wait, _AcceptCheckpointRequests())
        return self._reply(message, CheckpointResult(message.sequence_number, success))

    def _checkpoint_or_backoff(self, position: CompoundSequenceNumber | Sentinel) -> bool:
        """Every failure means "not checkpointed, back off"; the log says which kind."""
        log = self._log.bind(sequence_number=str(position))
        try:
            self._checkpoint_fn(position)
        except ThrottlingError:
            log.info("Throttled by DynamoDB on checkpointing -- backing off...")
        except LeaseTableMissingError as exc:
            # The coordinator fails the consumer with this error; one ERROR is logged there.
            log.warning("checkpoint not written: lease table missing", error=str(exc))
        except InvalidStateError:
            log.exception(
                "Cannot save checkpoint to the DynamoDB table used by the Kinesis Client Library."
            )
        except ShutdownError:
            log.info("Caught shutdown exception, skipping checkpoint.")
        except Exception:
            log.exception("Caught unexpected exception, skipping checkpoint.")
        else:
            log.debug("checkpointed")
            return True
        metrics.count("CheckpointFailures", shard_id=self._shard_id)
        return False

    @staticmethod
    def _reply(message: Checkpoint, reply: object) -> Any:
        if message.reply_to is None:
            return reply  # asked: the answer is the ask result
        tell(message.reply_to, reply)
        return None
