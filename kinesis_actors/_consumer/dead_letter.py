"""The dead-letter path: where skipped records go before the checkpoint may pass them.

A record is *skipped* when it stayed unacknowledged after every retry but within
``worker.failureTolerancePercentage`` (reason ``"unacknowledged"``), or when the processor
acknowledged it with ``EventProcessed(successful=False)`` (reason ``"skipped"``). The BatchTracker
hands a batch's skipped records to a `DeadLetter` on the consumer's BlockingExecutor (it may
block) and completes the batch only if it returns; if it raises, the batch fails. Each record goes
with its last error: the exception ``process_record`` last raised for it (``"ValueError: bad
payload"``, reported by the processor in ``RecordsFailed``, or by an actor in
``EventProcessed(error=...)``), else the reason in words (a call that hung raised nothing).

Two kinds, chained in this order: `DeadLetterStream` (``worker.deadLetterStream``) writes one
JSON record per skipped record to another stream through the library's producer engine;
`user_handler` adapts ``worker.onSkipped`` / ``KinesisConsumer(on_skipped=...)``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import inspect
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pykka

from kinesis_actors._errors import DeadLetterError
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, ProducerEvent

if TYPE_CHECKING:
    from kinesis_actors._producer import KinesisProducer

__all__ = [
    "SKIPPED",
    "UNACKNOWLEDGED",
    "DeadLetter",
    "DeadLetterStream",
    "OnSkipped",
    "SkipLedger",
    "SkippedRecords",
    "chain",
    "dead_letter_record",
    "user_handler",
]

#: Reasons: not acknowledged after every retry (forgiven by the failure tolerance), or
#: acknowledged with ``EventProcessed(successful=False)``.
UNACKNOWLEDGED = "unacknowledged"
SKIPPED = "skipped"

#: The application's callable: ``on_skipped(events, shard_id, reason, errors)`` (``errors``: the
#: last error of each event, in order; a function of three parameters is called without it);
#: returns None or a future (``concurrent.futures`` or Pykka) that succeeds once the records are
#: safe.
OnSkipped = Callable[..., object]


@dataclass(frozen=True)
class SkippedRecords:
    """One batch's skipped records of one reason: ``error`` says why in words, ``exceptions``
    the last exception reported for each event (aligned with ``events``; None where none was,
    and empty when none was for any)."""

    events: tuple[ConsumerEvent, ...]
    shard_id: str
    reason: str
    error: str
    exceptions: tuple[str | None, ...] = ()

    @property
    def last_errors(self) -> tuple[str, ...]:
        """Each event's ``lastError``: its last exception, else why it was skipped."""
        if not self.exceptions:
            return (self.error,) * len(self.events)
        return tuple(self.error if text is None else text for text in self.exceptions)


#: Keeps skipped records somewhere safe; blocking; returns when they are, raises otherwise.
DeadLetter = Callable[[SkippedRecords], None]


class SkipLedger:
    """What the BatchTracker knows of its batch in flight's failures (pure state): the records
    the processor skipped, in order, and the last error reported for each record."""

    __slots__ = ("_last_errors", "_shard_id", "skipped")

    def __init__(self, shard_id: str) -> None:
        self._shard_id = shard_id
        #: Records acknowledged with ``EventProcessed(successful=False)``.
        self.skipped: list[CompoundSequenceNumber] = []
        self._last_errors: dict[tuple[int, int], str] = {}

    def clear(self) -> None:
        self.skipped = []
        self._last_errors = {}

    def failed(self, failures: Iterable[tuple[CompoundSequenceNumber, str]]) -> None:
        for sequence_number, error in failures:
            self._last_errors[sequence_number._key] = error

    def groups(
        self,
        events: Sequence[ConsumerEvent],
        forgiven: tuple[ConsumerEvent, ...],
        forgiven_why: str,
    ) -> list[SkippedRecords]:
        """The batch's skipped records (of ``events``, the batch) by reason: those the processor
        skipped, then those the tolerance ``forgave`` (``forgiven_why`` says how)."""
        groups: list[SkippedRecords] = []
        last_errors = self._last_errors

        def group(records: tuple[ConsumerEvent, ...], reason: str, why: str) -> None:
            errors = tuple(last_errors.get(e.sequence_number._key) for e in records)
            groups.append(SkippedRecords(records, self._shard_id, reason, why, errors))

        if self.skipped:
            keys = {seq._key for seq in self.skipped}
            skipped = tuple(e for e in events if e.sequence_number._key in keys)
            group(skipped, SKIPPED, "acknowledged with EventProcessed(successful=False)")
        if forgiven:
            group(forgiven, UNACKNOWLEDGED, forgiven_why)
        return groups


