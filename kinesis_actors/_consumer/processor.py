"""RecordProcessor: a ``process_record`` function as an event-processor actor.

The contract of ``process_record(event)``:

* returns ``None`` (or any value that is not a future): the record is acknowledged;
* returns a ``concurrent.futures.Future`` or a Pykka future: acknowledged when it succeeds;
* raises, or its future fails or is cancelled: not acknowledged, so the record is re-sent after
  ``worker.batchTimeoutSeconds`` (``failedMessageRetries`` times) and then judged by the failure
  tolerance.

One RecordProcessor runs per shard, so records of a shard are processed in order and one slow
shard does not hold up the others. It gets a whole batch in one message and acknowledges in
chunks (at least every 5 ms of processing; a call that hangs holds back the acks of at most the
records processed in the 5 ms before it). Once the shard has stopped, the rest of the batch is
not processed. Its thread is a
daemon: a ``process_record`` call that never returns can delay that shard's acks but never the
consumer's shutdown or the interpreter's exit.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._consumer._support import run_blocking
from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    EventsProcessed,
    ProcessEventBatch,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent

__all__ = ["ProcessRecord", "RecordProcessor"]

#: Acks are sent every ``_ACK_CHUNK`` records or ``_ACK_DELAY`` seconds of processing, so
#: checkpoints and the batch timeout see progress within a batch.
_ACK_CHUNK = 500
_ACK_DELAY = 0.005

#: The user's per-record function: returns None or a future (see the module docstring).
ProcessRecord = Callable[[ConsumerEvent], object]


class RecordProcessor(pykka.ThreadingActor):
    """Runs ``process_record`` for each record of a ``ProcessEventBatch``, in order, and
    acknowledges in ``EventsProcessed`` chunks (one message per record would cost more than a
    no-op ``process_record``)."""

    use_daemon_thread = True

    def __init__(self, process_record: ProcessRecord, shard_id: str) -> None:
        super().__init__()
        self._process_record = process_record
        self._shard_id = shard_id
        self._log = get_logger(__name__).bind(shard_id=shard_id)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessEventBatch):
            self._process_batch(message)
        elif isinstance(message, ConsumerWorkerFailure):
            self._log.error(
                "records not processed beyond the failure tolerance",
                failed=[str(e.sequence_number) for e in message.failed_events],
            )
        elif isinstance(message, ConsumerShutdown):
            self._log.debug("shard processing ended")
        else:
            super().on_receive(message)

    def _process_batch(self, message: ProcessEventBatch) -> None:
        # The per-record loop; the common case (``process_record`` returned None) stays inline.
        reply_to = message.reply_to
        process_record = self._process_record
        acks: list[CompoundSequenceNumber] = []
        append = acks.append
        monotonic = time.monotonic
        flushed = monotonic()
        for event in message.events:
            try:
                result = process_record(event)
            except Exception:
                self._not_processed(event, "process_record raised", exc_info=True)
                continue
            if result is not None and self._acknowledged_later(event, reply_to, result):
                continue
            append(event.sequence_number)
            now = monotonic()
            if len(acks) >= _ACK_CHUNK or now - flushed >= _ACK_DELAY:
                if not tell(reply_to, EventsProcessed(tuple(acks))):
                    self._log.debug("shard stopped: rest of the batch not processed")
                    return
                acks.clear()
                flushed = now
        if acks:
            tell(reply_to, EventsProcessed(tuple(acks)))

    def _acknowledged_later(
        self, event: ConsumerEvent, reply_to: pykka.ActorRef[Any], result: object
    ) -> bool:
        """True if ``result`` is a future, which acknowledges ``event`` by itself when done."""
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda future: self._future_done(event, reply_to, future))
            return True
        if isinstance(result, pykka.Future):
            # Pykka futures have no callbacks: wait for this one on a helper thread.
            run_blocking(
                f"kinesis-{self._shard_id}-ack",
                result.get,
                lambda outcome: self._outcome(event, reply_to, outcome),
            )
            return True
        return False

    def _future_done(
        self,
        event: ConsumerEvent,
        reply_to: pykka.ActorRef[Any],
        future: concurrent.futures.Future[Any],
    ) -> None:
        if future.cancelled():
            self._not_processed(event, "process_record's future was cancelled")
            return
        self._outcome(event, reply_to, future.exception())

    def _outcome(
        self, event: ConsumerEvent, reply_to: pykka.ActorRef[Any], outcome: object
    ) -> None:
        if isinstance(outcome, BaseException):
            self._not_processed(event, "process_record's future failed", exc_info=outcome)
        else:
            tell(reply_to, EventProcessed(event.sequence_number))

    def _not_processed(self, event: ConsumerEvent, why: str, exc_info: Any = None) -> None:
        self._log.warning(
            f"{why}; the record will be re-sent after the batch timeout",
            sequence_number=str(event.sequence_number),
            exc_info=exc_info,
        )
