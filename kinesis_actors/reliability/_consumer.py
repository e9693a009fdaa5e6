"""SimpleKinesisConsumer: the event processor of the reliability test.

Startable from a REPL as in the Scala library's README::

    consumer = SimpleKinesisConsumer.start(config)

Alone, it verifies at pit stops that the integers it received are contiguous and gives the final
verdict when the end marker arrives. In a consumer process of ``kinesis-actors reliability run``
it writes every integer to its results file before acknowledging it, and the run judges all
consumers together.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pykka
from pyhocon import ConfigTree

from kinesis_actors._actors import tell
from kinesis_actors._consumer.consumer import KinesisConsumer
from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    ProcessEvent,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._scheduling import schedule_every
from kinesis_actors.reliability._actor import ReliabilityActor
from kinesis_actors.reliability._producer import END_MARKER, FORCE_CHECKPOINT_MARKER
from kinesis_actors.reliability._results import ResultsLog
from kinesis_actors.reliability._settings import ReliabilitySettings

__all__ = ["ConsumerState", "GetState", "SimpleKinesisConsumer"]

_FINAL_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class GetState:
    """Ask for a ``ConsumerState``."""


@dataclass(frozen=True)
class ConsumerState:
    consumed: int
    duplicates: int
    verified: int
    end_marker_seen: bool
    #: None while running; True / False once the final verdict is given.
    succeeded: bool | None
    consumer_running: bool


@dataclass(frozen=True)
class _ConsumerEnded:
    """The KinesisConsumer ended (``error`` None when it completed)."""

    error: BaseException | None


class _Tick(Enum):
    """The actor's own timer ticks."""

    FLUSH_RESULTS = "flush results"
    CHECK_FINAL = "check final"


