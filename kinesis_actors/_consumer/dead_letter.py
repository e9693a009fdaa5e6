"""The dead-letter path: where skipped records go before the checkpoint may pass them.

A record is *skipped* when it stayed unacknowledged after every retry but within
``worker.failureTolerancePercentage`` (reason ``"unacknowledged"``), or when the processor
acknowledged it with ``EventProcessed(successful=False)`` (reason ``"skipped"``). The BatchTracker
hands a batch's skipped records to a `DeadLetter` on the consumer's BlockingExecutor (it may
block) and completes the batch only if it returns; if it raises, the batch fails.

Two kinds, chained in this order: `DeadLetterStream` (``worker.deadLetterStream``) writes one
JSON record per skipped record to another stream through the library's producer engine;
`user_handler` adapts ``worker.onSkipped`` / ``KinesisConsumer(on_skipped=...)``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pykka

from kinesis_actors._errors import DeadLetterError
from kinesis_actors._models import ConsumerEvent, ProducerEvent

if TYPE_CHECKING:
    from kinesis_actors._producer import KinesisProducer

__all__ = [
    "SKIPPED",
    "UNACKNOWLEDGED",
    "DeadLetter",
    "DeadLetterStream",
    "OnSkipped",
    "SkippedRecords",
    "chain",
    "dead_letter_record",
    "user_handler",
]

#: Reasons: not acknowledged after every retry (forgiven by the failure tolerance), or
#: acknowledged with ``EventProcessed(successful=False)``.
UNACKNOWLEDGED = "unacknowledged"
SKIPPED = "skipped"

#: The application's callable: ``on_skipped(events, shard_id, reason)``; returns None or a
#: future (``concurrent.futures`` or Pykka) that succeeds once the records are safe.
OnSkipped = Callable[[tuple[ConsumerEvent, ...], str, str], object]


@dataclass(frozen=True)
class SkippedRecords:
    """One batch's skipped records of one reason, and the last error known for them."""

    events: tuple[ConsumerEvent, ...]
    shard_id: str
    reason: str
    error: str


#: Keeps skipped records somewhere safe; blocking; returns when they are, raises otherwise.
DeadLetter = Callable[[SkippedRecords], None]


def dead_letter_record(skipped: SkippedRecords, event: ConsumerEvent, stream: str) -> bytes:
    """The dead-letter payload of one skipped record (documented in docs/consuming.rst)."""
    document = {
        "stream": stream,
        "shardId": skipped.shard_id,
        "sequenceNumber": str(event.sequence_number.sequence_number),
        "subSequenceNumber": event.sequence_number.sub_sequence_number,
        "partitionKey": event.partition_key,
        "explicitHashKey": event.explicit_hash_key,
        "approximateArrivalTimestamp": event.timestamp.isoformat(),
        "reason": skipped.reason,
        "lastError": skipped.error,
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
        futures = [
            self._producer.add_user_record(
                ProducerEvent(
                    event.partition_key, dead_letter_record(skipped, event, self._source_stream)
                )
            )
            for event in skipped.events
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


def user_handler(on_skipped: OnSkipped) -> DeadLetter:
    """The application's ``on_skipped`` as a DeadLetter: a future it returns is waited for."""

    def handle(skipped: SkippedRecords) -> None:
        result = on_skipped(skipped.events, skipped.shard_id, skipped.reason)
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
