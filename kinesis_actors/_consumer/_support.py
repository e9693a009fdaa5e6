"""Small helpers shared by the consumer's actors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from kinesis_actors._models import ConsumerEvent

__all__ = ["FailureReporter", "positions", "run_in_thread"]

T = TypeVar("T")

#: Tells the shard's supervisor that an actor died: (actor class name, error). Built by the
#: ShardConsumer from values only (no actor's state), so any shard actor may call it.
FailureReporter = Callable[[str, BaseException], None]

#: Positions listed in full in a log line; longer lists are summarised (count, first, last).
_LISTED_POSITIONS = 10


def positions(events: Sequence[ConsumerEvent]) -> str:
    """The events' positions for a log line, bounded in length whatever the batch size."""
    if len(events) <= _LISTED_POSITIONS:
        return ", ".join(str(e.sequence_number) for e in events)
    return f"{len(events)} records from {events[0].sequence_number} to {events[-1].sequence_number}"


def run_in_thread(
    name: str, work: Callable[[], T], deliver: Callable[[T | BaseException], object]
) -> None:
    """Run ``work`` on a new daemon thread, then ``deliver`` its result or exception.

    Only for calls made once in a consumer's life (stopping the lease coordinator), which must not
    queue behind hung calls in the BlockingExecutor, and for waits on a user's Pykka future (which
    has no callbacks). Every repeated blocking call goes through the BlockingExecutor.
    """

    def target() -> None:
        try:
            result: T | BaseException = work()
        except Exception as exc:
            result = exc
        deliver(result)

    threading.Thread(target=target, name=name, daemon=True).start()
