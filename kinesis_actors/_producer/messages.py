"""The producer actor's protocol: what senders tell or ask it, and what it answers.

Public through ``kinesis_actors.messages`` (the Scala library's names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pykka

from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer.message_id import new_message_id
from kinesis_actors._slots_init import slots_init

__all__ = [
    "GetStats",
    "ProducerActorStats",
    "Send",
    "SendFailed",
    "SendOutcome",
    "SendSuccessful",
    "SendWithCallback",
]


@slots_init
@dataclass(frozen=True, slots=True)
class Send:
    """Put a record, fire-and-forget. No reply; a failure is logged with ``message_id``."""

    producer_event: ProducerEvent
    message_id: str = field(default_factory=new_message_id)


@slots_init
@dataclass(frozen=True, slots=True)
class SendWithCallback:
    """Put a record and report the outcome.

    With ``reply_to`` the outcome (``SendSuccessful`` or ``SendFailed``) is told to that actor.
    Without it, ``ask`` returns a ``concurrent.futures.Future`` whose result is the outcome (it
    never raises): ``producer.ask(SendWithCallback(event)).result(timeout=30)``. The actor does
    not wait for the record meanwhile. (A future per told message would cost every tell a
    lock object, so none is made when the outcome goes to ``reply_to``.)
    """

    producer_event: ProducerEvent
    message_id: str = field(default_factory=new_message_id)
    reply_to: pykka.ActorRef[Any] | None = None


@slots_init
@dataclass(frozen=True, slots=True)
class SendSuccessful:
    """The record was put; ``user_record_result`` says where (shard, sequence number, attempts)."""

    message_id: str
    user_record_result: UserRecordResult


@slots_init
@dataclass(frozen=True, slots=True)
class SendFailed:
    """The record was not put; ``event`` is returned so the caller can persist or retry it.

    (For a malformed message, ``event`` is whatever it carried, and ``reason`` a ``TypeError``.)

    ``reason`` is usually a ``UserRecordFailedError`` (its ``result.attempts`` say why), an
    ``InvalidRecordError``, ``QueueFullError`` or ``ProducerStoppedError``.
    """

    event: ProducerEvent
    message_id: str
    reason: BaseException


SendOutcome = SendSuccessful | SendFailed


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for a ``ProducerActorStats``; it is also told to ``reply_to`` when given."""

    reply_to: pykka.ActorRef[Any] | None = None


@dataclass(frozen=True, slots=True)
class ProducerActorStats:
    """A snapshot of the actor's counters."""

    outstanding: int  # the engine's records put but not yet confirmed (all its users)
    queued: int  # sends waiting in the throttle queue
    in_flight: int  # this actor's sends handed to the engine, not yet completed
    sent: int  # sends confirmed
    failed: int  # sends reported failed (SendFailed, or logged for Send)
    retried: int  # re-sends made under failed-send-retries
    throttled: bool
