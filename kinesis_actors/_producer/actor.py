"""KinesisProducerActor: the producer engine behind an actor's inbox.

Other actors ``tell`` it ``SendWithCallback(event, reply_to=self.actor_ref)`` and get
``SendSuccessful`` / ``SendFailed`` back; plain code asks it and waits on the returned future::

    outcome = producer.ask(SendWithCallback(event)).result(timeout=30)

The actor never blocks on the network: the engine batches and puts on its own threads, and its
completion callbacks only hand the finished record back to the actor's thread (a queue plus one
wake-up tell), so every piece of actor state is touched by the actor's thread alone.

Compared with the Scala library this actor builds the engine in ``on_start`` (not when the actor
object is made, issue #48), logs ``Send`` failures instead of swallowing them, bounds the throttle
queue, sends the queued messages on stop instead of losing them, and can retry failed sends
(``akka.failed-send-retries``, issue #50).
"""

from __future__ import annotations

import concurrent.futures
import enum
import math
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pykka
from pyhocon import ConfigTree

from kinesis_actors._actors import tell
from kinesis_actors._config import ProducerConf, ThrottlingConf, resolve_producer_conf
from kinesis_actors._errors import (
    InvalidRecordError,
    ProducerStoppedError,
    QueueFullError,
    UserRecordFailedError,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._scheduling import Cancellable, schedule_once

if TYPE_CHECKING:
    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope

__all__ = [
    "UNTHROTTLE_THRESHOLD",
    "GetStats",
    "KinesisProducerActor",
    "ProducerActorStats",
    "ProducerEngine",
    "Send",
    "SendFailed",
    "SendOutcome",
    "SendSuccessful",
    "SendWithCallback",
]

log = get_logger(__name__)

#: A throttled actor resumes sending when the outstanding count falls strictly below this share
#: of ``max-outstanding-requests`` (hysteresis, as in the Scala library).
UNTHROTTLE_THRESHOLD = 0.9

_DEFAULT_STOP_TIMEOUT = 60.0
_FINISHED = "FINISHED"  # concurrent.futures' state name of a completed future


_UUID_EPOCH_OFFSET = 0x01B21DD213814000  # 100 ns intervals from 1582-10-15 to 1970-01-01
_id_lock = threading.Lock()
_id_last = 0
_id_high = -1
_id_tail = ""
# Clock sequence with the RFC 4122 variant bits, and a random node with the multicast bit set
# (RFC 4122 section 4.5): fixed per process, so formatted once.
_id_suffix = f"{0x8000 | random.getrandbits(14):04x}-{(1 << 40) | random.getrandbits(48):012x}"


def _new_message_id() -> str:
    """A time-based (version 1) UUID, as the Scala library made: it carries its creation time.

    ``uuid.uuid1()`` costs about 10 us here (libuuid takes a file lock for its clock), more
    than everything else a send costs; this one is well under 1 us, with a random node instead
    of a MAC address and a timestamp that never repeats within the process. Only the low 32
    bits of the timestamp change between calls (the rest every 7 minutes), so only they are
    formatted each time.
    """
    global _id_last, _id_high, _id_tail
    with _id_lock:
        ts = time.time_ns() // 100 + _UUID_EPOCH_OFFSET
        if ts <= _id_last:
            ts = _id_last + 1
        _id_last = ts
        high = ts >> 32
        if high != _id_high:
            _id_high = high
            _id_tail = f"-{high & 0xFFFF:04x}-{0x1000 | ((high >> 16) & 0x0FFF):04x}-{_id_suffix}"
        tail = _id_tail
    return "%08x" % (ts & 0xFFFFFFFF) + tail


# -- messages -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Put a record, fire-and-forget. No reply; a failure is logged with ``message_id``."""

    producer_event: ProducerEvent
    message_id: str = field(default_factory=_new_message_id)


@dataclass(frozen=True, slots=True)
class SendWithCallback:
    """Put a record and report the outcome.

    With ``reply_to`` the outcome (``SendSuccessful`` or ``SendFailed``) is told to that actor.
    Without it, ``ask`` returns a ``concurrent.futures.Future`` whose result is the outcome (it
    never raises): ``producer.ask(SendWithCallback(event)).result(timeout=30)``. The actor does
    not wait for the record meanwhile. (A future per told message would cost every tell a
    lock object, so none is made when the outcome goes to ``reply_to``.)
    """

    producer_event: ProducerEvent
    message_id: str = field(default_factory=_new_message_id)
    reply_to: pykka.ActorRef[Any] | None = None


@dataclass(frozen=True, slots=True)
class SendSuccessful:
    """The record was put; ``user_record_result`` says where (shard, sequence number, attempts)."""

    message_id: str
    user_record_result: UserRecordResult


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The record was not put; ``event`` is returned so the caller can persist or retry it.

    ``reason`` is usually a ``UserRecordFailedError`` (its ``result.attempts`` say why), an
    ``InvalidRecordError``, ``QueueFullError`` or ``ProducerStoppedError``.
    """

    event: ProducerEvent
    message_id: str
    reason: BaseException


SendOutcome = SendSuccessful | SendFailed


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for a ``ProducerActorStats``; it is also told to ``reply_to`` when given."""

    reply_to: pykka.ActorRef[Any] | None = None


@dataclass(frozen=True, slots=True)
class ProducerActorStats:
    """A snapshot of the actor's counters."""

    outstanding: int  # the engine's records put but not yet confirmed (all its users)
    queued: int  # sends waiting in the throttle queue
    in_flight: int  # this actor's sends handed to the engine, not yet completed
    sent: int  # sends confirmed
    failed: int  # sends reported failed (SendFailed, or logged for Send)
    retried: int  # re-sends made under failed-send-retries
    throttled: bool


@dataclass(frozen=True)
class _UnThrottle:
    """Timer tick: re-check the outstanding count."""


@dataclass(frozen=True)
class _Drain:
    """Wake-up: completed records wait in the hand-off queue."""


_UNTHROTTLE = _UnThrottle()
_DRAIN = _Drain()


# -- the engine as the actor sees it --------------------------------------------------------------


class ProducerEngine(Protocol):
    """What the actor needs of ``KinesisProducer``; tests pass a fake."""

    def add_user_record(
        self, event: ProducerEvent
    ) -> concurrent.futures.Future[UserRecordResult]: ...

    def outstanding_records_count(self) -> int: ...

    def flush(self) -> None: ...

    def stop(self) -> None: ...


def _default_engine(conf: ProducerConf) -> ProducerEngine:
    from kinesis_actors._producer.engine import KinesisProducer

    return KinesisProducer(conf)


# -- internals ------------------------------------------------------------------------------------


class _Pending:
    """A send that needs more than its message: an ask's future, or a retry count.

    Sends told with ``reply_to`` and plain sends travel as their message alone, so a
    record waiting in the engine costs the actor no object of its own (each one is work for the
    garbage collector, which dominates the actor's cost at high rates).
    """

    __slots__ = ("answer", "message", "retries")

    def __init__(
        self,
        message: Send | SendWithCallback,
        answer: concurrent.futures.Future[SendOutcome] | None = None,
    ) -> None:
        self.message = message
        self.answer = answer
        self.retries = 0


_Entry = Send | SendWithCallback | _Pending
_EngineFuture = concurrent.futures.Future[UserRecordResult]


class _Handoff:
    """Completed sends travel from engine threads to the actor thread.

    A deque of finished futures plus at most one outstanding ``_Drain`` tell: the engine
    finishes futures in batches, and a batch costs the actor one message, not one per record.
    ``deque.append`` is atomic, so the engine's side takes a lock only to send the wake-up.
    While the actor stops, ``on_stop`` drains the deque itself (``wait``) and nothing is told.
    """

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self._items: deque[_EngineFuture] = deque()
        self._lock = threading.Lock()
        self._wakeup_sent = False
        self._closed = False
        self._arrived = threading.Event()
        self._ref = ref

    def put(self, future: _EngineFuture) -> None:
        """The done callback of every engine future (engine thread): queue it, wake the actor."""
        self._items.append(future)
        if self._closed:
            self._arrived.set()
            return
        if self._wakeup_sent:  # the actor resets the flag before it drains: nothing is stranded
            return
        with self._lock:
            if self._wakeup_sent or self._closed:
                return
            self._wakeup_sent = True
        if not tell(self._ref, _DRAIN):
            self._arrived.set()  # stopping: on_stop reads the deque directly

    def take_all(self) -> list[_EngineFuture]:
        with self._lock:
            self._wakeup_sent = False
        items: list[_EngineFuture] = []
        popleft = self._items.popleft
        while True:
            try:
                items.append(popleft())
            except IndexError:
                return items

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def wait(self, timeout: float) -> list[_EngineFuture]:
        """On stop: what has arrived, waiting up to ``timeout`` seconds for something."""
        items = self.take_all()
        if items or timeout <= 0:
            return items
        self._arrived.clear()
        items = self.take_all()  # arrived between the first look and the clear
        if not items and self._arrived.wait(timeout):
            items = self.take_all()
        return items


def _outcome(
    future: concurrent.futures.Future[UserRecordResult],
) -> tuple[UserRecordResult | None, BaseException | None]:
    """Result and exception of a finished future, without the stdlib's lock.

    ``result()`` / ``exception()`` take the future's condition, which the engine's futures
    only create when someone waits: reading a finished future's slots keeps that saving (about
    a third of the actor's cost per record). Futures of other kinds use the public API.
    """
    if getattr(future, "_state", None) == _FINISHED:
        return future._result, future._exception
    if future.cancelled():
        return None, concurrent.futures.CancelledError("the engine cancelled the record")
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)


