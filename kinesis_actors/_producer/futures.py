"""The future of one user record: a ``concurrent.futures.Future`` that is cheap to make and finish.

A stdlib Future builds a ``threading.Condition`` and two lists up front: eleven objects for the
cyclic GC and about a microsecond per record. At 100 000 records/s that is most of the
producer's CPU, because the GC walks those objects again and again while records wait in the
buffers. ``RecordFuture`` starts as one plain object and makes the condition and lists only when
someone waits (``result``, ``done``, ``concurrent.futures.wait``...). Until then the engine
finishes futures in batches under one module lock, and ``add_done_callback`` registers under that
lock. Behaviour is the stdlib's; the tests pin the stdlib internals this relies on.

An adapter that hands many records' results to another thread (``AsyncKinesisProducer``) gives
each future a ``sink`` and a ``tag`` instead of a done callback: the sink is called once per
finished batch with the batch's futures (no callback list and no call per record), and the tag
carries what the adapter needs back (e.g. the ``asyncio.Future`` awaiting the record).

This is the one module that touches ``concurrent.futures`` internals (``_state``, ``_result``,
``_exception``, ``_condition``, ``_invoke_callbacks``); everything else reads futures through
``outcome``, ``succeeded`` or the public API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures._base import FINISHED, LOGGER, RUNNING
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from kinesis_actors._models import UserRecordResult

__all__ = ["FinishedSink", "RecordFuture", "finish_all", "outcome", "succeeded"]

#: Receives futures just finished, one batch per call, on the finishing thread: must be quick.
#: Each call gets a sequence of its own, which the sink may keep.
FinishedSink: TypeAlias = Callable[[Sequence["RecordFuture"]], object]

#: Guards the switch of every RecordFuture from "nobody waits" to "condition made".
_LOCK = threading.Lock()


class RecordFuture(Future["UserRecordResult"]):
    """A running Future (``cancel()`` returns False: the record is already on its way)."""

    _condition_made = False
    #: Shared empty default; an instance gets its own list with its first callback.
    _done_callbacks: Sequence[Callable[[Future[UserRecordResult]], object]] = ()
    _sink: FinishedSink | None = None
    #: Set with the sink: what its owner needs back with the finished future.
    tag: Any = None

    def __init__(self, sink: FinishedSink | None = None, tag: Any = None) -> None:
        # Future.__init__ minus the condition and the lists.
        self._state = RUNNING
        self._result: UserRecordResult | None = None
        self._exception: BaseException | None = None
        if sink is not None:
            self._sink = sink
            self.tag = tag

    def __getattr__(self, name: str) -> Any:
        # Reached only while these are not instance attributes yet: the stdlib code wants them.
        if name not in ("_condition", "_waiters"):
            raise AttributeError(name)
        with _LOCK:
            if not self._condition_made:
                self._condition = threading.Condition()
                self._waiters: list[Any] = []
                self._done_callbacks = list(self._done_callbacks)
                self._condition_made = True
        return self.__dict__[name]

    def add_done_callback(self, fn: Callable[[Future[UserRecordResult]], object]) -> None:
        with _LOCK:
            watched = self._condition_made
            if not watched and self._state != FINISHED:
                if self._done_callbacks:
                    self._done_callbacks.append(fn)  # type: ignore[attr-defined]
                else:
                    self._done_callbacks = [fn]
                return
        if watched:
            super().add_done_callback(fn)
            return
        _call(fn, self, self)

    def _invoke_callbacks(self) -> None:
        """The stdlib's finishing paths (``set_result``, ``set_exception``) end here."""
        if self._sink is not None:
            _call(self._sink, (self,), self)
        super()._invoke_callbacks()  # type: ignore[misc]


def _call(fn: Callable[[Any], object], arg: object, future: RecordFuture) -> None:
    """Call a callback or a sink as the stdlib does: an exception is logged, never raised."""
    try:
        fn(arg)
    except Exception:
        LOGGER.exception("exception calling callback for %r", future)


def finish_all(futures: Sequence[RecordFuture], results: Sequence[UserRecordResult]) -> None:
    """Resolve many futures at once: one lock for those nobody waits on, the stdlib for others;
    a sink gets its futures of the batch in one call (one per run, were sinks interleaved)."""
    with_callbacks: list[RecordFuture] = []
    watched: list[tuple[RecordFuture, UserRecordResult]] = []
    sunk: list[tuple[FinishedSink, list[RecordFuture]]] = []  # by sink, usually just one
    with _LOCK:
        for future, result in zip(futures, results, strict=True):
            if future._condition_made:
                watched.append((future, result))
                continue
            future._result = result
            future._state = FINISHED
            sink = future._sink
            if sink is not None:
                if sunk and sunk[-1][0] is sink:
                    sunk[-1][1].append(future)
                else:
                    sunk.append((sink, [future]))
            if future._done_callbacks:
                with_callbacks.append(future)
    for sink, batch in sunk:
        _call(sink, batch, batch[0])
    for future in with_callbacks:
        Future._invoke_callbacks(future)  # type: ignore[attr-defined]  # not the sink again
    for future, result in watched:
        future.set_result(result)


def outcome(
    future: Future[UserRecordResult],
) -> tuple[UserRecordResult | None, BaseException | None]:
    """Result and exception of a finished future, without making its condition.

    ``result()`` / ``exception()`` take the future's condition, which a ``RecordFuture`` only
    makes when someone waits: reading a finished one's slots keeps that saving (about a third
    of the producer actor's cost per record). Futures of other kinds use the public API.
    """
    if type(future) is RecordFuture and future._state == FINISHED:
        return future._result, future._exception
    if future.cancelled():
        return None, CancelledError("the engine cancelled the record")
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)


def succeeded(future: Future[UserRecordResult]) -> UserRecordResult | None:
    """The result of a ``RecordFuture`` that finished with one, else None (then ask ``outcome``).

    The per-record test of a consumer of many finished futures: no condition, no tuple.
    """
    if type(future) is RecordFuture and future._state == FINISHED and future._exception is None:
        return future._result
    return None
