"""BlockingExecutor: the consumer's bounded pool of threads for blocking calls.

GetRecords, GetShardIterator, checkpoint writes and lease releases block on the network, so no
actor makes them on its own thread (it could not handle a shutdown meanwhile). They run here and
report back as a message to the actor that asked.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so
one hung boto3 call would hold the process forever, and its size is fixed at construction. Here
threads are daemons (a shutdown never waits behind a hung call), start only when no thread is
idle, exit after ``idle_timeout`` seconds without work (``worker.blockingThreadIdleSeconds``), and
their number is bounded by ``limit``, which the consumer sets from the shards it holds
(``resize``) under the ``worker.maxBlockingThreads`` ceiling. A call that finds every thread busy
waits in the queue, in order.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["BlockingExecutor", "threads_for"]

T = TypeVar("T")

#: Blocking calls one shard can have in flight at once: one read and one checkpoint write.
_CALLS_PER_SHARD = 2


def threads_for(shards: int, ceiling: int) -> int:
    """The pool's bound for ``shards`` held shards: two calls per shard plus one for the
    consumer's own calls (lease release), at most ``ceiling``."""
    return max(1, min(ceiling, _CALLS_PER_SHARD * shards + 1))


class BlockingExecutor:
    """A bounded, growable pool of daemon threads; ``submit`` returns a standard Future."""

    def __init__(self, ceiling: int, idle_timeout: float, name: str = "kinesis-blocking") -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be >= 1, got {ceiling}")
        self._ceiling = ceiling
        self._idle_timeout = idle_timeout
        self._limit = 1
        self._name = name
        self._lock = threading.Lock()
        self._queue: deque[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = deque()
        self._threads = 0
        #: The idle threads' wake-up events, most recently idle last: work goes to the top one, so
        #: the others stay idle long enough to time out (a FIFO wake-up would keep them all alive).
        self._idle: list[threading.Event] = []
        self._started = 0
        self._shutdown = False

    @property
    def limit(self) -> int:
        """The current bound on threads."""
        with self._lock:
            return self._limit

    @property
    def threads(self) -> int:
        """Threads alive now (busy or idle)."""
        with self._lock:
            return self._threads

    def resize(self, shards: int) -> None:
        """Bound the pool for ``shards`` held shards (see `threads_for`). Surplus threads exit
        when they next fall idle."""
        with self._lock:
            self._limit = threads_for(shards, self._ceiling)
            self._wake_all()

    def submit(self, work: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``work`` on a pool thread; its result or exception completes the future.

        After `shutdown` the future fails at once with RuntimeError.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                future.set_exception(RuntimeError(f"{self._name} is shut down"))
                return future
            self._queue.append((future, work))
            if self._idle:
                self._idle.pop().set()
            elif self._threads < self._limit:
                self._threads += 1
                self._started += 1
                threading.Thread(
                    target=self._run, name=f"{self._name}-{self._started}", daemon=True
                ).start()
        return future

    def call(self, work: Callable[[], T], deliver: Callable[[T | BaseException], object]) -> None:
        """Run ``work`` on a pool thread, then ``deliver`` its result or its exception (typically
        a tell to the actor that asked; ``deliver`` runs on the pool thread)."""

        def done(future: concurrent.futures.Future[T]) -> None:
            error = future.exception()
            deliver(error if error is not None else future.result())

        self.submit(work).add_done_callback(done)

    def shutdown(self) -> None:
        """Accept no more work; idle threads exit, busy ones after their call (never waited for).
        Queued calls fail with RuntimeError."""
        with self._lock:
            self._shutdown = True
            queued, self._queue = self._queue, deque()
            self._wake_all()
        for future, _ in queued:
            future.set_exception(RuntimeError(f"{self._name} is shut down"))

    def _wake_all(self) -> None:
        """Wake every idle thread (with the lock held): to exit, or to look at the queue."""
        for wake in self._idle:
            wake.set()
        self._idle.clear()

    def _wait(self, wake: threading.Event) -> bool:
        """Wait idle (called and returning with the lock held); False after ``idle_timeout``."""
        wake.clear()
        self._idle.append(wake)
        self._lock.release()
        try:
            woken = wake.wait(self._idle_timeout)
        finally:
            self._lock.acquire()
        if not woken and wake in self._idle:
            self._idle.remove(wake)
            return False
        return True  # woken, or handed work just as the wait timed out

    def _run(self) -> None:
        wake = threading.Event()
        while True:
            with self._lock:
                while not self._queue and not self._shutdown:
                    if self._threads > self._limit:
                        self._threads -= 1  # surplus after a resize
                        return
                    if not self._wait(wake) and not self._queue:
                        self._threads -= 1  # idle for the whole timeout: not needed now
                        return
                if not self._queue:
                    self._threads -= 1
                    return
                future, work = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = work()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
