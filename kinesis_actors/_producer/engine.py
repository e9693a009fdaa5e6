"""KinesisProducer: a native Python KPL. Buffer, aggregate, rate-limit, collect, put, retry.

Threads: callers only validate and enqueue (``add_user_record`` never touches the network); one
engine thread owns the pipeline state, so the hot path takes no lock; PutRecords and ListShards
calls run on a pool of ``MaxConnections`` threads and hand their outcome back to the engine.
Futures are resolved on the engine thread: their callbacks must be quick.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyhocon import ConfigTree

from kinesis_actors import metrics
from kinesis_actors._aws import producer_client
from kinesis_actors._config import KplConf, ProducerConf, resolve_producer_conf
from kinesis_actors._errors import InvalidRecordError, ProducerStoppedError
from kinesis_actors._exit import ENGINES, at_exit
from kinesis_actors._lifecycle import StoppedOnExit
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.call_pool import CallPool
from kinesis_actors._producer.futures import FinishedSink, RecordFuture
from kinesis_actors._producer.pipeline import Pipeline, PutRequest
from kinesis_actors._producer.records import UserRecord, validate
from kinesis_actors._producer.retrier import error_code
from kinesis_actors._producer.shard_map import ShardMap, list_shards

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardTypeDef

    from kinesis_actors._models import UserRecordResult

__all__ = ["STOPPED", "EngineStats", "KinesisProducer"]

#: Metric name -> pipeline counter, published as deltas (the KPL's metric names).
_PUBLISHED_COUNTERS = (
    ("UserRecordsReceived", "user_records_received"),
    ("UserRecordsPut", "user_records_put"),
    ("UserRecordsFailed", "user_records_failed"),
    ("UserRecordExpired", "user_records_expired"),
    ("KinesisRecordsPut", "kinesis_records_put"),
    ("PutRecordsCalls", "put_records_calls"),
    ("Retries", "user_record_retries"),
    ("Throttles", "throttled_records"),
)

#: Error code of records still unfinished when ``stop(timeout)`` ran out of time.
STOPPED = "Stopped"


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the producer's counters (the KPL's metrics, without CloudWatch).

    ``user_records_failed`` includes the expired ones; ``invalid_user_records`` are records that
    failed validation and never entered the pipeline; ``throttled_records`` counts Kinesis
    records refused with ProvisionedThroughputExceededException.
    """

    user_records_received: int
    user_records_put: int
    user_records_failed: int
    user_records_expired: int
    invalid_user_records: int
    user_record_retries: int
    kinesis_records_put: int
    kinesis_bytes_put: int
    put_records_calls: int
    put_records_call_errors: int
    throttled_records: int
    wrong_shard_records: int
    outstanding_records: int