def dead_letter_record(
    skipped: SkippedRecords, event: ConsumerEvent, stream: str, last_error: str | None = None
) -> bytes:
    """The dead-letter payload of one skipped record (documented in docs/consuming.rst);
    ``last_error`` is its entry of ``skipped.last_errors`` (``skipped.error`` if not given)."""
    document = {
        "stream": stream,
        "shardId": skipped.shard_id,
        "sequenceNumber": str(event.sequence_number.sequence_number),
        "subSequenceNumber": event.sequence_number.sub_sequence_number,
        "partitionKey": event.partition_key,
        "explicitHashKey": event.explicit_hash_key,
        "approximateArrivalTimestamp": event.timestamp.isoformat(),
        "reason": skipped.reason,
        "lastError": skipped.error if last_error is None else last_error,
        "data": base64.b64encode(event.payload).decode("ascii"),
    }
    return json.dumps(document, separators=(",", ":")).encode()


class DeadLetterStream:
    """Writes skipped records to a stream through ``producer`` (a `KinesisProducer` this object
    owns: `close` stops it), each under its original partition key, and waits for every put."""

    def __init__(self, producer: KinesisProducer, source_stream: str) -> None:
        self._producer = producer
        self._source_stream = source_stream

    @property
    def stream_name(self) -> str:
        return self._producer.stream_name

    def __call__(self, skipped: SkippedRecords) -> None:
        stream = self._source_stream
        futures = [
            self._producer.add_user_record(
                ProducerEvent(
                    event.partition_key, dead_letter_record(skipped, event, stream, last_error)
                )
            )
            for event, last_error in zip(skipped.events, skipped.last_errors, strict=True)
        ]
        failed: list[str] = []
        for event, future in zip(skipped.events, futures, strict=True):
            try:
                future.result()  # bounded by the producer's RecordTtl
            except Exception as exc:
                failed.append(f"{event.sequence_number}: {exc}")
        if failed:
            raise DeadLetterError(
                f"{len(failed)} of {len(futures)} skipped record(s) of {skipped.shard_id} not "
                f"written to dead-letter stream {self.stream_name!r}; first: {failed[0]}"
            )

    def close(self) -> None:
        self._producer.stop()


def _takes_errors(on_skipped: OnSkipped) -> bool:
    """True if ``on_skipped`` can be called with four positional arguments."""
    try:
        inspect.signature(on_skipped).bind(None, None, None, None)
    except (TypeError, ValueError):  # ValueError: no signature (some builtins)
        return False
    return True


def user_handler(on_skipped: OnSkipped) -> DeadLetter:
    """The application's ``on_skipped`` as a DeadLetter: a future it returns is waited for."""
    with_errors = _takes_errors(on_skipped)

    def handle(skipped: SkippedRecords) -> None:
        arguments: tuple[object, ...] = (skipped.events, skipped.shard_id, skipped.reason)
        if with_errors:
            arguments += (skipped.last_errors,)
        result = on_skipped(*arguments)
        if isinstance(result, concurrent.futures.Future):
            result.result()
        elif isinstance(result, pykka.Future):
            result.get()

    return handle


def chain(handlers: Sequence[DeadLetter]) -> DeadLetter | None:
    """The handlers run in order (each only if the previous ones succeeded); None if none."""
    if not handlers:
        return None
    if len(handlers) == 1:
        return handlers[0]
    steps = tuple(handlers)

    def run(skipped: SkippedRecords) -> None:
        for step in steps:
            step(skipped)

    return run
