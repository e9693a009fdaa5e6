"""Small helpers shared by the consumer's actors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

__all__ = ["run_blocking", "tell"]

T = TypeVar("T")


def tell(ref: pykka.ActorRef[Any] | None, message: object) -> bool:
    """Tell ``message`` unless ``ref`` is gone; False if it was not delivered.

    Actors of a shard stop independently (shutdown, crash), so a late reply to a stopped actor is
    normal and must not kill the sender.
    """
    if ref is None:
        return False
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def run_blocking(
    name: str, work: Callable[[], T], deliver: Callable[[T | BaseException], object]
) -> None:
    """Run a blocking call (boto3, DynamoDB) on its own daemon thread, then ``deliver`` the
    result or the exception, typically as a tell to the actor that asked.

    An actor that waits for I/O on its own thread cannot handle a shutdown meanwhile; a daemon
    thread also never holds the interpreter at exit if the call hangs.
    """

    def target() -> None:
        try:
            result: T | BaseException = work()
        except Exception as exc:
            result = exc
        deliver(result)

    threading.Thread(target=target, name=name, daemon=True).start()
