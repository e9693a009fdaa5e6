"""Completed sends travel from the engine's threads to the actor's thread.

The engine finishes futures on its own thread; the actor's state may only be touched by the
actor's thread. ``Handoff`` carries the finished futures across in batches, so a batch of
records costs the actor one wake-up message, not one per record. A ``KinesisProducer`` hands
it each finished batch in one call (its sink); other engines call ``put`` once per future.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._models import UserRecordResult

__all__ = ["EngineFuture", "Handoff"]

EngineFuture = concurrent.futures.Future[UserRecordResult]


class Handoff:
    """A deque of finished futures plus at most one outstanding wake-up tell.

    ``deque.append`` is atomic, so the engine's side takes a lock only to send the wake-up.
    While the actor stops, it drains the deque itself (``wait``) and nothing is told.
    """

    def __init__(self, ref: pykka.ActorRef[Any], wakeup: object) -> None:
        self._items: deque[Sequence[EngineFuture]] = deque()
        self._lock = threading.Lock()
        self._wakeup_sent = False
        self._closed = False
        self._arrived = threading.Event()
        self._ref = ref
        self._wakeup = wakeup

    def put(self, future: EngineFuture) -> None:
        """The done callback of an engine future (engine thread): queue it, wake the actor."""
        self.put_all((future,))

    def put_all(self, futures: Sequence[EngineFuture]) -> None:
        """The engine's sink (engine thread): queue a batch of finished futures, wake the actor.

        The batch is kept whole (the engine hands over a new sequence each time and never
        touches it again): one append per batch, not one per record.
        """
        self._items.append(futures)
        if self._closed:
            self._arrived.set()
            return
        if self._wakeup_sent:  # the actor resets the flag before it drains: nothing is stranded
            return
        with self._lock:
            if self._wakeup_sent or self._closed:
                return
            self._wakeup_sent = True
        if not tell(self._ref, self._wakeup):
            self._arrived.set()  # stopping: the actor reads the deque directly

    def take_all(self) -> list[EngineFuture]:
        with self._lock:
            self._wakeup_sent = False
        items: list[EngineFuture] = []
        popleft = self._items.popleft
        while True:
            try:
                items.extend(popleft())
            except IndexError:
                return items

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def wait(self, timeout: float) -> list[EngineFuture]:
        """On stop: what has arrived, waiting up to ``timeout`` seconds for something."""
        items = self.take_all()
        if items or timeout <= 0:
            return items
        self._arrived.clear()
        items = self.take_all()  # arrived between the first look and the clear
        if not items and self._arrived.wait(timeout):
            items = self.take_all()
        return items