class SimpleKinesisConsumer(ReliabilityActor):
    def __init__(
        self,
        config: ConfigTree | None = None,
        *,
        settings: ReliabilitySettings | None = None,
        results_path: Path | None = None,
    ) -> None:
        super().__init__(config, settings)
        self._log = get_logger(__name__).bind(consumer=self._settings.consumer_name)
        self._results = ResultsLog(results_path) if results_path is not None else None
        self._pending_acks: list[tuple[Any, Any]] = []
        self._consumer: KinesisConsumer | None = None
        self._received: set[int] = set()  # integers not yet verified by a pit stop
        self._consumed = 0
        self._duplicates = 0
        self._verified = 0
        self._started_at: float | None = None
        self._last_received_at = time.monotonic()
        self._end_marker_seen = False
        self._succeeded: bool | None = None
        self._running = False

    def on_start(self) -> None:
        self._consumer = KinesisConsumer.with_processor(
            self.actor_ref, self._config, self._settings.consumer_name
        )
        ended = self._consumer.start()
        self._running = True
        ended.add_done_callback(self._consumer_ended)
        if self._results is not None:
            self._timers.append(
                schedule_every(self.actor_ref, self._settings.results_flush, _Tick.FLUSH_RESULTS)
            )

    def _consumer_ended(self, future: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # we stopped it ourselves
            self.actor_ref.tell(_ConsumerEnded(future.exception()))

    def on_stop(self) -> None:
        super().on_stop()
        # Acknowledge what is on disk before the shard workers take their final checkpoints,
        # or the next owner of the shard would deliver it again.
        self._flush_results()
        if self._consumer is not None:
            self._consumer.stop()
        if self._results is not None:
            self._results.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessEvent):
            self._process(message)
        elif message is _Tick.FLUSH_RESULTS:
            self._flush_results()
        elif message is _Tick.CHECK_FINAL:
            self._check_final()
        elif isinstance(message, GetState):
            return ConsumerState(
                consumed=self._consumed,
                duplicates=self._duplicates,
                verified=self._verified,
                end_marker_seen=self._end_marker_seen,
                succeeded=self._succeeded,
                consumer_running=self._running,
            )
        elif isinstance(message, ConsumerWorkerFailure):
            self._log.error(
                ">>> ConsumerWorker failed",
                shard_id=message.shard_id,
                events=len(message.failed_events),
            )
        elif isinstance(message, ConsumerShutdown):
            self._log.info(">>> Consumer Shutdown received...", shard_id=message.shard_id)
        elif isinstance(message, _ConsumerEnded):
            self._running = False
            if message.error is not None:
                self._log.error("consumer died", error=repr(message.error))
            else:
                self._log.info("consumer completed")
        return None

    def _process(self, message: ProcessEvent) -> None:
        event = message.event
        value = int(event.payload_as_string())
        ack = (message.reply_to, EventProcessed(event.sequence_number))
        if value == END_MARKER:
            self._log.info(">>> End marker received")
            self._end_marker_seen = True
            if self._results is None:  # with a results file, the run judges all consumers
                self._timers.append(
                    schedule_every(self.actor_ref, _FINAL_CHECK_INTERVAL, _Tick.CHECK_FINAL)
                )
            self._acknowledge(*ack)
            return
        if value == FORCE_CHECKPOINT_MARKER:
            self._log.info(">>> Force checkpoint")
            self._acknowledge(*ack)
            return
        now = time.monotonic()
        self._started_at = self._started_at or now
        self._last_received_at = now
        self._consumed += 1
        if value in self._received or value < self._verified:
            self._duplicates += 1
        self._received.add(value)
        if self._consumed % 1000 == 0:
            self._log.debug(">>> SimpleConsumer is storing its message", count=self._consumed)
        if self._results is not None:
            lag = datetime.now(UTC) - event.timestamp
            self._results.add(value, int(lag.total_seconds() * 1000))
            self._pending_acks.append(ack)
            return
        pitstop = self._settings.pitstop_count
        if pitstop and self._consumed % pitstop == 0:
            self._pit_stop(pitstop // 2)
        self._acknowledge(*ack)

    def _acknowledge(self, reply_to: Any, processed: EventProcessed) -> None:
        # If the shard was handed over, its next owner delivers the record again.
        tell(reply_to, processed)

    def _flush_results(self) -> None:
        if self._results is None or not self._pending_acks:
            return
        self._results.flush()
        for ack in self._pending_acks:
            self._acknowledge(*ack)
        self._pending_acks.clear()

    def _pit_stop(self, took: int) -> None:
        """Verify the lowest ``took`` integers not yet verified, as far as they are contiguous.

        Shards progress unevenly (one batch of a shard can hold thousands of records), so a gap
        here is a shard behind the others, not a loss: it is reported and verified again at the
        next pit stop. Only the final check, once every integer had its chance, judges loss.
        """
        end = self._verified + took
        contiguous = self._verified
        while contiguous < end and contiguous in self._received:
            contiguous += 1
        self._received -= set(range(self._verified, contiguous))
        self._verified = contiguous
        if contiguous < end:
            self._log.warning(
                "pit stop: a shard is behind the others",
                verified=self._verified,
                first_missing=contiguous,
                **self._timing(),
            )
            return
        self._log.info("**** PIT STOP OK", verified=self._verified, **self._timing())

    def _timing(self) -> dict[str, Any]:
        elapsed = time.monotonic() - (self._started_at or time.monotonic())
        return {
            "records_received": self._consumed,
            "seconds_elapsed": round(elapsed, 1),
            "records_per_second": round(self._consumed / elapsed) if elapsed > 0 else None,
        }

    def _check_final(self) -> None:
        if self._succeeded is not None:
            return
        expected = self._settings.expected_messages
        remaining = set(range(self._verified, expected))
        quiet = time.monotonic() - self._last_received_at >= self._settings.finish_quiet
        if not remaining <= self._received and not quiet:
            return
        self._cancel_timers()
        missing = len(remaining - self._received)
        if missing == 0:
            self._succeeded = True
            self._log.info(
                f"♡♡♡ Test Succeeded: Found {expected} entries, no duplicates ♡♡♡"
                if not self._duplicates
                else f"♡♡♡ Test Succeeded: Found {expected} entries, "
                f"{self._duplicates} duplicates (at-least-once delivery) ♡♡♡",
                **self._timing(),
            )
        else:
            self._succeeded = False
            self._log.error("✖︎✖︎✖︎ Test FAILED ✖︎✖︎✖︎", missing=missing, **self._timing())
