"""KinesisConsumer: consume a stream with a function or an event-processor actor.

::

    def process_record(event: ConsumerEvent) -> None:
        handle(event.payload)            # return = acknowledged

    consumer = KinesisConsumer(process_record, load_config(), "my-consumer")
    done = consumer.start()              # Future: completes when the consumer stops
    ...
    consumer.stop()                      # graceful: final checkpoints, leases handed over

Or ``async def process_record(event)``: awaited on the consumer's event loop (see
``kinesis_actors.aio.AsyncKinesisConsumer`` to use your own). Or with an actor that receives
``ProcessEvent`` and replies ``EventProcessed``::

    consumer = KinesisConsumer.with_processor(processor_ref, load_config(), "my-consumer")

Records the consumer skips can be kept before they are checkpointed past: ``on_skipped=`` /
``worker.onSkipped`` and ``worker.deadLetterStream`` (the dead-letter path, ``dead_letter``).

Many processes may consume one stream together: the DynamoDB lease table shares its shards.
Delivery is at least once; docs/consuming.rst says where duplicates come from.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Self

import pykka

from kinesis_actors import metrics
from kinesis_actors._actors import tell
from kinesis_actors._aws import consumer_clients, consumer_producer_client
from kinesis_actors._config import ConsumerConf, KplConf, load_config, resolve_consumer_conf
from kinesis_actors._consumer.dead_letter import (
    DeadLetter,
    DeadLetterStream,
    OnSkipped,
    chain,
    user_handler,
)
from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.manager import RecordProcessingManager, StopConsumer
from kinesis_actors._consumer.processor import ProcessRecord, event_processor
from kinesis_actors._consumer.stream_consumer import (
    deregister_stream_consumer,
    ensure_stream_consumer,
)
from kinesis_actors._errors import ConfigError, FanoutError, KinesisActorsError
from kinesis_actors._exit import CONSUMERS, at_exit
from kinesis_actors._leases.coordinator import LeaseCoordinator, Subscriber
from kinesis_actors._leases.lease import LeaseEvent
from kinesis_actors._logging import get_logger
from kinesis_actors._producer import KinesisProducer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient
    from pyhocon import ConfigTree

    from kinesis_actors._consumer.coordination import Coordinator

__all__ = ["CoordinatorFactory", "KinesisConsumer"]

#: Builds the lease coordinator: (conf, kinesis, dynamodb, subscriber) -> coordinator.
CoordinatorFactory = Callable[
    [ConsumerConf, "KinesisClient", "DynamoDBClient | None", Subscriber], "Coordinator"
]

#: Time beyond ``worker.shutdownTimeoutSeconds`` that ``stop()`` waits for the lease hand-off.
_STOP_MARGIN = 5.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _lease_coordinator(
    conf: ConsumerConf,
    kinesis: KinesisClient,
    dynamodb: DynamoDBClient | None,
    subscriber: Subscriber,
) -> Coordinator:
    if dynamodb is None:
        raise ValueError("the lease coordinator needs a DynamoDB client")
    return LeaseCoordinator.from_consumer_conf(
        conf, kinesis=kinesis, dynamodb=dynamodb, subscriber=subscriber
    )


class _Forward:
    """The coordinator's subscriber: forwards lease events to the manager once it exists."""

    def __init__(self) -> None:
        self.ref: pykka.ActorRef[Any] | None = None

    def __call__(self, event: LeaseEvent) -> None:
        tell(self.ref, event)


