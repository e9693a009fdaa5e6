"""The producer engine's pool of threads for blocking calls (PutRecords, ListShards).

A ``concurrent.futures.ThreadPoolExecutor`` refuses work once the interpreter begins to exit
(its workers are joined before ``atexit`` hooks run), so an engine that flushes at exit could
not put anything. These threads are daemons that serve until ``shutdown``: the exit hook can
still flush through them, and a forgotten engine never holds the interpreter.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from kinesis_actors._logging import get_logger

__all__ = ["CallPool"]

log = get_logger(__name__)


class CallPool:
    """At most ``size`` daemon threads, started as work arrives; jobs run in FIFO order."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; start a thread if none is idle and the pool is not full."""
        self._jobs.put(job)
        if self._idle.acquire(blocking=False) or len(self._threads) >= self._size:
            return
        thread = threading.Thread(
            target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def shutdown(self) -> None:
        """Let queued jobs finish, then end every thread and wait for them."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("producer call failed outside its own error handling")
            self._idle.release()
