"""AsyncKinesisConsumer: a KinesisConsumer driven from a running event loop.

The consumer itself (leases, readers, checkpoints) runs on its own threads as always; what this
class adds is that its ``async def`` processor runs on the caller's loop, that starting and
stopping (which call AWS and wait) happen in the loop's executor, and that SIGTERM / SIGINT go
through the loop's signal handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING, Any

from kinesis_actors._aio.lifecycle import AsyncStartStop
from kinesis_actors._config import ConsumerConf, load_config, resolve_consumer_conf
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    import pykka
    from pyhocon import ConfigTree

    from kinesis_actors._consumer.processor import ProcessRecord

__all__ = ["AsyncKinesisConsumer"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class AsyncKinesisConsumer(AsyncStartStop):
    """Consumes one stream from async code; ``process_record`` is usually ``async def``::

        async def process_record(event: ConsumerEvent) -> None:
            await handle(event.payload)      # returns: acknowledged; raises: re-sent

        async with AsyncKinesisConsumer(process_record, load_config(), "orders") as consumer:
            await consumer.wait()            # until stopped (stop(), a signal) or failed

    or ``await AsyncKinesisConsumer(...).run()``. Arguments are those of `KinesisConsumer`.
    With ``worker.gracefulShutdownHook`` on, SIGTERM and SIGINT stop it gracefully through the
    running loop's signal handlers (main thread only).
    """

    def __init__(
        self,
        process_record: ProcessRecord | pykka.ActorRef[Any],
        kinesis_conf: ConfigTree | ConsumerConf | str | os.PathLike[str],
        consumer_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(kinesis_conf, str | os.PathLike):
            kinesis_conf = load_config(kinesis_conf)
        self._conf = resolve_consumer_conf(kinesis_conf, consumer_name)  # errors surface here
        self._process_record = process_record
        self._kwargs = kwargs
        self._log = get_logger(__name__).bind(
            consumer=self._conf.name, stream=self._conf.stream_name
        )
        self._consumer: KinesisConsumer | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[bool] | None = None
        self._done: asyncio.Future[None] | None = None
        self._signals: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def conf(self) -> ConsumerConf:
        return self._conf

    async def start(self) -> None:
        """Start consuming (the lease table and the first shard sync run in the executor)."""
        if self._start_task is None:
            self._start_task = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._start_task)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        consumer = KinesisConsumer(
            self._process_record, self._conf, event_loop=loop, **self._kwargs
        )
        self._consumer = consumer
        done = await loop.run_in_executor(None, consumer.start)
        self._done = asyncio.wrap_future(done, loop=loop)
        self._done.add_done_callback(lambda _: self._remove_signal_handlers())
        if self._conf.worker.graceful_shutdown_hook and not self._done.done():
            self._add_signal_handlers(loop)

    async def wait(self) -> None:
        """Return once the consumer stopped gracefully; raise the reason if it failed."""
        await self.start()
        assert self._done is not None
        await asyncio.shield(self._done)

    async def run(self) -> None:
        """Start, then wait (see ``wait``); cancelling it stops the consumer gracefully first."""
        try:
            await self.wait()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def stop(self) -> bool:
        """Stop gracefully (final checkpoints, leases released) and wait for it, in the executor.

        True once stopped; idempotent. Cancelling this coroutine does not cancel the stop.
        """
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop())
        return await asyncio.shield(self._stop_task)

    async def _stop(self) -> bool:
        if self._start_task is not None:
            try:
                await self._start_task
            except Exception:
                pass  # raised to start()'s caller; whatever started is stopped below
        consumer = self._consumer
        self._remove_signal_handlers()
        if consumer is None:
            return True
        return await asyncio.get_running_loop().run_in_executor(None, consumer.stop)

    # -- signals ---------------------------------------------------------------------------------

    def _add_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in _SIGNALS:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (ValueError, RuntimeError, NotImplementedError):
                self._log.debug("signal handlers need the main thread's loop; none installed")
                return
            self._signals.append(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        self._log.info("signal received: stopping the consumer", signal=signum.name)
        self._remove_signal_handlers()
        loop = self._loop
        if loop is not None and self._stop_task is None:
            self._stop_task = loop.create_task(self._stop())

    def _remove_signal_handlers(self) -> None:
        loop, signals, self._signals = self._loop, self._signals, []
        if loop is None or loop.is_closed():
            return
        for signum in signals:
            loop.remove_signal_handler(signum)
