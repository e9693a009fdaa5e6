"""SimpleKinesisProducer: sends the integers 0 .. N-1 in batches and counts every confirmation.

Startable from a REPL as in the Scala library's README::

    producer = SimpleKinesisProducer.start(config)
    producer.tell(Start())

Success means 0 unconfirmed and 0 failed sends at the end.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pykka
from pyhocon import ConfigTree

from kinesis_actors._config import ProducerConf
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.messages import (
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)
from kinesis_actors._scheduling import schedule_every, schedule_once
from kinesis_actors.reliability._actor import ReliabilityActor
from kinesis_actors.reliability._settings import ReliabilitySettings

__all__ = [
    "END_MARKER",
    "FORCE_CHECKPOINT_MARKER",
    "GetProducerStats",
    "ProducerStats",
    "SimpleKinesisProducer",
    "Start",
]

#: Payload that tells consumers the producer is done.
END_MARKER = -1
#: Payload that only forces a checkpoint (acknowledged, not counted).
FORCE_CHECKPOINT_MARKER = -2
_REPORT_INTERVAL = 10.0


@dataclass(frozen=True)
class Start:
    """Begin sending."""


@dataclass(frozen=True)
class GetProducerStats:
    """Ask for a ``ProducerStats``."""


@dataclass(frozen=True)
class ProducerStats:
    expected: int
    sent: int
    confirmed: int
    failed: int
    unconfirmed: int
    elapsed: float
    done: bool

    @property
    def succeeded(self) -> bool:
        return self.done and self.failed == 0 and self.unconfirmed == 0


class _Tick(Enum):
    """The actor's own timer ticks."""

    PRODUCE_BATCH = "produce a batch"
    LOG_RESULTS = "log the results"


class SimpleKinesisProducer(ReliabilityActor):
    def __init__(
        self,
        config: ConfigTree | None = None,
        *,
        settings: ReliabilitySettings | None = None,
    ) -> None:
        super().__init__(config, settings)
        self._conf = ProducerConf.from_config(self._config, self._settings.producer_name)
        self._log = get_logger(__name__).bind(stream=self._conf.stream_name)
        self._kpa: pykka.ActorRef[Any] | None = None
        self._next = 0
        self._outstanding: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._confirmed = 0
        self._started_at: float | None = None
        self._sent_all_at: float | None = None
        self._finished_at: float | None = None
        self._markers_sent = False
        self._pending_markers: set[str] = set()

    def on_start(self) -> None:
        self._kpa = KinesisProducerActor.start(self._conf)

    def on_stop(self) -> None:
        super().on_stop()
        if self._kpa is not None:
            self._kpa.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Start):
            self._start()
        elif message is _Tick.PRODUCE_BATCH:
            self._produce_batch()
        elif isinstance(message, SendSuccessful):
            self._confirm(message.message_id)
        elif isinstance(message, SendFailed):
            self._fail(message)
        elif message is _Tick.LOG_RESULTS:
            self._log_results()
        elif isinstance(message, GetProducerStats):
            return self._stats()
        return None

    def _start(self) -> None:
        if self._started_at is not None:
            self._log.warning("producer already started")
            return
        self._started_at = time.monotonic()
        self._log.info("starting producer", messages=self._settings.expected_messages)
        self.actor_ref.tell(_Tick.PRODUCE_BATCH)
        self._timers.append(schedule_every(self.actor_ref, _REPORT_INTERVAL, _Tick.LOG_RESULTS))

    def _send(self, value: int) -> str:
        assert self._kpa is not None
        message = SendWithCallback(
            ProducerEvent(str(uuid.uuid1()), str(value)), reply_to=self.actor_ref
        )
        self._kpa.tell(message)
        return message.message_id

    def _produce_batch(self) -> None:
        up_to = min(self._next + self._settings.batch_size, self._settings.expected_messages)
        for value in range(self._next, up_to):
            self._outstanding[self._send(value)] = value
        self._next = up_to
        if self._next < self._settings.expected_messages:
            self._timers.append(
                schedule_once(self.actor_ref, self._settings.batch_delay, _Tick.PRODUCE_BATCH)
            )
        else:
            self._sent_all_at = time.monotonic()
            self._log.info(
                "***Time sending all messages to ProducerActor***",
                seconds=round(self._sent_all_at - (self._started_at or 0), 1),
            )
            self._settle()

    def _settle(self) -> None:
        """Send the markers once every integer is settled, finish once the markers are."""
        if self._sent_all_at is None or self._outstanding:
            return
        if not self._markers_sent:
            # No integer is in flight any more, so the end marker cannot overtake one.
            self._markers_sent = True
            for marker in (FORCE_CHECKPOINT_MARKER, END_MARKER):
                self._pending_markers.add(self._send(marker))
        elif not self._pending_markers and self._finished_at is None:
            self._finished_at = time.monotonic()
            self._log_results()

    def _confirm(self, message_id: str) -> None:
        if self._outstanding.pop(message_id, None) is not None:
            self._confirmed += 1
        self._pending_markers.discard(message_id)
        self._settle()

    def _fail(self, message: SendFailed) -> None:
        value = self._outstanding.pop(message.message_id, None)
        if message.message_id in self._pending_markers:
            self._pending_markers.discard(message.message_id)
            value = int(message.event.data)
        if value is not None:
            self._failed[message.message_id] = value
        self._log.warning(
            "send failed", message_id=message.message_id, value=value, reason=str(message.reason)
        )
        self._settle()

    def _log_results(self) -> None:
        stats = self._stats()
        self._log.info("***ProducerActor with unconfirmed sends***", unconfirmed=stats.unconfirmed)
        self._log.info("***ProducerActor with failed sends***", failed=stats.failed)
        if stats.done:
            self._log.info("****Finished Producer****")
            self._log.info("****Total time to completion****", seconds=round(stats.elapsed, 1))
            self._cancel_timers()

    def _stats(self) -> ProducerStats:
        now = self._finished_at or time.monotonic()
        return ProducerStats(
            expected=self._settings.expected_messages,
            sent=self._next,
            confirmed=self._confirmed,
            failed=len(self._failed),
            unconfirmed=len(self._outstanding),
            elapsed=now - self._started_at if self._started_at is not None else 0.0,
            done=self._finished_at is not None,
        )