class KinesisConsumer:
    """Consumes one stream; ``start()`` once, ``stop()`` any number of times.

    ``process_record`` is a function (see `RecordProcessor` for its contract), an ``async def``
    function, or an event-processor actor (as with `with_processor`); anything else is a
    TypeError here. Coroutines run on ``event_loop`` (AsyncKinesisConsumer passes the running
    loop), else on one loop of the consumer's own, on its own thread, for all shards.

    ``kinesis_conf`` is the loaded config (the whole tree or its ``kinesis`` block, as
    ``load_config()`` returns it), or the path of a config file (read by ``load_config``), with
    ``consumer_name`` naming the block; or a resolved `ConsumerConf`. ``kinesis`` / ``dynamodb``
    clients and ``coordinator_factory`` replace the defaults built from ``kcl`` (tests, custom
    sessions). ``on_skipped`` is called with the records the consumer skips before they are
    checkpointed past, as ``worker.onSkipped`` (docs/consuming.rst, the dead-letter path).
    """

    def __init__(
        self,
        process_record: ProcessRecord | pykka.ActorRef[Any],
        kinesis_conf: ConfigTree | ConsumerConf | str | os.PathLike[str],
        consumer_name: str | None = None,
        *,
        kinesis: KinesisClient | None = None,
        dynamodb: DynamoDBClient | None = None,
        coordinator_factory: CoordinatorFactory = _lease_coordinator,
        event_loop: asyncio.AbstractEventLoop | None = None,
        on_skipped: OnSkipped | None = None,
    ) -> None:
        self._processor = event_processor(process_record)
        if isinstance(kinesis_conf, str | os.PathLike):
            kinesis_conf = load_config(kinesis_conf)
        conf = resolve_consumer_conf(kinesis_conf, consumer_name)
        self._conf = _with_on_skipped(conf, on_skipped)
        metrics._install_for(self._conf)
        self._kinesis = kinesis
        self._dynamodb = dynamodb
        self._coordinator_factory = coordinator_factory
        self._log = get_logger(__name__).bind(
            consumer=self._conf.name, stream=self._conf.stream_name
        )
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[None] | None = None
        self._manager: pykka.ActorRef[Any] | None = None
        self._executor: BlockingExecutor | None = None
        self._dead_letter_stream: DeadLetterStream | None = None
        self._loop = ConsumerLoop(event_loop, self._conf.name)
        self._stop_requested = False
        self._previous_handlers: dict[int, Any] = {}
        #: Takes this consumer out of the interpreter-exit registry (`kinesis_actors._exit`).
        self._cancel_exit_hook: Callable[[], None] = lambda: None
        #: FANOUT with ``kcl.deregisterConsumerOnStop``: what to deregister when stopped.
        self._deregister: tuple[KinesisClient, str] | None = None

    @classmethod
    def with_processor(
        cls,
        event_processor: pykka.ActorRef[Any],
        kinesis_conf: ConfigTree | ConsumerConf | str | os.PathLike[str],
        consumer_name: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A consumer whose records go to ``event_processor`` as ``ProcessEvent``s (shared by
        all shards); it must reply ``EventProcessed`` to each message's ``reply_to``."""
        return cls(event_processor, kinesis_conf, consumer_name, **kwargs)

    @property
    def conf(self) -> ConsumerConf:
        return self._conf

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[None]:
        """Start consuming; the future completes when the consumer has stopped.

        It fails with the reason if the consumer could not start or died (a batch beyond the
        failure tolerance with ``failurePolicy = consumer`` fails it with ProcessingFailedError).
        Calling ``start()`` again returns the same future.
        """
        with self._lock:
            if self._future is not None:
                return self._future
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            future.set_running_or_notify_cancel()
            self._future = future
        try:
            self._start()
        except KinesisActorsError as exc:
            self._ended(exc)  # a known cause (e.g. no such stream): one line, no traceback
        except Exception as exc:
            self._log.exception("*** Caught throwable while starting the Kinesis consumer ***")
            self._ended(exc)
        return future

    def _start(self) -> None:
        conf = self._conf
        kinesis, dynamodb = self._kinesis, self._dynamodb
        if kinesis is None or (
            dynamodb is None and self._coordinator_factory is _lease_coordinator
        ):
            default_kinesis, default_dynamodb = consumer_clients(conf.kcl)
            kinesis, dynamodb = kinesis or default_kinesis, dynamodb or default_dynamodb
        if conf.kcl.retrieval_mode == "FANOUT":
            conf = self._with_stream_consumer(conf, kinesis)
        forward = _Forward()
        coordinator = self._coordinator_factory(conf, kinesis, dynamodb, forward)
        self._executor = BlockingExecutor(
            conf.worker.max_blocking_threads,
            conf.worker.blocking_thread_idle,
            f"kinesis-{conf.name}-blocking",
        )
        manager = RecordProcessingManager.start(
            conf,
            kinesis,
            coordinator,
            self._processor,
            self._ended,
            self._executor,
            self._loop,
            self._dead_letter(),
        )
        forward.ref = self._manager = manager
        try:
            coordinator.start()
        except BaseException:
            manager.stop()
            raise
        if conf.worker.graceful_shutdown_hook:
            self._install_hooks()
        self._log.info(
            "*** Kinesis consumer started ***",
            application=conf.application_name,
            table=conf.table_name,
        )

    def _with_stream_consumer(self, conf: ConsumerConf, kinesis: KinesisClient) -> ConsumerConf:
        """FANOUT: register the stream consumer if needed, wait until it is ACTIVE, and hand
        its ARN to the shards (``kcl.consumerArn`` of the returned conf)."""
        arn = ensure_stream_consumer(kinesis, conf)
        if conf.kcl.deregister_consumer_on_stop:
            self._deregister = (kinesis, arn)
        return dataclasses.replace(conf, kcl=dataclasses.replace(conf.kcl, consumer_arn=arn))

    def _dead_letter(self) -> DeadLetter | None:
        """The dead-letter path: the stream first (if set), then ``onSkipped`` (if set)."""
        worker, handlers = self._conf.worker, list[DeadLetter]()
        if worker.dead_letter_stream:
            producer = KinesisProducer(
                KplConf.from_config(),
                worker.dead_letter_stream,
                client=consumer_producer_client(self._conf.kcl),
            )
            self._dead_letter_stream = DeadLetterStream(producer, self._conf.stream_name)
            handlers.append(self._dead_letter_stream)
        if worker.on_skipped is not None:
            handlers.append(user_handler(worker.on_skipped))
        return chain(handlers)

    def _ended(self, error: BaseException | None) -> None:
        """The consumer stopped (called once, from the manager or a failed start)."""
        self._cancel_exit_hook()
        if self._executor is not None:
            self._executor.shutdown()
        if self._dead_letter_stream is not None:
            self._dead_letter_stream.close()
        self._loop.close()
        future = self._future
        if future is None or future.done():
            return
        if self._deregister is not None:
            kinesis, arn = self._deregister
            self._deregister = None
            try:
                deregister_stream_consumer(kinesis, arn)
            except Exception as exc:
                error = error or FanoutError(f"could not deregister stream consumer {arn}: {exc}")
        if error is None:
            self._log.info("*** Kinesis consumer completed ***")
            future.set_result(None)
        else:
            self._log.error("*** Kinesis consumer stopped on an error ***", error=repr(error))
            future.set_exception(error)

    # -- stop -----------------------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> bool:
        """Stop gracefully and wait for it; True once stopped. Idempotent.

        Other live workers first ask for the leases while the shards still process (at most
        ``kcl.leaveHandoffWaitMillis``); each shard's batch in flight is then finished or aborted,
        what was acknowledged is checkpointed, and the leases are handed over or released so
        other workers take over at once. Waits at most ``timeout`` (default
        ``worker.shutdownTimeoutSeconds`` plus the hand-over wait and a few seconds).
        """
        with self._lock:
            future, manager = self._future, self._manager
            first = not self._stop_requested
            self._stop_requested = True
        if future is None:
            return True
        if first:
            tell(manager, StopConsumer())
        else:
            self._log.warning("Shutdown attempted twice")
        if timeout is None:
            wait = self._conf.worker.shutdown_timeout + self._conf.kcl.leave_handoff_wait
            wait += _STOP_MARGIN
        else:
            wait = timeout
        done, _ = concurrent.futures.wait([future], timeout=wait)
        if done:
            self._log.info("*** Shutdown for Kinesis Consumer completed ***")
        else:
            self._log.error("*** Shutdown for Kinesis Consumer failed: timed out ***", wait=wait)
        self._restore_signal_handlers()
        return bool(done)

    # -- shutdown hooks -------------------------------------------------------------------------

    def _install_hooks(self) -> None:
        self._cancel_exit_hook = at_exit(self.stop, CONSUMERS)
        if threading.current_thread() is not threading.main_thread():
            self._log.debug("signal hooks need the main thread; only the exit hook is installed")
            return
        for signum in _SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._log.info("signal received: stopping the consumer", signal=signal.Signals(signum).name)
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        self.stop()
        # Then do what the signal would have done without us.
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signum)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in list(self._previous_handlers.items()):
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
            del self._previous_handlers[signum]


def _with_on_skipped(conf: ConsumerConf, on_skipped: OnSkipped | None) -> ConsumerConf:
    """``conf`` with the ``on_skipped`` argument as ``worker.onSkipped`` (set one, not both)."""
    if on_skipped is None:
        return conf
    if not callable(on_skipped):
        raise TypeError(
            "on_skipped must be a function called as on_skipped(events, shard_id, reason, errors); "
            f"got {type(on_skipped).__name__} {on_skipped!r:.80}"
        )
    if conf.worker.on_skipped is not None:
        raise ConfigError(
            f"kinesis.{conf.name}.worker.onSkipped",
            "is set, and KinesisConsumer(on_skipped=...) was given too: set one of the two",
        )
    return dataclasses.replace(conf, worker=dataclasses.replace(conf.worker, on_skipped=on_skipped))