class _State(enum.Enum):
    PROCESSING = "processing"
    THROTTLING = "throttling"
    STOPPING = "stopping"


def _attempts(exc: BaseException) -> list[dict[str, Any]]:
    if not isinstance(exc, UserRecordFailedError):
        return []
    return [
        {
            "delay": round(a.delay, 6),
            "duration": round(a.duration, 6),
            "error_code": a.error_code,
            "error_message": a.error_message,
        }
        for a in exc.result.attempts
    ]


# -- the actor ------------------------------------------------------------------------------------


class KinesisProducerActor(pykka.ThreadingActor):
    """Puts ``Send`` / ``SendWithCallback`` records through a ``KinesisProducer``.

    Start it with a ``ProducerConf``, with a HOCON tree and a producer name, or with an engine
    you built (then throttling and retries come from the keywords)::

        KinesisProducerActor.start(ProducerConf.from_config(tree, "testProducer"))
        KinesisProducerActor.start(tree, "testProducer")
        KinesisProducerActor.start(engine, throttling=ThrottlingConf(10_000, 0.1))

    ``stop()`` sends every queued message, flushes, waits for the outcomes (they are delivered)
    and then stops the engine (unless ``stop_engine=False``).
    """

    def __init__(
        self,
        source: ProducerConf | ConfigTree | ProducerEngine,
        producer_name: str | None = None,
        *,
        throttling: ThrottlingConf | None = None,
        failed_send_retries: int | None = None,
        max_queued_sends: int | None = None,
        stop_engine: bool = True,
        stop_timeout: float | None = None,
        engine_factory: Callable[[ProducerConf], ProducerEngine] | None = None,
    ) -> None:
        super().__init__()
        conf: ProducerConf | None
        engine: ProducerEngine | None = None
        if isinstance(source, ProducerConf | ConfigTree):
            overrides = (throttling, failed_send_retries, max_queued_sends)
            if any(value is not None for value in overrides):
                raise TypeError(
                    "throttling, failed_send_retries and max_queued_sends come from the "
                    "ProducerConf; pass them only with an engine"
                )
            conf = resolve_producer_conf(source, producer_name)
            throttling = conf.throttling
            failed_send_retries = conf.failed_send_retries
            max_queued_sends = conf.max_queued_sends
            if stop_timeout is None:
                per_try = conf.kpl.record_ttl + conf.kpl.request_timeout + 5.0
                stop_timeout = per_try * (failed_send_retries + 1)
            name = conf.name
            stream: str | None = conf.stream_name
        elif callable(getattr(source, "add_user_record", None)):
            conf = None
            engine = source
            name = producer_name or "producer"
            stream = getattr(source, "stream_name", None)
        else:
            raise TypeError(
                f"expected a ProducerConf, a config tree and a name, or a KinesisProducer; "
                f"got {type(source).__name__}"
            )
        retries = 0 if failed_send_retries is None else failed_send_retries
        queue_limit = 1_000_000 if max_queued_sends is None else max_queued_sends
        if retries < 0:
            raise ValueError(f"failed_send_retries must be >= 0, got {retries}")
        if queue_limit < 0:
            raise ValueError(f"max_queued_sends must be >= 0, got {queue_limit}")
        if throttling is not None and throttling.max_outstanding_requests < 1:
            raise ValueError("throttling.max_outstanding_requests must be >= 1")

        self._conf = conf
        self._engine = engine
        self._engine_factory = engine_factory or _default_engine
        self._throttling = throttling
        self._release_below = (
            throttling.max_outstanding_requests * UNTHROTTLE_THRESHOLD if throttling else math.inf
        )
        self._retries = retries
        self._queue_limit = queue_limit
        self._stop_engine = stop_engine
        self._stop_timeout = _DEFAULT_STOP_TIMEOUT if stop_timeout is None else stop_timeout
        self._log = log.bind(producer=name, stream=stream)

        self._handoff = _Handoff(self.actor_ref)
        self._state = _State.PROCESSING
        self._queue: deque[_Entry] = deque()
        self._in_flight: dict[_EngineFuture, _Entry] = {}
        self._on_done = self._handoff.put  # one bound method shared by every engine future
        self._fast_receive = type(self).on_receive is KinesisProducerActor.on_receive
        self._timer: Cancellable | None = None
        self._start_error: BaseException | None = None
        self._sent = 0
        self._failed = 0
        self._retried = 0

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        """A ``queue.SimpleQueue`` inbox instead of Pykka's ``queue.Queue``.

        Every record passes this inbox at least twice (the send, the completion wake-up), and
        ``Queue.put`` + ``get`` cost about 2 us against 0.15 us: a fifth of the actor's cost
        per record. Pykka uses only ``put``, ``get`` and ``empty`` (its ``ActorInbox``
        protocol), which ``SimpleQueue`` has, unbounded and FIFO like the default.
        """
        inbox: queue.SimpleQueue[Envelope[Any]] = queue.SimpleQueue()
        return inbox

    # -- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Build the engine here, on the actor's thread, so creating the actor has no I/O."""
        if self._engine is not None:
            self._log.debug("producer actor started on a given engine")
            return
        assert self._conf is not None
        try:
            self._engine = self._engine_factory(self._conf)
        except Exception as exc:
            # Pykka would only log this on its own logger and drop the actor; instead say so
            # loudly, fail whatever is already queued for us with this reason, and stop.
            self._start_error = exc
            self._log.exception("producer engine failed to start; the actor stops")
            self.stop()
            return
        self._log.info(
            "producer actor started",
            max_outstanding_requests=(
                self._throttling.max_outstanding_requests if self._throttling else None
            ),
            failed_send_retries=self._retries,
        )

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: Any) -> None:
        """A bug in this actor must not strand callers nor leak the engine's threads."""
        self._log.error("producer actor crashed; shutting down", exc_info=exc_info[1])
        self._shutdown()

    # -- messages -----------------------------------------------------------------------------

    def _handle_receive(self, message: Any) -> Any:
        """Pykka's dispatch, with the two messages of every record ahead of its proxy checks.

        A told ``SendWithCallback`` and the ``_Drain`` wake-up skip Pykka's four ``isinstance``
        tests and ``on_receive``'s (a tenth of the actor's own cost per record), unless a
        subclass overrides ``on_receive``: then everything goes through it.
        """
        if self._fast_receive:
            cls = type(message)
            if cls is SendWithCallback and message.reply_to is not None:
                self._accept(message)
                return None
            if cls is _Drain:
                self._complete_batch(self._handoff.take_all())
                return None
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SendWithCallback):
            if message.reply_to is not None:
                self._accept(message)
                return None
            answer: concurrent.futures.Future[SendOutcome] = concurrent.futures.Future()
            self._accept(_Pending(message, answer))
            return answer
        if isinstance(message, Send):
            self._accept(message)
            return None
        if isinstance(message, _Drain):
            self._complete_batch(self._handoff.take_all())
            return None
        if isinstance(message, _UnThrottle):
            self._timer = None
            self._maybe_release()
            return None
        if isinstance(message, GetStats):
            stats = self._stats()
            if message.reply_to is not None:
                self._tell(message.reply_to, stats)
            return stats
        self._log.warning("unexpected message ignored", message=repr(message)[:200])
        return None

    def _stats(self) -> ProducerActorStats:
        return ProducerActorStats(
            outstanding=self._outstanding(),
            queued=len(self._queue),
            in_flight=len(self._in_flight),
            sent=self._sent,
            failed=self._failed,
            retried=self._retried,
            throttled=self._state is _State.THROTTLING,
        )

    def _outstanding(self) -> int:
        if self._engine is None:
            return 0
        try:
            return self._engine.outstanding_records_count()
        except Exception:
            self._log.exception("outstanding_records_count failed")
            return 0

    # -- sending ------------------------------------------------------------------------------

    def _accept(self, entry: _Entry) -> None:
        if self._engine is None:
            self._fail(
                entry, ProducerStoppedError(f"the producer failed to start: {self._start_error}")
            )
            return
        if self._throttling is not None:
            if self._state is _State.THROTTLING or self._queue:
                self._enqueue(entry)
                return
            if (
                self._engine.outstanding_records_count()
                >= self._throttling.max_outstanding_requests
            ):
                self._throttle()
                self._enqueue(entry)
                return
        self._dispatch(entry)

    def _enqueue(self, entry: _Entry) -> None:
        if len(self._queue) >= self._queue_limit:
            self._fail(
                entry,
                QueueFullError(
                    f"{len(self._queue)} sends already wait for the throttle "
                    f"(akka.max-queued-sends = {self._queue_limit})"
                ),
            )
            return
        self._queue.append(entry)

    def _throttle(self) -> None:
        assert self._throttling is not None
        self._log.info(
            "Reached maxOutstandingRequests threshold. Throttling sends to Kinesis.",
            max_outstanding_requests=self._throttling.max_outstanding_requests,
        )
        self._state = _State.THROTTLING
        self._schedule_recheck()

    def _schedule_recheck(self) -> None:
        assert self._throttling is not None
        if self._timer is None:
            self._timer = schedule_once(
                self.actor_ref, self._throttling.retry_interval, _UNTHROTTLE
            )

    def _maybe_release(self) -> None:
        """Leave throttling below 90 % of the limit and send the queue in order."""
        if self._state is not _State.THROTTLING or self._throttling is None:
            return
        if self._outstanding() >= self._release_below:
            self._schedule_recheck()
            return
        self._log.info("Removing throttling for sends to Kinesis.", queued=len(self._queue))
        self._state = _State.PROCESSING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        limit = self._throttling.max_outstanding_requests
        while self._queue:
            if self._outstanding() >= limit:
                self._throttle()
                return
            self._dispatch(self._queue.popleft())

    def _dispatch(self, entry: _Entry) -> None:
        assert self._engine is not None
        message = entry.message if isinstance(entry, _Pending) else entry
        try:
            future = self._engine.add_user_record(message.producer_event)
        except Exception as exc:  # ProducerStoppedError, or an engine bug: fail this send only
            self._fail(entry, exc)
            return
        self._in_flight[future] = entry
        future.add_done_callback(self._on_done)

    # -- outcomes -----------------------------------------------------------------------------

    def _complete_batch(self, batch: list[_EngineFuture]) -> None:
        pop = self._in_flight.pop
        sent = 0
        try:
            for future in batch:
                entry = pop(future, None)
                if entry is None:
                    continue  # already settled (stop timeout)
                # The common case inline: a told send that succeeded (``_outcome``'s fast path).
                if (
                    type(entry) is SendWithCallback
                    and entry.reply_to is not None
                    and getattr(future, "_state", None) == _FINISHED
                    and future._exception is None
                    and (result := future._result) is not None
                ):
                    sent += 1
                    self._tell(entry.reply_to, SendSuccessful(entry.message_id, result))
                else:
                    self._complete_entry(future, entry)
        finally:
            self._sent += sent
        if self._state is _State.THROTTLING and batch:
            self._maybe_release()

    def _complete(self, future: _EngineFuture) -> None:
        entry = self._in_flight.pop(future, None)
        if entry is None:
            return  # already settled (stop timeout)
        self._complete_entry(future, entry)

    def _complete_entry(self, future: _EngineFuture, entry: _Entry) -> None:
        result, error = _outcome(future)
        if error is None:
            self._sent += 1
            message = entry.message if isinstance(entry, _Pending) else entry
            if isinstance(message, SendWithCallback):
                assert result is not None
                self._deliver(entry, SendSuccessful(message.message_id, result))
            return
        retries = entry.retries if isinstance(entry, _Pending) else 0
        if retries < self._retries and self._retryable(error):
            if not isinstance(entry, _Pending):
                entry = _Pending(entry)
            entry.retries += 1
            self._retried += 1
            self._log.info(
                "retrying failed send",
                message_id=entry.message.message_id,
                partition_key=entry.message.producer_event.partition_key,
                retry=entry.retries,
                of=self._retries,
                reason=str(error),
            )
            self._dispatch(entry)
            return
        self._fail(entry, error)

    def _retryable(self, error: BaseException) -> bool:
        if self._state is _State.STOPPING and self._engine is None:
            return False
        return not isinstance(error, InvalidRecordError | ProducerStoppedError)

    def _fail(self, entry: _Entry, reason: BaseException) -> None:
        self._failed += 1
        message = entry.message if isinstance(entry, _Pending) else entry
        event = message.producer_event
        fields: dict[str, Any] = {
            "message_id": message.message_id,
            "partition_key": event.partition_key,
            "payload_bytes": len(event.data),
            "attempts": _attempts(reason),
            "retries": entry.retries if isinstance(entry, _Pending) else 0,
            "reason": f"{type(reason).__name__}: {reason}",
        }
        if isinstance(message, SendWithCallback):
            self._log.warning("Record failed to put", **fields)
            self._deliver(entry, SendFailed(event, message.message_id, reason))
        else:
            # Send has no one to tell: the log is the report, so it is an error.
            self._log.error("Record of a Send failed to put", **fields)

    def _deliver(self, entry: _Entry, outcome: SendOutcome) -> None:
        if isinstance(entry, _Pending):
            message, answer = entry.message, entry.answer
        else:
            message, answer = entry, None
        assert isinstance(message, SendWithCallback)
        if message.reply_to is not None:
            self._tell(message.reply_to, outcome)
        if answer is not None:
            try:
                answer.set_result(outcome)
            except concurrent.futures.InvalidStateError:
                pass  # the asker cancelled its future

    def _tell(self, ref: pykka.ActorRef[Any], message: object) -> None:
        """Tell a user's actor; its death or any error must not take this actor down."""
        try:
            delivered = tell(ref, message)
        except Exception as exc:
            delivered, error = False, f"{type(exc).__name__}: {exc}"
        else:
            error = "ActorDeadError: the actor is not running"
        if not delivered:
            self._log.warning(
                "could not deliver to reply_to",
                reply_to=str(ref),
                message_type=type(message).__name__,
                error=error,
            )

    # -- stopping -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Send what is queued, flush, deliver every outcome, then stop the engine."""
        if self._state is _State.STOPPING:
            return
        self._state = _State.STOPPING
        self._handoff.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued = len(self._queue)
        engine = self._engine
        if engine is None:
            reason = ProducerStoppedError(
                f"producer stopped before sending (failed to start: {self._start_error})"
            )
            while self._queue:
                self._fail(self._queue.popleft(), reason)
            return
        while self._queue:
            self._dispatch(self._queue.popleft())
        self._log.info(
            "producer actor stopping: flushing",
            sent_from_queue=queued,
            in_flight=len(self._in_flight),
        )
        deadline = time.monotonic() + self._stop_timeout
        try:
            engine.flush()
        except Exception:
            self._log.exception("flush failed on stop")
        if self._retries or not self._stop_engine:
            # Retries need the engine alive, and a shared engine is not ours to stop: wait here.
            self._await_in_flight(deadline)
        if self._stop_engine:
            try:
                engine.stop()  # flushes synchronously, then releases the engine's threads
            except Exception:
                self._log.exception("engine stop failed")
            self._engine = None  # no retries once the engine is gone
            self._await_in_flight(min(deadline, time.monotonic() + 1.0))
        if self._in_flight:
            reason = ProducerStoppedError(
                f"the producer actor stopped before the record completed "
                f"(waited {self._stop_timeout:.0f} s)"
            )
            stranded = list(self._in_flight.values())
            self._in_flight.clear()
            for entry in stranded:
                self._fail(entry, reason)
        self._log.info(
            "producer actor stopped", sent=self._sent, failed=self._failed, retried=self._retried
        )

    def _await_in_flight(self, deadline: float) -> None:
        for future in self._handoff.take_all():
            self._complete(future)
        while self._in_flight:
            done = self._handoff.wait(deadline - time.monotonic())
            if not done:
                return
            for future in done:
                self._complete(future)
