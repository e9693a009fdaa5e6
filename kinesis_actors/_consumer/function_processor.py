"""What the two processors of a ``process_record`` function share (`RecordProcessor`,
`CoroutineProcessor`): the report of one batch attempt to the BatchTracker, and the actor's
handling of a shard's end.

The report carries acks in chunks (``RecordsAcknowledged``; one message per record would cost
more than a no-op ``process_record``) and, once the attempt is over, the error of each record that
failed (``RecordsFailed``), so that a record the failure tolerance skips reaches the dead-letter
path with the exception ``process_record`` raised for it, not only the reason it was skipped.
"""

from __future__ import annotations

import time
from typing import Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._consumer.failures import FailureLog, describe_error
from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    RecordsAcknowledged,
    RecordsFailed,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent

__all__ = ["ACK_CHUNK", "ACK_DELAY", "AttemptReport", "FunctionProcessor", "report_failure"]

#: Acks are sent every ``ACK_CHUNK`` records or ``ACK_DELAY`` seconds of processing, so
#: checkpoints and the batch timeout see progress within a batch.
ACK_CHUNK = 500
ACK_DELAY = 0.005


def report_failure(
    reply_to: pykka.ActorRef[Any], event: ConsumerEvent, error: BaseException | str
) -> None:
    """Tell the BatchTracker at once why ``event`` failed (a future's or a coroutine's outcome,
    known after its attempt's report was sent). Safe from any thread."""
    tell(reply_to, RecordsFailed(((event.sequence_number, describe_error(error)),)))


class AttemptReport:
    """The acks and failures of one batch attempt; ``stopped`` once the shard is gone. Used by
    one thread at a time."""

    __slots__ = ("_failed", "_flushed", "_pending", "_reply_to", "stopped")

    def __init__(self, reply_to: pykka.ActorRef[Any]) -> None:
        self._reply_to = reply_to
        self._pending: list[CompoundSequenceNumber] = []
        self._failed: list[tuple[CompoundSequenceNumber, str]] = []
        self._flushed = time.monotonic()
        self.stopped = False

    def ack(self, sequence_number: CompoundSequenceNumber) -> None:
        self._pending.append(sequence_number)
        now = time.monotonic()
        if len(self._pending) >= ACK_CHUNK or now - self._flushed >= ACK_DELAY:
            self.flush_acks()
            self._flushed = now

    def acks(self, sequence_numbers: list[CompoundSequenceNumber]) -> None:
        """Send acks collected by the caller's own loop (the RecordProcessor's inline one)."""
        self._pending.extend(sequence_numbers)
        self.flush_acks()

    def failed(self, event: ConsumerEvent, error: BaseException | str) -> None:
        self._failed.append((event.sequence_number, describe_error(error)))

    def flush_acks(self) -> None:
        if self._pending and not self.stopped:
            self.stopped = not tell(self._reply_to, RecordsAcknowledged(tuple(self._pending)))
        self._pending.clear()

    def close(self) -> None:
        """The attempt is over: the last acks, then the failures."""
        self.flush_acks()
        if self._failed and not self.stopped:
            tell(self._reply_to, RecordsFailed(tuple(self._failed)))
        self._failed.clear()


class FunctionProcessor(pykka.ThreadingActor):
    """The shard's end and the failure log, as both processors of a function handle them. Its
    thread is a daemon: a ``process_record`` call that never returns never holds up the exit."""

    use_daemon_thread = True

    def __init__(self, shard_id: str, traceback_interval: float) -> None:
        super().__init__()
        self._shard_id = shard_id
        self._failures = FailureLog(shard_id, traceback_interval)
        self._log = get_logger(type(self).__module__).bind(shard_id=shard_id)

    def on_stop(self) -> None:
        self._failures.flush()

    def on_shard_message(self, message: Any) -> Any:
        """A message that is not a batch attempt."""
        if isinstance(message, ConsumerWorkerFailure):
            self._failures.flush()
            self._log.error(
                "records not processed beyond the failure tolerance",
                failed=len(message.failed_events),
            )
        elif isinstance(message, ConsumerShutdown):
            self._log.debug("shard processing ended")
        else:
            return super().on_receive(message)
        return None