class KinesisProducer(StoppedOnExit):
    """Puts user records to one stream the way the KPL does, each with its own future.

    Build it from a ``ProducerConf`` or, like the Scala ``KinesisProducerKPL``, from a ``kpl``
    block (HOCON tree, dict or ``KplConf``) and a stream name. ``client`` replaces the boto3
    client made from the ``kpl`` settings (it must not retry by itself). A future resolves to a
    ``UserRecordResult`` or fails with ``UserRecordFailedError`` (every attempt attached) or,
    for a record that breaks a limit, with an ``InvalidRecordError``. Callers must apply
    back-pressure themselves by polling ``outstanding_records_count``, and must call ``stop``
    (or use ``with``). One never stopped is stopped at interpreter exit: it flushes for at most
    ``ExitFlushTimeout``, fails what is left with error code "Stopped" and logs one warning.
    """

    def __init__(
        self,
        config: ProducerConf | KplConf | ConfigTree | Mapping[str, Any],
        stream_name: str | None = None,
        *,
        client: KinesisClient | None = None,
    ) -> None:
        conf = resolve_producer_conf(config, stream_name=stream_name)
        self._kpl, self.stream_name, self._stream = conf.kpl, conf.stream_name, conf.stream
        metrics._install_for(conf)
        kpl = self._kpl
        self._log = get_logger(__name__).bind(stream=self.stream_name)
        self._client = client if client is not None else producer_client(kpl)
        self._clock = time.monotonic
        self._pipeline = Pipeline(kpl, ShardMap(), self._log)
        self._max_size = kpl.max_user_record_size
        self._ttl = kpl.record_ttl
        # A deadline is never later than the expiration.
        self._deadline_offset = min(kpl.record_max_buffered_time, kpl.record_ttl)
        self._max_connections = kpl.max_connections
        # Caller -> engine: new records, and outcomes of pool calls as callables of "now".
        self._input: deque[UserRecord] = deque()
        self._outcomes: deque[Callable[[float], None]] = deque()
        self._wake = threading.Event()
        self._progress = threading.Event()
        self._flush_requests = 0
        # Records the engine has taken off ``_input`` but not yet handed to the pipeline.
        self._in_transfer = 0
        self._in_flight = 0
        self._invalid = 0
        self._published: dict[str, int] = {}
        self._invalid_lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._stopping = False
        self._stop_deadline = float("inf")
        self._closed = False
        self._failure: BaseException | None = None
        self._executor = CallPool(kpl.max_connections, f"kinesis-producer-{self.stream_name}")
        #: How long a producer nobody stopped flushes at interpreter exit (``ExitFlushTimeout``).
        self.exit_flush_timeout = kpl.exit_flush_timeout
        #: Seconds between two log lines of one repeated failure (``LogSummaryInterval``).
        self.log_summary_interval = kpl.log_summary_interval
        self._engine = threading.Thread(
            target=self._run, name=f"kinesis-producer-engine-{self.stream_name}", daemon=True
        )
        self._engine.start()
        self._cancel_exit_hook = at_exit(self._stop_at_exit, ENGINES)
        self._log.info(
            "producer started",
            aggregation=kpl.aggregation_enabled,
            max_connections=kpl.max_connections,
            record_max_buffered_time=kpl.record_max_buffered_time,
            record_ttl=kpl.record_ttl,
        )

    # -- public API ------------------------------------------------------------------------------

    def add_user_record(
        self, event: ProducerEvent, *, sink: FinishedSink | None = None, tag: object = None
    ) -> Future[UserRecordResult]:
        """Queue one record; thread-safe and never blocks on the network.

        Raises ``ProducerStoppedError`` once ``stop`` was called. A record that breaks a limit
        gets a future failed with the matching ``InvalidRecordError``; nothing else is affected.
        For adapters that move results to another thread (``AsyncKinesisProducer``): ``sink``
        is called with finished futures, a batch at a time, instead of a done callback per
        future (on the engine thread, or on the caller's for an invalid record); each future
        carries ``tag`` as its ``tag`` attribute.
        """
        if type(event) is not ProducerEvent and not isinstance(event, ProducerEvent):
            raise TypeError(f"add_user_record expects a ProducerEvent, got {type(event).__name__}")
        if self._stopping:
            raise ProducerStoppedError(self._stopped_message())
        future = RecordFuture(sink, tag)
        try:
            hash_key, size = validate(
                event.partition_key, event.explicit_hash_key, event.data, self._max_size
            )
        except InvalidRecordError as exc:
            with self._invalid_lock:
                self._invalid += 1
            future.set_exception(exc)
            return future
        now = self._clock()
        self._input.append(
            UserRecord(
                event.partition_key,
                event.explicit_hash_key,
                event.data,
                hash_key,
                size,
                future,
                now,
                now + self._deadline_offset,
                now + self._ttl,
            )
        )
        if not self._wake.is_set():
            self._wake.set()
        if self._closed:  # raced with stop(): the engine may be gone
            self._fail_unsent()
        return future

    def add_user_records(
        self, events: Sequence[ProducerEvent], tags: Sequence[object], sink: FinishedSink
    ) -> list[RecordFuture]:
        """Queue many records at once, each with its tag, all finishing through ``sink``: the
        bulk entry of adapters that gather records first (``AsyncKinesisProducer``,
        ``KinesisProducerActor``), one clock read and at most one wake-up for the lot. Returns
        the records' futures, in order. Raises ``ProducerStoppedError`` once ``stop`` was
        called (then none is queued); a record that breaks a limit reaches ``sink`` failed
        with its ``InvalidRecordError``, on the caller's thread.
        """
        if self._stopping:
            raise ProducerStoppedError(self._stopped_message())
        now = self._clock()
        deadline = now + self._deadline_offset
        expiration = now + self._ttl
        max_size = self._max_size
        append = self._input.append
        futures: list[RecordFuture] = []
        for event, tag in zip(events, tags, strict=True):
            future = RecordFuture(sink, tag)
            futures.append(future)
            try:
                if type(event) is not ProducerEvent and not isinstance(event, ProducerEvent):
                    raise TypeError(f"expected a ProducerEvent, got {type(event).__name__}")
                partition_key, explicit_hash_key, data = (
                    event.partition_key,
                    event.explicit_hash_key,
                    event.data,
                )
                hash_key, size = validate(partition_key, explicit_hash_key, data, max_size)
            except (InvalidRecordError, TypeError) as exc:
                if isinstance(exc, InvalidRecordError):
                    with self._invalid_lock:
                        self._invalid += 1
                future.set_exception(exc)
                continue
            append(
                UserRecord(
                    partition_key,
                    explicit_hash_key,
                    data,
                    hash_key,
                    size,
                    future,
                    now,
                    deadline,
                    expiration,
                )
            )
        if not self._wake.is_set():
            self._wake.set()
        if self._closed:  # raced with stop(): the engine may be gone
            self._fail_unsent()
        return futures

    def outstanding_records_count(self) -> int:
        """Records added and not yet finished: the back-pressure signal (KPL semantics).

        May overcount for an instant while records move between threads, never undercounts.
        """
        # Order matters: a record leaves ``_input`` only after it is counted in ``_in_transfer``.
        return len(self._input) + self._in_transfer + self._pipeline.pending

    def flush(self) -> None:
        """Send everything buffered now, without waiting for deadlines (rate limits still apply)."""
        self._flush_requests += 1
        self._wake.set()

    def flush_sync(self, timeout: float | None = None) -> bool:
        """Flush until nothing is outstanding; False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.outstanding_records_count() > 0:
            if not self._engine.is_alive():
                return False
            wait = 0.5
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            self._progress.clear()
            self.flush()
            self._progress.wait(wait)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Flush, wait for every record to finish, then release all threads.

        Waits at most ``timeout`` seconds (default: RecordTtl plus one request's connect and
        read timeouts, by which every record has expired); records still unfinished then fail
        with error code "Stopped". A request already on the wire may add up to its timeout.
        Called from a future's callback (the engine thread), it only starts the stop.
        """
        self._cancel_exit_hook()
        with self._lifecycle:
            if not self._stopping:
                budget = timeout
                if budget is None:
                    budget = self._ttl + self._kpl.connect_timeout + self._kpl.request_timeout
                self._stop_deadline = self._clock() + budget
                self._stopping = True
                self._log.info("producer stopping", outstanding=self.outstanding_records_count())
        self._wake.set()
        if threading.current_thread() is not self._engine:
            self._engine.join()

    def _stop_at_exit(self) -> None:
        """The exit hook: flush within the exit bound, fail the rest, say so once."""
        if self._stopping:
            return  # stopped meanwhile (by the actor that owns it, or the engine failed)
        before = self._pipeline.stats
        put, failed = before.user_records_put, before.user_records_failed
        outstanding = self.outstanding_records_count()
        self.stop(timeout=self.exit_flush_timeout)
        stats = self._pipeline.stats
        self._log.warning(
            "producer was never stopped: flushed at interpreter exit",
            outstanding_at_exit=outstanding,
            put_at_exit=stats.user_records_put - put,
            failed_at_exit=stats.user_records_failed - failed,
            exit_flush_timeout=self.exit_flush_timeout,
        )

    @property
    def destroyed(self) -> bool:
        """True once ``stop`` finished: no thread of this producer is left."""
        return self._closed

    def stats(self) -> EngineStats:
        """A snapshot of the counters; cheap, no lock on the hot path."""
        s = self._pipeline.stats
        return EngineStats(
            user_records_received=s.user_records_received,
            user_records_put=s.user_records_put,
            user_records_failed=s.user_records_failed,
            user_records_expired=s.user_records_expired,
            invalid_user_records=self._invalid,
            user_record_retries=s.user_record_retries,
            kinesis_records_put=s.kinesis_records_put,
            kinesis_bytes_put=s.kinesis_bytes_put,
            put_records_calls=s.put_records_calls,
            put_records_call_errors=s.put_records_call_errors,
            throttled_records=s.throttled_records,
            wrong_shard_records=s.wrong_shard_records,
            outstanding_records=self.outstanding_records_count(),
        )

    # -- engine thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self._failure = exc
            self._stopping = True
            self._log.exception("producer engine failed; every outstanding record fails")
            self._pipeline.fail_all(
                "EngineFailure", f"producer engine failed: {exc!r}", self._clock()
            )
        finally:
            self._executor.shutdown()
            self._closed = True
            self._fail_unsent()
            self._progress.set()
            self._publish_metrics()
            self._pipeline.flush_logs()
            stats = self._pipeline.stats
            self._log.info(
                "producer stopped",
                user_records_put=stats.user_records_put,
                user_records_failed=stats.user_records_failed,
            )

    def _publish_metrics(self) -> None:
        """Publish what changed since the last call: once per batch of outcomes, not per record."""
        stats = self._pipeline.stats
        for name, attribute in _PUBLISHED_COUNTERS:
            value = getattr(stats, attribute)
            delta = value - self._published.get(name, 0)
            if delta:
                self._published[name] = value
                metrics.count(name, delta, stream=self.stream_name)

    def _loop(self) -> None:
        pipeline = self._pipeline
        shard_map = pipeline.shard_map
        pending_input = self._input
        outcomes = self._outcomes
        wake = self._wake
        clock = self._clock
        stats = pipeline.stats
        finished = 0
        flushed = 0
        while True:
            now = clock()
            if outcomes:
                while outcomes:
                    outcomes.popleft()(now)
                    self._in_flight -= 1
                self._publish_metrics()
            count = len(pending_input)
            if count:
                self._in_transfer = count
                records = [pending_input.popleft() for _ in range(count)]
                pipeline.accept(records, now)
                self._in_transfer = 0
            # A counter, not a flag: a flush() racing with this read is never lost.
            requested = self._flush_requests
            pipeline.poll(now, flush=requested != flushed or self._stopping)
            flushed = requested
            if shard_map.refresh_due(now) and self._in_flight < self._max_connections:
                shard_map.begin_update()
                self._submit(self._refresh_shard_map)
            free = self._max_connections - self._in_flight
            if free > 0 and pipeline.has_ready_requests:
                for request in pipeline.take_requests(free):
                    self._submit(functools.partial(self._put, request))
            if stats.user_records_put + stats.user_records_failed != finished:
                finished = stats.user_records_put + stats.user_records_failed
                self._progress.set()
            if self._stopping:
                if pipeline.pending == 0 and not pending_input and self._in_flight == 0:
                    return
                if now >= self._stop_deadline:
                    failed = pipeline.fail_all(
                        STOPPED, "the producer stopped before the record was put", now
                    )
                    self._log.warning("stop timed out; unfinished records failed", records=failed)
                    return
            wake_at = pipeline.next_wakeup(now)
            retry_at = shard_map.next_refresh()
            if retry_at is not None and self._in_flight < self._max_connections:
                wake_at = retry_at if wake_at is None else min(wake_at, retry_at)
            if self._stopping:
                wake_at = (
                    self._stop_deadline if wake_at is None else min(wake_at, self._stop_deadline)
                )
            wake.wait(None if wake_at is None else max(0.0, wake_at - clock()))
            wake.clear()

    def _submit(self, job: Callable[[], None]) -> None:
        self._in_flight += 1
        self._executor.submit(job)

    def _deliver(self, outcome: Callable[[float], None]) -> None:
        """Pool thread -> engine: queue an outcome and wake the engine."""
        self._outcomes.append(outcome)
        self._wake.set()

    # -- pool threads ----------------------------------------------------------------------------

    def _put(self, request: PutRequest) -> None:
        start = self._clock()
        try:
            response = self._client.put_records(
                **self._stream.request_args(), Records=request.entries
            )
        except Exception as exc:
            outcome = functools.partial(
                self._pipeline.on_response, request, None, exc, start, self._clock()
            )
        else:
            outcome = functools.partial(
                self._pipeline.on_response, request, response, None, start, self._clock()
            )
        metrics.observe("PutRecordsLatency", self._clock() - start, stream=self.stream_name)
        self._deliver(outcome)

    def _refresh_shard_map(self) -> None:
        try:
            shards = list_shards(self._client, self._stream)
        except Exception as exc:
            self._deliver(functools.partial(self._shard_map_failed, exc))
        else:
            self._deliver(functools.partial(self._shard_map_updated, shards))

    def _shard_map_updated(self, shards: list[ShardTypeDef], now: float) -> None:
        shard_map = self._pipeline.shard_map
        shard_map.update(shards, now)
        self._log.info("shard map updated", open_shards=len(shard_map.lookup_tables[0]))

    def _shard_map_failed(self, error: Exception, now: float) -> None:
        code, message = error_code(error)
        backoff = self._pipeline.shard_map.update_failed(now)
        self._log.warning(
            "ListShards failed; records go unaggregated until the shard map is back",
            error_code=code,
            error_message=message,
            retry_in=backoff,
        )

    # -- stopping --------------------------------------------------------------------------------

    def _stopped_message(self) -> str:
        reason = f" (engine failed: {self._failure!r})" if self._failure else ""
        return f"producer for stream {self.stream_name!r} is stopped{reason}; no records accepted"

    def _fail_unsent(self) -> None:
        """Fail records that were queued after the engine exited (a race with ``stop``)."""
        while True:
            try:
                record = self._input.popleft()
            except IndexError:
                return
            record.future.set_exception(ProducerStoppedError(self._stopped_message()))
