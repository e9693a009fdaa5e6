"""ConsumerLoop: the one event loop that runs a consumer's coroutines, for all its shards.

Started from async code (``AsyncKinesisConsumer``), it is the caller's running loop. Started
from plain code, it is a loop of its own on a daemon thread, started when the first coroutine
comes and stopped with the consumer. Either way, only coroutines run on it: every AWS call and
every blocking wait of the consumer stays on the consumer's own threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from kinesis_actors._logging import get_logger

__all__ = ["ConsumerLoop"]

T = TypeVar("T")

log = get_logger(__name__)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class ConsumerLoop:
    """Runs coroutines of one consumer on ``loop`` (or on a loop of its own); thread-safe."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, name: str) -> None:
        self._loop = loop
        self._own = loop is None
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._closed = False

    def submit(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Run ``awaitable`` on the loop; its outcome arrives in the returned future.

        Once the consumer has stopped, the future is cancelled at once (a coroutine given is
        closed, never run).
        """
        coroutine: Coroutine[Any, Any, T] = (
            awaitable if asyncio.iscoroutine(awaitable) else _awaited(awaitable)
        )
        with self._lock:
            loop = None if self._closed else self._started()
            if loop is None or loop.is_closed():
                coroutine.close()
                future: concurrent.futures.Future[T] = concurrent.futures.Future()
                future.cancel()
                return future
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
            self._running.add(future)
        future.add_done_callback(self._forget)
        return future

    def close(self) -> None:
        """Cancel the coroutines still running and stop the own loop (without waiting for it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running, self._running = self._running, set()
            loop = self._loop
        for future in running:
            future.cancel()  # run_coroutine_threadsafe: cancels the task on its loop
        if self._own and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)

    def _started(self) -> asyncio.AbstractEventLoop:
        """The loop, starting the own one on first use (the caller holds the lock)."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._run,
                args=(loop,),
                name=f"kinesis-consumer-loop-{self._name}",
                daemon=True,
            )
            self._loop = loop
            self._thread.start()
        return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Tasks still there (close() cancelled its own; a processor may have made others)
            # are cancelled and get one last turn to handle it.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            log.debug("consumer event loop stopped", consumer=self._name)
