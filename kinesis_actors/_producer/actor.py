"""KinesisProducerActor: the producer engine behind an actor's inbox.

Other actors ``tell`` it ``SendWithCallback(event, reply_to=self.actor_ref)`` and get
``SendSuccessful`` / ``SendFailed`` back; plain code asks it and waits on the returned future::

    outcome = producer.ask(SendWithCallback(event)).result(timeout=30)

The actor never blocks on the network: the engine batches and puts on its own threads, and its
completion callbacks only hand the finished record back to the actor's thread (a queue plus one
wake-up tell), so every piece of actor state is touched by the actor's thread alone. Told sends
that arrive while more messages wait enter the engine together, in the order told.

Compared with the Scala library this actor builds the engine in ``on_start`` (not when the actor
object is made, issue #48), logs ``Send`` failures instead of swallowing them, bounds the throttle
queue, sends the queued messages on stop instead of losing them, and can retry failed sends
(``akka.failed-send-retries``, issue #50).
"""

from __future__ import annotations

import concurrent.futures
import enum
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from pyhocon import ConfigTree

from kinesis_actors._actors import tell
from kinesis_actors._config import ProducerConf, ThrottlingConf, resolve_producer_conf
from kinesis_actors._errors import (
    InvalidRecordError,
    ProducerStoppedError,
    QueueFullError,
)
from kinesis_actors._exit import ACTORS, at_exit
from kinesis_actors._log_summary import LogSummary
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors._producer.engine_protocol import ProducerEngine
from kinesis_actors._producer.futures import FinishedSink, outcome, succeeded
from kinesis_actors._producer.handoff import EngineFuture, Handoff
from kinesis_actors._producer.messages import (
    GetStats,
    ProducerActorStats,
    Send,
    SendFailed,
    SendOutcome,
    SendSuccessful,
    SendWithCallback,
)
from kinesis_actors._producer.send_checks import (
    attempt_fields,
    error_code_of,
    failed_outcome,
    malformed,
)
from kinesis_actors._pykka_compat import SimpleQueueInbox, drain_inbox
from kinesis_actors._scheduling import Cancellable, schedule_once

__all__ = ["UNTHROTTLE_THRESHOLD", "KinesisProducerActor"]

log = get_logger(__name__)

#: A throttled actor resumes sending when the outstanding count falls strictly below this share
#: of ``max-outstanding-requests`` (hysteresis, as in the Scala library).
UNTHROTTLE_THRESHOLD = 0.9

_DEFAULT_STOP_TIMEOUT = 60.0

# -- the actor's own messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class _UnThrottle:
    """Timer tick: re-check the outstanding count."""


@dataclass(frozen=True)
class _Drain:
    """Wake-up: completed records wait in the hand-off queue."""


@dataclass(frozen=True)
class _AtExit:
    """The interpreter exits and nobody stopped this actor: stop within ``timeout`` seconds."""

    timeout: float


_UNTHROTTLE = _UnThrottle()
_DRAIN = _Drain()
#: Told sends gathered at most before they go to the engine, even while more messages wait.
_GATHER_LIMIT = 256
#: Fallback of the exit bound for an actor given an engine without one.
_DEFAULT_EXIT_FLUSH_TIMEOUT = 5.0
#: Fallback of ``kpl.LogSummaryInterval`` (its reference.conf default) likewise.
_DEFAULT_LOG_SUMMARY_INTERVAL = 10.0


def _default_engine(conf: ProducerConf) -> ProducerEngine:
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


class _State(enum.Enum):
    PROCESSING = "processing"
    THROTTLING = "throttling"
    STOPPING = "stopping"


# -- the actor ------------------------------------------------------------------------------------


