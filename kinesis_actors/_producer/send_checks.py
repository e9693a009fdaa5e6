"""What the producer actor checks of a message before it takes it, and how it reports a failure.

A shared actor must never die of one sender's mistake: a malformed message is answered (or
logged) with a ``TypeError`` naming the field and the type given, and the actor keeps serving.
"""

from __future__ import annotations

from typing import Any

import pykka

from kinesis_actors._errors import UserRecordFailedError
from kinesis_actors._log_summary import clip
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.messages import Send, SendFailed, SendWithCallback

__all__ = ["attempt_fields", "error_code_of", "failed_outcome", "malformed"]


def malformed(message: Send | SendWithCallback) -> str | None:
    """Why ``message`` cannot be sent, or None when it is well formed."""
    kind = type(message).__name__
    event = message.producer_event
    if not isinstance(event, ProducerEvent):
        return f"{kind}.producer_event must be a ProducerEvent, got {type(event).__name__}"
    if not isinstance(message.message_id, str):
        return f"{kind}.message_id must be a str, got {type(message.message_id).__name__}"
    if isinstance(message, SendWithCallback):
        reply_to = message.reply_to
        if reply_to is not None and not isinstance(reply_to, pykka.ActorRef):
            return (
                f"SendWithCallback.reply_to must be a pykka.ActorRef or None, "
                f"got {type(reply_to).__name__}"
            )
    return None


def failed_outcome(message: object, reason: BaseException) -> SendFailed:
    """``SendFailed`` for any message, even one missing the fields a send has."""
    event: Any = getattr(message, "producer_event", None)
    message_id = getattr(message, "message_id", None)
    return SendFailed(event, message_id if isinstance(message_id, str) else "", reason)


def attempt_fields(reason: BaseException) -> dict[str, Any]:
    """Log fields of a failed record's attempts: their count, the first and the last.

    A record retried until its TTL has hundreds of attempts; listing them all made lines of
    tens of kilobytes.
    """
    if not isinstance(reason, UserRecordFailedError) or not reason.result.attempts:
        return {"attempt_count": 0, "attempts": []}
    attempts = reason.result.attempts
    shown = [attempts[0]] if len(attempts) == 1 else [attempts[0], attempts[-1]]
    return {
        "attempt_count": len(attempts),
        "attempts": [
            {
                "delay": round(a.delay, 6),
                "duration": round(a.duration, 6),
                "error_code": a.error_code,
                "error_message": clip(a.error_message or "", 200),
            }
            for a in shown
        ],
    }


def error_code_of(reason: BaseException) -> str | None:
    """The last attempt's error code of a failed record, if it has one."""
    if isinstance(reason, UserRecordFailedError) and reason.result.attempts:
        return reason.result.attempts[-1].error_code
    return None
