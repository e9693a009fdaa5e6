"""AsyncKinesisProducer: the producer engine behind awaitable puts, for asyncio services.

The engine (`KinesisProducer`) does all the work on its own threads; this class only moves
records in and results out. Everything here runs on the event loop's thread except two places:
the engine's sink (called once per batch of finished records: it appends the batch to a deque
and wakes the loop at most once per drain with ``call_soon_threadsafe``) and the blocking engine
calls (building the engine with its boto3 client, ``stop``), which run in the loop's executor.
Nothing here blocks the loop, and little runs per record: the records that take a slot in one
loop iteration enter the engine in one call at its end (``add_user_records``), and a drain
settles at most ``_DRAIN_CHUNK`` results before it lets the loop run the tasks they woke (a
5 000-record batch would otherwise hold the loop for milliseconds, and every task's object
twice through the CPU caches).

Back-pressure is a count of slots on the loop thread: a record takes a slot when it is accepted
and gives it back when its result reaches the loop; records beyond the producer block's
``akka.max-outstanding-requests`` wait, in order, in a deque. A record accepted by `put_nowait`
(or `put`) is committed: it is sent even if the caller stops waiting for it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyhocon import ConfigTree

from kinesis_actors._aio.lifecycle import AsyncStartStop
from kinesis_actors._config import KplConf, ProducerConf, resolve_producer_conf
from kinesis_actors._errors import ProducerStoppedError, UserRecordFailedError
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer.engine import EngineStats, KinesisProducer
from kinesis_actors._producer.futures import RecordFuture, outcome

__all__ = ["AsyncKinesisProducer", "AsyncProducerStats"]

_Waiter = asyncio.Future[UserRecordResult]
#: Slots of a producer without ``max-outstanding-requests``.
_UNLIMITED = 2**62
#: Results a drain settles before it lets the loop run (the tasks it woke, then the next chunk).
_DRAIN_CHUNK = 256


@dataclass(frozen=True)
class AsyncProducerStats:
    """The engine's counters plus what only the asyncio side knows.

    ``waiting`` records wait for a slot (back-pressure), ``in_engine`` hold one;
    ``dropped_results`` finished after their caller stopped waiting (a cancelled ``put`` or a
    cancelled ``put_nowait`` future), ``dropped_failures`` of them had failed (each is also
    logged as a warning).
    """

    engine: EngineStats
    max_outstanding_requests: int | None
    waiting: int
    in_engine: int
    dropped_results: int
    dropped_failures: int


def _conf(
    source: ProducerConf | KplConf | ConfigTree | Mapping[str, Any],
    producer_name: str | None,
    stream_name: str | None,
) -> ProducerConf:
    if not isinstance(source, ProducerConf | KplConf | ConfigTree | Mapping):
        raise TypeError(
            "expected a ProducerConf, a loaded config and a producer name, or a kpl block and "
            f"a stream name; got {type(source).__name__}"
        )
    return resolve_producer_conf(source, producer_name, stream_name=stream_name)


class AsyncKinesisProducer(AsyncStartStop):
    """Puts records from coroutines through one `KinesisProducer` engine::

        async with AsyncKinesisProducer(load_config(), "orders-producer") as producer:
            result = await producer.put(ProducerEvent("key", b"payload"))

    Built like the engine: from a loaded config and a producer name, a ``ProducerConf``, or a
    ``kpl`` block and ``stream_name`` (then without back-pressure: that is an ``akka`` key).

    ``put`` waits while ``akka.max-outstanding-requests`` records are outstanding (unset: no
    limit), then for the record's result: a `UserRecordResult`, or it raises
    `UserRecordFailedError` / `InvalidRecordError` / `ProducerStoppedError` as the engine's
    futures fail. Cancelling a ``put`` (or the future of ``put_nowait``) never loses or
    duplicates the record: it is still sent, only its result is dropped (counted in
    ``stats()``; a dropped failure is logged). Leaving the block flushes and stops the engine.
    Use it from the loop that started it only.
    """

    def __init__(
        self,
        source: ProducerConf | KplConf | ConfigTree | Mapping[str, Any],
        producer_name: str | None = None,
        *,
        stream_name: str | None = None,
        engine_factory: Callable[[ProducerConf], KinesisProducer] = KinesisProducer,
    ) -> None:
        self._conf = _conf(source, producer_name, stream_name)
        throttling = self._conf.throttling
        self._limit = throttling.max_outstanding_requests if throttling else None
        self._slots = self._limit if self._limit is not None else _UNLIMITED
        self._engine_factory = engine_factory
        self._log = get_logger(__name__).bind(
            producer=self._conf.name, stream=self._conf.stream_name
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: KinesisProducer | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._closed = False
        # Loop thread only: records waiting for a slot, and their count in the engine.
        self._waiting: deque[tuple[ProducerEvent, _Waiter]] = deque()
        self._in_engine = 0
        # Loop thread only: records that took a slot in this loop iteration, entering the
        # engine together at its end.
        self._entering: list[ProducerEvent] = []
        self._entering_waiters: list[_Waiter] = []
        self._idle: asyncio.Event | None = None
        self._flushes = 0
        self._dropped_results = 0
        self._dropped_failures = 0
        # The engine's sink for every record (one bound method); each engine future's tag is
        # the waiter of its record, so nothing per record but the two futures.
        self._sink = self._engine_finished
        # Engine threads -> loop thread: batches of finished records, and whether a drain is
        # scheduled.
        self._finished: deque[Sequence[RecordFuture]] = deque()
        self._batch_start = 0  # how far the drains got into the first batch of ``_finished``
        self._handoff_lock = threading.Lock()
        self._drain_scheduled = False

    @property
    def conf(self) -> ProducerConf:
        return self._conf

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the engine (and its boto3 client) in the loop's executor; idempotent."""
        if self._closed:
            raise ProducerStoppedError(self._refusal())
        if self._start_task is None:
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._idle = asyncio.Event()
            self._idle.set()
            self._start_task = loop.create_task(self._build_engine())
        await asyncio.shield(self._start_task)

    async def _build_engine(self) -> None:
        loop = asyncio.get_running_loop()
        self._engine = await loop.run_in_executor(None, self._engine_factory, self._conf)

    async def stop(self) -> None:
        """Stop accepting records, send every one accepted, then stop the engine; idempotent.

        The engine's own stop (at most RecordTtl plus one request's timeouts) runs in the
        loop's executor. Cancelling this coroutine does not cancel the stop.
        """
        if self._stop_task is None:
            self._closed = True
            self._stop_task = asyncio.get_running_loop().create_task(self._stop_engine())
        await asyncio.shield(self._stop_task)

    async def _stop_engine(self) -> None:
        if self._start_task is not None:
            try:
                await self._start_task
            except Exception:
                return  # start() raised it to its caller; there is no engine to stop
        engine = self._engine
        if engine is None:
            return
        # Accepted records enter the engine now, beyond the limit: no new ones can come.
        while self._waiting:
            self._take_slot(*self._waiting.popleft())
        self._enter()
        await asyncio.get_running_loop().run_in_executor(None, engine.stop)
        self._deliver(sys.maxsize)  # every result left, before the loop may close

    # -- records ---------------------------------------------------------------------------------

    def put_nowait(self, event: ProducerEvent) -> asyncio.Future[UserRecordResult]:
        """Accept ``event`` now, without waiting; the future resolves to its result.

        The record takes a slot at once if one is free and enters the engine at the end of
        this loop iteration, with the others put in it; else it waits for a slot, in order.
        Raises `ProducerStoppedError` before ``start`` and once ``stop`` was called.
        """
        loop = self._loop
        if self._closed or loop is None or self._engine is None:
            raise ProducerStoppedError(self._refusal())
        if type(event) is not ProducerEvent and not isinstance(event, ProducerEvent):
            raise TypeError(f"expected a ProducerEvent, got {type(event).__name__}")
        waiter: _Waiter = loop.create_future()
        if self._in_engine < self._slots and not self._waiting:
            self._take_slot(event, waiter)
        else:
            self._waiting.append((event, waiter))
        return waiter

    async def put(self, event: ProducerEvent) -> UserRecordResult:
        """Put ``event`` and wait for its result (see the class docstring for errors and
        cancellation); waits for a slot first when the outstanding records reach the limit."""
        return await self.put_nowait(event)

    async def flush(self) -> None:
        """Send everything buffered now and wait until no record is outstanding (records put
        meanwhile are waited for too)."""
        if self._engine is None or self._idle is None:
            return
        self._flushes += 1
        try:
            self._enter()
            self._engine.flush()
            await self._idle.wait()
        finally:
            self._flushes -= 1

    def outstanding_records_count(self) -> int:
        """Records accepted whose result has not reached the loop yet (waiting or in the engine)."""
        return len(self._waiting) + self._in_engine

    def stats(self) -> AsyncProducerStats:
        """A snapshot of the counters (the engine's and the asyncio side's)."""
        if self._engine is None:
            raise ProducerStoppedError(self._refusal())
        return AsyncProducerStats(
            engine=self._engine.stats(),
            max_outstanding_requests=self._limit,
            waiting=len(self._waiting),
            in_engine=self._in_engine,
            dropped_results=self._dropped_results,
            dropped_failures=self._dropped_failures,
        )

    # -- loop thread -----------------------------------------------------------------------------

    def _take_slot(self, event: ProducerEvent, waiter: _Waiter) -> None:
        """Give the record a slot; it enters the engine with the others of this loop iteration."""
        if not self._in_engine:
            assert self._idle is not None
            self._idle.clear()
        self._in_engine += 1
        entering = self._entering
        entering.append(event)
        self._entering_waiters.append(waiter)
        if len(entering) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._enter)

    def _enter(self) -> None:
        """Hand the records that took a slot since the last call to the engine in one call."""
        events, waiters = self._entering, self._entering_waiters
        if not events:
            return
        self._entering, self._entering_waiters = [], []
        assert self._engine is not None
        try:
            self._engine.add_user_records(events, waiters, self._sink)
        except Exception as exc:  # the engine stopped by itself (it failed)
            self._in_engine -= len(events)
            for waiter in waiters:
                self._settle_error(waiter, exc)
            if self._in_engine == 0 and not self._waiting and self._idle is not None:
                self._idle.set()
            return

    def _drain(self) -> None:
        """Deliver a chunk of the finished results, then come back for the rest in a later
        loop iteration (the tasks woken by this chunk run, and put again, in between)."""
        with self._handoff_lock:
            self._drain_scheduled = False
        self._deliver(_DRAIN_CHUNK)
        if self._finished and self._claim_drain():
            assert self._loop is not None
            self._loop.call_soon(self._drain)

    def _claim_drain(self) -> bool:
        """Whether the caller is the one to schedule the next drain (one is pending at most)."""
        with self._handoff_lock:
            if self._drain_scheduled:
                return False
            self._drain_scheduled = True
            return True

    def _deliver(self, limit: int) -> None:
        """Settle up to ``limit`` finished records' waiters, then let waiting records into the
        slots they freed."""
        finished = self._finished
        count = 0
        while finished and count < limit:
            batch = finished[0]
            start = self._batch_start
            end = min(len(batch), start + limit - count)
            for future in batch[start:end] if start or end < len(batch) else batch:
                waiter: _Waiter = future.tag
                result, error = outcome(future)
                if waiter.done():
                    self._dropped(error)
                elif error is None:
                    waiter.set_result(result)  # type: ignore[arg-type]
                else:
                    waiter.set_exception(error)
            count += end - start
            if end == len(batch):
                finished.popleft()
                self._batch_start = 0
            else:
                self._batch_start = end
        self._in_engine -= count
        waiting = self._waiting
        while waiting and self._in_engine < self._slots:
            self._take_slot(*waiting.popleft())
        if count and self._flushes and self._engine is not None:
            self._engine.flush()  # records that entered the engine during a flush
        if self._in_engine == 0 and not waiting and self._idle is not None:
            self._idle.set()

    def _dropped(self, error: BaseException | None) -> None:
        self._dropped_results += 1
        if error is None:
            return
        self._dropped_failures += 1
        result = error.result if isinstance(error, UserRecordFailedError) else None
        self._log.warning(
            "a record whose put was cancelled failed",
            error=repr(error),
            attempts=len(result.attempts) if result else 0,
        )

    def _settle_error(self, waiter: _Waiter, error: BaseException) -> None:
        if waiter.done():
            self._dropped_results += 1
            self._dropped_failures += 1
            self._log.warning("a record whose put was cancelled failed", error=repr(error))
        else:
            waiter.set_exception(error)

    def _refusal(self) -> str:
        state = "is stopped" if self._closed else "is not started (use 'async with' or start())"
        return f"producer {self._conf.name!r} for stream {self._conf.stream_name!r} {state}"

    # -- engine threads --------------------------------------------------------------------------

    def _engine_finished(self, futures: Sequence[RecordFuture]) -> None:
        """The engine's sink: queue a batch of finished records, wake the loop once per drain."""
        self._finished.append(futures)
        if self._claim_drain():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._drain)
