"""Small helpers shared by the consumer's actors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_blocking"]

T = TypeVar("T")


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
