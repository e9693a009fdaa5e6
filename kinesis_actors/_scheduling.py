"""Delayed and periodic tells on one timer thread: the scheduler Pykka does not have.

Actors use it for batch timeouts, checkpoint notifications, throttle re-checks and polling. A tell
to a dead actor cancels the entry instead of raising, so a stopped actor leaks nothing. The thread
is a daemon and exits when nothing is scheduled, so an idle process holds no timer thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from kinesis_actors._logging import get_logger

__all__ = [
    "Cancellable",
    "Scheduler",
    "default_scheduler",
    "schedule_every",
    "schedule_once",
]

log = get_logger(__name__)


@dataclass(eq=False)
class Cancellable:
    """Handle of a scheduled entry; ``cancel()`` is idempotent and thread-safe."""

    _action: Callable[[], object] = field(repr=False)
    _interval: float | None
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


class Scheduler:
    """A heap of due times served by one lazily started daemon thread."""

    def __init__(self, name: str = "kinesis-actors-scheduler") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Cancellable]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(
        self, delay: float, action: Callable[[], object], interval: float | None = None
    ) -> Cancellable:
        """Run ``action`` after ``delay`` seconds, then every ``interval`` seconds if given.

        ``action`` runs on the timer thread and must be quick (a tell, a flag); if it raises
        ``pykka.ActorDeadError`` the entry is cancelled.
        """
        if interval is not None and interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        handle = Cancellable(action, interval)
        self._push(time.monotonic() + max(delay, 0.0), handle)
        return handle

    def _push(self, due: float, handle: Cancellable) -> None:
        with self._condition:
            heapq.heappush(self._heap, (due, next(self._counter), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._thread = None
                        return
                    due, _, handle = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        break
                    self._condition.wait(wait)
            self._fire(handle, due)

    def _fire(self, handle: Cancellable, due: float) -> None:
        try:
            handle._action()
        except pykka.ActorDeadError:
            handle.cancel()
            return
        except Exception:
            log.exception("scheduled action failed; entry cancelled")
            handle.cancel()
            return
        if handle._interval is not None and not handle.cancelled:
            # Fixed rate, but never catch up with a burst after a stall.
            self._push(max(due + handle._interval, time.monotonic()), handle)


_default: Scheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> Scheduler:
    """The process-wide scheduler that the module functions use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
        return _default


def schedule_once(ref: pykka.ActorRef[Any], delay: float, message: object) -> Cancellable:
    """Tell ``message`` to ``ref`` after ``delay`` seconds."""
    return default_scheduler().schedule(delay, lambda: ref.tell(message))


def schedule_every(
    ref: pykka.ActorRef[Any], interval: float, message: object, initial_delay: float | None = None
) -> Cancellable:
    """Tell ``message`` to ``ref`` every ``interval`` seconds, first after ``initial_delay``."""
    first = interval if initial_delay is None else initial_delay
    return default_scheduler().schedule(first, lambda: ref.tell(message), interval)
