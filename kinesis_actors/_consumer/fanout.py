"""FanoutShardReader: one leased shard read by enhanced fan-out (SubscribeToShard).

The subscription is read on a daemon thread of its own: it blocks in a socket read, so an idle
shard costs no CPU, and it never holds a slot of the consumer's executor for minutes. Each
event's records go through the same RecordDecoder as polling (resume inside an aggregate,
hash-range filter), are cut into batches of at most ``kcl.maxRecords`` and put in a bounded
buffer (``kcl.fanoutMaxBufferedBatches``); while it is full the thread reads nothing more, so
records are read no faster than batches complete. The shard worker takes batches with
:meth:`take` (never blocks) and is called back (``on_ready``) when one arrives after a ``take``
found nothing.

Positions: the first subscription starts AT_SEQUENCE_NUMBER of the lease's checkpoint (the
decoder drops what was processed) or at the initial position; every later one AFTER_SEQUENCE_NUMBER
of the last ``ContinuationSequenceNumber``. A subscription that ends (AWS: after 5 minutes) is
renewed at once; a broken one, ``ResourceInUseException`` (the shard's previous owner still
subscribed, or a re-subscribe within 5 s) and throttling are retried with a doubling backoff
from ``kcl.taskBackoffTimeMillis`` to ``kcl.fanoutMaxBackoffMillis``. The shard has ended when
an event carries ``ChildShards`` or no continuation, or when SubscribeToShard says the shard
does not exist (while the stream consumer does). A protocol-level failure ends the reader with
a :class:`SubscriptionFailed` for the shard worker (fall back to polling, or fail the shard).
:meth:`close` (lease lost, shutdown) ends the subscription at once, even mid-read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinesis_actors import metrics
from kinesis_actors._aws import (
    Subscription,
    error_code,
    is_protocol_error,
    is_transport_error,
    open_subscription,
)
from kinesis_actors._consumer.reader import ReadResult
from kinesis_actors._consumer.records import RecordDecoder
from kinesis_actors._errors import FanoutError
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import KclConf
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["FanoutShardReader", "SubscriptionFailed", "fanout_reader"]


@dataclass(frozen=True)
class SubscriptionFailed:
    """The subscription cannot go on. ``resume_after``: the sequence number of the last Kinesis
    record handed out (None: nothing was), where a polling reader takes over."""

    error: FanoutError
    protocol: bool
    resume_after: str | None


_Item = ReadResult | SubscriptionFailed


class _Closed(Exception):
    """The reader was closed while its thread waited."""


class FanoutShardReader:
    """One shard's subscription; ``start()`` once, ``take()`` from the shard worker, ``close()``
    from any thread."""

    def __init__(
        self,
        kinesis: KinesisClient,
        consumer_arn: str,
        lease: HeldLease,
        kcl: KclConf,
        on_ready: Callable[[], object],
    ) -> None:
        self._kinesis = kinesis
        self._consumer_arn = consumer_arn
        self._shard_id = lease.shard_id
        self._checkpoint = lease.checkpoint
        self._kcl = kcl
        self._on_ready = on_ready
        self._decoder = RecordDecoder(lease)
        self._log = get_logger(__name__).bind(shard_id=lease.shard_id)
        self._lock = threading.Condition()
        self._buffer: deque[_Item] = deque()
        self._wanted = False
        self._closed = False
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        #: Where the next subscription starts (AFTER it); None: at the lease's checkpoint.
        self._continuation: str | None = None
        #: The last Kinesis record put in the buffer (the polling fallback resumes after it).
        self._last_record: str | None = None
        self._ended = lease.checkpoint == Sentinel.SHARD_END

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def continuation(self) -> str | None:
        """The last ``ContinuationSequenceNumber`` received."""
        return self._continuation

    # -- the shard worker's side ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscription thread (for a shard already at SHARD_END: report the end)."""
        if self._ended:
            self._put(ReadResult((), shard_end=True))
            return
        self._thread = threading.Thread(
            target=self._run, name=f"kinesis-{self._shard_id}-subscription", daemon=True
        )
        self._thread.start()

    def take(self) -> _Item | None:
        """The next batch (consecutive buffered batches merged up to ``kcl.maxRecords``), a
        :class:`SubscriptionFailed`, or None: nothing yet, ``on_ready`` will be called."""
        with self._lock:
            if not self._buffer:
                self._wanted = True
                return None
            item = self._buffer.popleft()
            if isinstance(item, ReadResult):
                item = self._merge_following(item)
            self._lock.notify_all()
            return item

    def _merge_following(self, first: ReadResult) -> ReadResult:
        events = list(first.events)
        last = first
        while (
            not last.shard_end
            and self._buffer
            and isinstance(self._buffer[0], ReadResult)
            and len(events) + len(self._buffer[0].events) <= self._kcl.max_records
        ):
            following = self._buffer.popleft()
            assert isinstance(following, ReadResult)
            events.extend(following.events)
            last = following
        if last is first:
            return first
        return ReadResult(tuple(events), last.shard_end, child_shards=last.child_shards)

    def close(self) -> None:
        """End the subscription now (also a read blocked on the thread); idempotent."""
        with self._lock:
            self._closed = True
            subscription = self._subscription
            self._lock.notify_all()
        if subscription is not None:
            subscription.interrupt()

    # -- the subscription thread ----------------------------------------------------------------

    def _put(self, item: _Item) -> None:
        """Buffer ``item``, waiting while the buffer is full (back-pressure)."""
        with self._lock:
            while len(self._buffer) >= self._kcl.fanout_max_buffered_batches and not self._closed:
                self._lock.wait()
            if self._closed:
                raise _Closed
            self._buffer.append(item)
            notify, self._wanted = self._wanted, False
        if notify:
            self._on_ready()

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            if not self._closed:
                self._lock.wait(seconds)
            if self._closed:
                raise _Closed

    def _run(self) -> None:
        try:
            self._subscribe_until_shard_end()
        except _Closed:
            pass
        except Exception as exc:  # a bug here must still reach the shard worker
            self._log.exception("fan-out reader failed")
            self._fail(FanoutError(f"{self._shard_id}: fan-out reader failed: {exc!r}"), False)
        finally:
            self._log.debug("subscription thread ends")

    def _fail(self, error: FanoutError, protocol: bool) -> None:
        metrics.count("FanoutSubscriptionsFailed", shard_id=self._shard_id)
        try:
            self._put(SubscriptionFailed(error, protocol, self._last_record))
        except _Closed:
            pass

    def _subscribe_until_shard_end(self) -> None:
        failures = 0
        subscriptions = 0
        while True:
            if self._closed:
                raise _Closed
            request = self._request()
            try:
                subscription = open_subscription(self._kinesis, **request)
            except Exception as exc:
                failures += 1
                if not self._failed(exc, failures):
                    return
                continue
            subscriptions += 1
            metrics.count(
                "FanoutSubscriptionsRenewed" if subscriptions > 1 else "FanoutSubscriptionsOpened",
                shard_id=self._shard_id,
            )
            self._log.debug("subscribed", position=request["StartingPosition"]["Type"])
            try:
                outcome = self._read(subscription)
            except _Closed:
                raise
            except Exception as exc:
                if self._closed:  # the read was interrupted by close()
                    raise _Closed from exc
                failures += 1
                if not self._failed(exc, failures):
                    return
                continue
            finally:
                with self._lock:
                    self._subscription = None
                subscription.close()
            if outcome == "shard_end":
                return
            if outcome == "events":
                failures = 0
                continue  # the subscription's lifetime ended: renew at once
            failures += 1  # it ended before any event: don't spin
            self._backoff(failures, "subscription ended without an event")

    def _request(self) -> dict[str, Any]:
        position: dict[str, Any]
        checkpoint = self._checkpoint
        if self._continuation is not None:
            position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._continuation}
        elif isinstance(checkpoint, CompoundSequenceNumber):
            position = {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": checkpoint.sequence_number}
        elif checkpoint == Sentinel.AT_TIMESTAMP:
            position = {"Type": "AT_TIMESTAMP", "Timestamp": self._kcl.initial_timestamp}
        else:
            position = {"Type": str(checkpoint)}
        return {
            "ConsumerARN": self._consumer_arn,
            "ShardId": self._shard_id,
            "StartingPosition": position,
        }

    def _read(self, subscription: Subscription) -> str:
        """Read one subscription to its end: "shard_end", "events" or "no_events"."""
        with self._lock:
            if self._closed:
                raise _Closed
            self._subscription = subscription
        outcome = "no_events"
        for message in subscription:
            event = message.get("SubscribeToShardEvent")
            if event is None:
                continue  # a member this version does not know
            outcome = "events"
            if self._on_event(event):
                return "shard_end"
        if self._closed:
            raise _Closed
        return outcome

    def _on_event(self, event: Mapping[str, Any]) -> bool:
        """Buffer an event's records; True at the shard's end."""
        lag = event.get("MillisBehindLatest")
        if lag is not None:
            metrics.gauge("MillisBehindLatest", lag, shard_id=self._shard_id)
        records: Sequence[Mapping[str, Any]] = event.get("Records") or ()
        if records:
            self._buffer_events(self._decoder.events(records), records[-1]["SequenceNumber"])
        continuation = event.get("ContinuationSequenceNumber")
        children = event.get("ChildShards")
        if continuation is not None:
            self._continuation = continuation
        if children or continuation is None:
            # (AWS sends no continuation at the end; ministack still sends one with ChildShards.)
            self._log.info("shard end in the subscription", children=len(children or ()))
            self._end(tuple(children) if children else None)
            return True
        return False

    def _buffer_events(self, events: tuple[ConsumerEvent, ...], last_record: str) -> None:
        size = self._kcl.max_records
        for start in range(0, len(events), size):
            self._put(ReadResult(events[start : start + size], shard_end=False))
        self._last_record = last_record

    def _end(self, children: tuple[Mapping[str, Any], ...] | None) -> None:
        self._ended = True
        self._put(ReadResult((), shard_end=True, child_shards=children))

    def _backoff(self, failures: int, why: str, error: BaseException | None = None) -> None:
        delay = min(
            self._kcl.task_backoff_time * 2 ** min(failures - 1, 30), self._kcl.fanout_max_backoff
        )
        self._log.warning(
            "subscription failed; re-subscribing",
            reason=why,
            error=repr(error) if error is not None else None,
            delay=delay,
        )
        self._sleep(delay)

    def _failed(self, error: Exception, failures: int) -> bool:
        """SubscribeToShard or its event stream raised: back off and go on (True), or stop the
        reader (False). An exception event arrives as EventStreamError, a ClientError."""
        code = error_code(error)
        if code == "ResourceNotFoundException":
            return self._not_found(error)
        if is_protocol_error(error):
            self._fail(FanoutError(f"{self._shard_id}: subscription failed: {error!r}"), True)
            return False
        if code is None and not is_transport_error(error):
            raise error  # not an AWS or connection error: a bug, for the shard's supervisor
        metrics.count("FanoutSubscriptionsFailed", shard_id=self._shard_id)
        self._backoff(failures, code or type(error).__name__, error)
        return True

    def _not_found(self, error: Exception) -> bool:
        """The shard is gone (its end, as the KCL takes it), unless the stream consumer is."""
        try:
            self._kinesis.describe_stream_consumer(ConsumerARN=self._consumer_arn)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                self._fail(
                    FanoutError(f"stream consumer {self._consumer_arn} no longer exists: {error}"),
                    False,
                )
                return False
            raise
        self._log.info("shard not found: treated as shard end")
        self._end(None)
        return False


def fanout_reader(
    kinesis: KinesisClient, lease: HeldLease, kcl: KclConf, on_ready: Callable[[], object]
) -> FanoutShardReader | None:
    """The shard's reader with ``kcl.retrievalMode = FANOUT`` (None with POLLING); it calls
    ``on_ready`` (on its own thread) when a batch arrives that the shard asked for."""
    if kcl.retrieval_mode != "FANOUT":
        return None
    if kcl.consumer_arn is None:
        raise FanoutError("FANOUT without a stream consumer ARN (the consumer resolves it)")
    return FanoutShardReader(kinesis, kcl.consumer_arn, lease, kcl, on_ready)
