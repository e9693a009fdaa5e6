"""RecordProcessor: a ``process_record`` function as an event-processor actor.

The contract of ``process_record(event)``:

* returns ``None`` (or any value that is not a future): the record is acknowledged;
* returns a ``concurrent.futures.Future`` or a Pykka future: acknowledged when it succeeds;
* raises, or its future fails or is cancelled: not acknowledged, so the record is re-sent after
  ``worker.batchTimeoutSeconds`` (``failedMessageRetries`` times) and then judged by the failure
  tolerance.

One RecordProcessor runs per shard, so records of a shard are processed in order and one slow
shard does not hold up the others. Its thread is a daemon: a ``process_record`` call that never
returns can delay that shard's acks but never the consumer's shutdown or the interpreter's exit.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from kinesis_actors.consumer._support import run_blocking
from kinesis_actors.consumer.messages import ConsumerShutdown, ConsumerWorkerFailure, ProcessEvent
from kinesis_actors.models import ConsumerEvent

__all__ = ["ProcessRecord", "RecordProcessor"]

#: The user's per-record function: returns None or a future (see the module docstring).
ProcessRecord = Callable[[ConsumerEvent], object]


class RecordProcessor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, process_record: ProcessRecord, shard_id: str) -> None:
        super().__init__()
        self._process_record = process_record
        self._shard_id = shard_id
        self._log = structlog.get_logger(__name__).bind(shard_id=shard_id)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessEvent):
            self._process(message)
        elif isinstance(message, ConsumerWorkerFailure):
            self._log.error(
                "records not processed beyond the failure tolerance",
                failed=[str(e.sequence_number) for e in message.failed_events],
            )
        elif isinstance(message, ConsumerShutdown):
            self._log.debug("shard processing ended")
        else:
            super().on_receive(message)

    def _process(self, message: ProcessEvent) -> None:
        try:
            result = self._process_record(message.event)
        except Exception:
            self._not_processed(message, "process_record raised", exc_info=True)
            return
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda future: self._future_done(message, future))
        elif isinstance(result, pykka.Future):
            # Pykka futures have no callbacks: wait for this one on a helper thread.
            run_blocking(
                f"kinesis-{self._shard_id}-ack",
                result.get,
                lambda outcome: self._outcome(message, outcome),
            )
        else:
            message.acknowledge()

    def _future_done(self, message: ProcessEvent, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            self._not_processed(message, "process_record's future was cancelled")
            return
        self._outcome(message, future.exception())

    def _outcome(self, message: ProcessEvent, outcome: object) -> None:
        if isinstance(outcome, BaseException):
            self._not_processed(message, "process_record's future failed", exc_info=outcome)
        else:
            message.acknowledge()

    def _not_processed(self, message: ProcessEvent, why: str, exc_info: Any = None) -> None:
        self._log.warning(
            f"{why}; the record will be re-sent after the batch timeout",
            sequence_number=str(message.event.sequence_number),
            exc_info=exc_info,
        )
