"""Processors: what a KinesisConsumer accepts, and RecordProcessor, a function as an actor.

This module is the one place that adapts what the application gives (`event_processor`,
`start_processor`) and that interprets what a ``process_record`` function returns. The
contract of ``process_record(event)``:

* returns ``None`` (or any value that is not awaitable): the record is acknowledged;
* returns a ``concurrent.futures.Future`` or a Pykka future: acknowledged when it succeeds;
* is an ``async def`` function, or returns an awaitable: the consumer's event loop awaits it
  (`ConsumerLoop`), and the record is acknowledged when it returns;
* raises, or its future fails or is cancelled, or its coroutine raises: not acknowledged, so the
  record is re-sent after ``worker.batchTimeoutSeconds`` (``failedMessageRetries`` times) and
  then judged by the failure tolerance.

An ``async def`` function gets a `CoroutineProcessor` per shard: whole batches run on the loop,
``worker.maxConcurrentRecords`` records at a time. A plain function gets a RecordProcessor; the
awaitables it returns are awaited on the loop, at most ``worker.maxConcurrentRecords`` at once
(this actor's thread waits for a free slot, never the loop), so with the default of 1 a shard's
records are still processed in order.

One RecordProcessor runs per shard, so records of a shard are processed in order and one slow
shard does not hold up the others. It gets a whole batch attempt in one message and acknowledges
in chunks (at least every 5 ms of processing; a call that hangs holds back the acks of at most the
records processed in the 5 ms before it). Once the shard has stopped, the rest of the batch is not
processed. Its thread is a daemon: a ``process_record`` call that never returns can delay that
shard's acks but never the consumer's shutdown or the interpreter's exit. Failures are logged by
a `FailureLog`: one line per batch attempt.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._config import WorkerConf
from kinesis_actors._consumer._support import run_in_thread
from kinesis_actors._consumer.coroutine_processor import CoroutineProcessor
from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.failures import FailureLog
from kinesis_actors._consumer.function_processor import (
    ACK_CHUNK,
    ACK_DELAY,
    AttemptReport,
    FunctionProcessor,
    report_failure,
)
from kinesis_actors._consumer.messages import EventProcessed, ProcessRecords
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent

__all__ = ["ProcessRecord", "RecordProcessor", "event_processor", "start_processor"]

#: The user's per-record function: returns None, a future or an awaitable, or is ``async def``
#: (see the module docstring).
ProcessRecord = Callable[[ConsumerEvent], object]


def _is_async(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 (a callable object's method)
    return any(
        inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (function, call)
    )


def event_processor(process_record: object) -> ProcessRecord | pykka.ActorRef[Any]:
    """What a KinesisConsumer was given, checked: an event-processor ``ActorRef`` or a plain
    callable. Anything else is a TypeError naming what was given."""
    if isinstance(process_record, pykka.ActorRef):
        return process_record
    if not callable(process_record):
        raise TypeError(
            "process_record must be a function called with each ConsumerEvent, or the ActorRef "
            f"of an event-processor actor; got {type(process_record).__name__} "
            f"{process_record!r:.80}"
        )
    return process_record


def start_processor(
    process_record: ProcessRecord, shard_id: str, worker: WorkerConf, loop: ConsumerLoop
) -> pykka.ActorRef[Any]:
    """The event-processor actor of one shard for a ``process_record`` function."""
    if _is_async(process_record):
        return CoroutineProcessor.start(
            process_record, shard_id, loop, worker.max_concurrent_records, worker.traceback_interval
        )
    return RecordProcessor.start(
        process_record, shard_id, worker.traceback_interval, loop, worker.max_concurrent_records
    )


class RecordProcessor(FunctionProcessor):
    """Runs ``process_record`` for each record of a ``ProcessRecords``, in order, and
    acknowledges in ``RecordsAcknowledged`` chunks; the errors of the records that failed follow
    in ``RecordsFailed``. Failures go to a `FailureLog` too, logged once per attempt."""

    def __init__(
        self,
        process_record: ProcessRecord,
        shard_id: str,
        traceback_interval: float,
        loop: ConsumerLoop,
        max_concurrent_records: int = 1,
    ) -> None:
        super().__init__(shard_id, traceback_interval)
        self._process_record = process_record
        self._loop = loop
        #: Awaitables being awaited on the loop; acquired by this thread, released when done.
        self._awaiting = threading.BoundedSemaphore(max_concurrent_records)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessRecords):
            self._failures.flush()  # what futures of the previous attempt reported meanwhile
            self._process_batch(message)
            self._failures.flush()
            return None
        return self.on_shard_message(message)

    def _process_batch(self, message: ProcessRecords) -> None:
        # The per-record loop; the common case (``process_record`` returned None) stays inline.
        reply_to = message.reply_to
        process_record = self._process_record
        report = AttemptReport(reply_to)
        acks: list[CompoundSequenceNumber] = []
        append = acks.append
        monotonic = time.monotonic
        flushed = monotonic()
        try:
            for event in message.events:
                try:
                    result = process_record(event)
                except Exception as exc:
                    self._failures.add(event, exc)
                    report.failed(event, exc)
                    continue
                if result is not None and self._acknowledged_later(event, reply_to, result):
                    continue
                append(event.sequence_number)
                now = monotonic()
                if len(acks) >= ACK_CHUNK or now - flushed >= ACK_DELAY:
                    report.acks(acks)
                    if report.stopped:
                        self._log.debug("shard stopped: rest of the batch not processed")
                        return
                    acks.clear()
                    flushed = now
        finally:
            report.acks(acks)
            report.close()

    def _acknowledged_later(
        self, event: ConsumerEvent, reply_to: pykka.ActorRef[Any], result: object
    ) -> bool:
        """True if ``result`` decides the ack of ``event`` itself: a future or an awaitable acks
        it when it succeeds."""
        done = _ack_when_done(event, reply_to, self._failures)
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda future: done(_failure(future)))
            return True
        if isinstance(result, pykka.Future):
            # Pykka futures have no callbacks: wait for this one on a helper thread.
            run_in_thread(
                f"kinesis-{self._shard_id}-ack",
                result.get,
                lambda outcome: done(outcome if isinstance(outcome, BaseException) else None),
            )
            return True
        if inspect.isawaitable(result):
            self._awaiting.acquire()  # this thread waits for a free slot, never the loop

            def awaited(future: concurrent.futures.Future[Any]) -> None:
                self._awaiting.release()
                done(_failure(future))

            self._loop.submit(result).add_done_callback(awaited)
            return True
        return False


def _failure(future: concurrent.futures.Future[Any]) -> BaseException | str | None:
    """Why a finished future's record is not acknowledged, or None to acknowledge it."""
    if future.cancelled():
        return "process_record's future or coroutine was cancelled"
    return future.exception()


def _ack_when_done(
    event: ConsumerEvent, reply_to: pykka.ActorRef[Any], failures: FailureLog
) -> Callable[[BaseException | str | None], None]:
    """The outcome of a future returned for ``event``: ack it (None), or log and report the
    failure (an exception, or why). Called on the thread that completed the future: it touches no
    actor's state."""

    def done(error: BaseException | str | None) -> None:
        if error is None:
            tell(reply_to, EventProcessed(event.sequence_number))
        else:
            failures.add(event, error)
            report_failure(reply_to, event, error)

    return done