class KinesisProducerActor(SimpleQueueInbox, pykka.ThreadingActor):
    """Puts ``Send`` / ``SendWithCallback`` records through a ``KinesisProducer``.

    Every send is answered exactly once, in every state: a malformed one with ``SendFailed``
    (a ``TypeError`` naming what was wrong), one arriving while the stop is pending with
    ``SendFailed`` (``ProducerStoppedError``); after the stop, ``tell`` raises
    ``ActorDeadError``. Its thread is a daemon: an actor nobody stopped is stopped at
    interpreter exit, flushing for at most ``kpl.ExitFlushTimeout``.

    Start it with a ``ProducerConf``, with a HOCON tree and a producer name, or with an engine
    you built (then throttling and retries come from the keywords)::

        KinesisProducerActor.start(ProducerConf.from_config(tree, "testProducer"))
        KinesisProducerActor.start(tree, "testProducer")
        KinesisProducerActor.start(engine, throttling=ThrottlingConf(10_000, 0.1))

    ``stop()`` sends every queued message, flushes, waits for the outcomes (they are delivered)
    and then stops the engine (unless ``stop_engine=False``).
    """

    #: A forgotten actor must not hold the interpreter at exit; the exit hook stops it.
    use_daemon_thread = True

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
            exit_timeout = conf.kpl.exit_flush_timeout
            summary_interval = conf.kpl.log_summary_interval
        elif callable(getattr(source, "add_user_record", None)):
            conf = None
            engine = source
            name = producer_name or "producer"
            stream = getattr(source, "stream_name", None)
            exit_timeout = getattr(source, "exit_flush_timeout", _DEFAULT_EXIT_FLUSH_TIMEOUT)
            summary_interval = getattr(
                source, "log_summary_interval", _DEFAULT_LOG_SUMMARY_INTERVAL
            )
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
        # Failures, refusals and undeliverable replies: one line per kind per interval.
        self._summary = LogSummary(self._log, float(summary_interval))
        self._exit_timeout = float(exit_timeout)
        self._exiting = False
        self._cancel_exit_hook: Callable[[], None] | None = None

        self._handoff = Handoff(self.actor_ref, _DRAIN)
        self._state = _State.PROCESSING
        self._queue: deque[_Entry] = deque()
        self._in_flight: dict[EngineFuture, _Entry] = {}
        self._on_done = self._handoff.put  # one bound method shared by every engine future
        # A KinesisProducer hands finished records over a batch at a time (its sink), with no
        # done callback to register per record nor to call per record; see ``_bind_engine``.
        self._sinking_engine: KinesisProducer | None = None
        self._sink: FinishedSink = self._handoff.put_all  # one bound method: batched by it
        # Told sends received while more messages wait, not yet given to the engine.
        self._gathered: list[SendWithCallback] = []
        self._timer: Cancellable | None = None
        self._start_error: BaseException | None = None
        self._sent = 0
        self._failed = 0
        self._retried = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Build the engine here, on the actor's thread, so creating the actor has no I/O."""
        self._cancel_exit_hook = at_exit(self._stop_at_exit, ACTORS)
        if self._engine is not None:
            self._bind_engine(self._engine)
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
        self._bind_engine(self._engine)
        self._log.info(
            "producer actor started",
            max_outstanding_requests=(
                self._throttling.max_outstanding_requests if self._throttling else None
            ),
            failed_send_retries=self._retries,
        )

    def _bind_engine(self, engine: ProducerEngine) -> None:
        # Exactly a KinesisProducer: a subclass may override add_user_record without the sink.
        if type(engine) is KinesisProducer:
            self._sinking_engine = engine

    def on_stop(self) -> None:
        self._shutdown()

    def _stop_at_exit(self) -> None:
        """The exit hook (main thread): stop this forgotten actor within the exit bound."""
        ref = self.actor_ref
        if not tell(ref, _AtExit(self._exit_timeout)):
            return
        try:
            ref.stop(block=True, timeout=self._exit_timeout + 2.0)
        except pykka.Timeout:
            self._log.warning(
                "producer actor did not stop at exit in time", timeout=self._exit_timeout
            )

    def on_failure(self, *exc_info: Any) -> None:
        """A bug in this actor must not strand callers nor leak the engine's threads."""
        self._log.error("producer actor crashed; shutting down", exc_info=exc_info[1])
        self._shutdown()

    # -- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        try:
            # The two messages of every record first, by exact type: the cheapest tests.
            cls = type(message)
            if (
                cls is SendWithCallback
                and type(message.reply_to) is pykka.ActorRef
                and type(message.producer_event) is ProducerEvent
                and type(message.message_id) is str
            ):
                if self._sinking_engine is None or self._throttling is not None:
                    self._accept(message)
                    return None
                # The common case: a KinesisProducer, no throttle. While more messages wait,
                # the sends gather and enter the engine together (``_send_gathered``).
                gathered = self._gathered
                gathered.append(message)
                if len(gathered) >= _GATHER_LIMIT or self.actor_inbox.empty():
                    self._send_gathered()
                return None
            if self._gathered:  # before any other message: order and counts stay as told
                self._send_gathered()
            if cls is _Drain:
                self._complete_batch(self._handoff.take_all())
                return None
            return self._receive_other(message)
        except Exception as exc:
            # A bug here must neither kill the shared actor nor raise to an asker.
            self._log.exception("producer actor failed to handle a message")
            return self._refuse(message, exc)

    def _receive_other(self, message: Any) -> Any:
        if isinstance(message, SendWithCallback | Send):
            problem = malformed(message)
            if problem is not None:
                return self._refuse(message, TypeError(problem))
            if isinstance(message, Send):
                self._accept(message)
                return None
            if message.reply_to is not None:
                self._accept(message)
                return None
            answer: concurrent.futures.Future[SendOutcome] = concurrent.futures.Future()
            self._accept(_Pending(message, answer))
            return answer
        if isinstance(message, _Drain):
            self._complete_batch(self._handoff.take_all())
            return None
        if isinstance(message, _UnThrottle):
            self._timer = None
            self._maybe_release()
            return None
        if isinstance(message, GetStats):
            stats = self._stats()
            if isinstance(message.reply_to, pykka.ActorRef):
                self._tell(message.reply_to, stats)
            return stats
        if isinstance(message, _AtExit):
            self._exiting = True
            self._stop_timeout = min(self._stop_timeout, message.timeout)
            return None
        return self._refuse(
            message,
            TypeError(
                f"KinesisProducerActor does not handle {type(message).__name__} messages "
                "(send Send, SendWithCallback or GetStats)"
            ),
            event="unexpected message ignored",
        )

    def _refuse(
        self, message: Any, reason: BaseException, event: str = "malformed message refused"
    ) -> Any:
        """Answer a message the actor cannot take: to ``reply_to``, else as the ask's result.

        A ``SendWithCallback`` asked without ``reply_to`` gets what a good one gets, a future
        of the outcome; anything else gets the ``SendFailed`` itself.
        """
        self._failed += 1
        failed = failed_outcome(message, reason)
        self._summary.warning(
            (event, type(message).__name__, str(reason)),
            event,
            message_type=type(message).__name__,
            message=repr(message),
            reason=f"{type(reason).__name__}: {reason}",
        )
        reply_to = getattr(message, "reply_to", None)
        if isinstance(reply_to, pykka.ActorRef):
            self._tell(reply_to, failed)
            return None
        if isinstance(message, SendWithCallback):
            answer: concurrent.futures.Future[SendOutcome] = concurrent.futures.Future()
            answer.set_result(failed)
            return answer
        return failed

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

    def _send_gathered(self) -> None:
        """Hand the gathered told sends to the engine in one call: one clock read and at most
        one wake-up of the engine for the lot, instead of one per record."""
        gathered, self._gathered = self._gathered, []
        assert self._sinking_engine is not None
        try:
            futures = self._sinking_engine.add_user_records(
                [message.producer_event for message in gathered], gathered, self._sink
            )
        except Exception as exc:  # ProducerStoppedError (then none was queued), or an engine bug
            for message in gathered:
                self._fail(message, exc)
            return
        self._in_flight.update(zip(futures, gathered, strict=True))

    def _dispatch(self, entry: _Entry) -> None:
        assert self._engine is not None
        message = entry.message if isinstance(entry, _Pending) else entry
        try:
            if self._sinking_engine is not None:
                future = self._sinking_engine.add_user_record(
                    message.producer_event, sink=self._sink
                )
            else:
                future = self._engine.add_user_record(message.producer_event)
                future.add_done_callback(self._on_done)
        except Exception as exc:  # ProducerStoppedError, or an engine bug: fail this send only
            self._fail(entry, exc)
            return
        self._in_flight[future] = entry

    # -- outcomes -----------------------------------------------------------------------------

    def _complete_batch(self, batch: list[EngineFuture]) -> None:
        pop = self._in_flight.pop
        sent = 0
        try:
            for future in batch:
                entry = pop(future, None)
                if entry is None:
                    continue  # already settled (stop timeout)
                # The common case inline: a told send that succeeded.
                result = succeeded(future)
                if (
                    result is not None
                    and type(entry) is SendWithCallback
                    and (reply_to := entry.reply_to) is not None
                ):
                    sent += 1
                    reply = SendSuccessful(entry.message_id, result)
                    try:
                        reply_to.tell(reply)
                    except Exception as exc:  # its actor is gone (ActorDeadError), or worse
                        self._undelivered(reply_to, reply, exc)
                else:
                    self._complete_entry(entry, *outcome(future))
        finally:
            self._sent += sent
        if self._state is _State.THROTTLING and batch:
            self._maybe_release()

    def _complete(self, future: EngineFuture) -> None:
        entry = self._in_flight.pop(future, None)
        if entry is None:
            return  # already settled (stop timeout)
        self._complete_entry(entry, *outcome(future))

    def _complete_entry(
        self, entry: _Entry, result: UserRecordResult | None, error: BaseException | None
    ) -> None:
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
            **attempt_fields(reason),
            "retries": entry.retries if isinstance(entry, _Pending) else 0,
            "reason": f"{type(reason).__name__}: {reason}",
        }
        key = (type(message), type(reason), error_code_of(reason))
        if isinstance(message, SendWithCallback):
            self._summary.warning(key, "Record failed to put", **fields)
            self._deliver(entry, SendFailed(event, message.message_id, reason))
        else:
            # Send has no one to tell: the log is the report, so it is an error.
            self._summary.error(key, "Record of a Send failed to put", **fields)

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
            self._undelivered(ref, message, exc)
            return
        if not delivered:
            self._undelivered(ref, message, None)

    def _undelivered(
        self, ref: pykka.ActorRef[Any], message: object, exc: BaseException | None
    ) -> None:
        """Summarise a reply that could not be told (``exc`` None or ActorDeadError: it is gone)."""
        if exc is None or isinstance(exc, pykka.ActorDeadError):
            error = "ActorDeadError: the actor is not running"
        else:
            error = f"{type(exc).__name__}: {exc}"
        self._summary.warning(
            ("undeliverable", type(message).__name__, error),
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
        if self._gathered:
            self._send_gathered()  # they arrived before the stop: they are sent like the rest
        self._state = _State.STOPPING
        self._handoff.close()
        if self._cancel_exit_hook is not None:
            self._cancel_exit_hook()
        # Sends told while the stop was pending wait behind Pykka's stop message: answer them.
        drain_inbox(self, self._answer_late)
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
            drain_inbox(self, self._answer_late)
            self._summary.flush()
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
                # Flushes synchronously, then releases the engine's threads.
                if self._exiting:
                    engine.stop(timeout=max(0.0, deadline - time.monotonic()))
                else:
                    engine.stop()
            except Exception:
                self._log.exception("engine stop failed")
            self._engine = self._sinking_engine = None  # no retries once the engine is gone
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
        drain_inbox(self, self._answer_late)  # a tell that raced with the stop
        self._summary.flush()
        if self._exiting:
            self._log.warning(
                "producer actor was never stopped: stopped at interpreter exit",
                sent=self._sent,
                failed=self._failed,
                exit_flush_timeout=self._exit_timeout,
            )
        self._log.info(
            "producer actor stopped", sent=self._sent, failed=self._failed, retried=self._retried
        )

    def _answer_late(self, message: Any, reply_to: pykka.Future[Any] | None) -> bool:
        """A message found in the inbox once stopping: answer it as ``on_receive`` would."""
        if isinstance(message, SendWithCallback | Send):
            late = ProducerStoppedError("the producer actor was stopping when this send arrived")
            answer = self._refuse_late(message, late)
            if reply_to is not None:
                reply_to.set(answer)
            return True
        if isinstance(message, GetStats):
            stats = self._stats()
            if isinstance(message.reply_to, pykka.ActorRef):
                self._tell(message.reply_to, stats)
            if reply_to is not None:
                reply_to.set(stats)
            return True
        if isinstance(message, _Drain | _UnThrottle | _AtExit):
            if reply_to is not None:
                reply_to.set(None)
            return True
        return False  # Pykka's own (its stop requests) and unknown messages: Pykka settles them

    def _refuse_late(self, message: Send | SendWithCallback, reason: BaseException) -> Any:
        if malformed(message) is not None:
            return self._refuse(message, reason)
        if isinstance(message, SendWithCallback) and message.reply_to is None:
            answer: concurrent.futures.Future[SendOutcome] = concurrent.futures.Future()
            self._fail(_Pending(message, answer), reason)
            return answer
        self._fail(message, reason)
        return None

    def _await_in_flight(self, deadline: float) -> None:
        for future in self._handoff.take_all():
            self._complete(future)
        while self._in_flight:
            done = self._handoff.wait(deadline - time.monotonic())
            if not done:
                return
            for future in done:
                self._complete(future)
