"""The CloudWatch sink: metrics buffered per interval and sent by PutMetricData on its own thread.

Publishing only adds to an in-memory statistic set under a lock (never a network call), so the
producer's and consumer's hot paths never wait for CloudWatch. A daemon thread sends each
interval's data in batches within PutMetricData's limits; when CloudWatch cannot be reached
the batch is dropped and counted (``dropped``), and the buffer is bounded (``max_buffered``
distinct series per interval, beyond which data is dropped and counted too).
:class:`CloudWatchMetrics` (public as ``kinesis_actors.metrics.CloudWatchMetrics``) applies the
level and the kept dimensions; :class:`CloudWatchBuffer` holds the statistic sets and the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kinesis_actors._logging import get_logger
from kinesis_actors._metric_names import PRODUCER_METRICS, level_rank, metric_level

__all__ = ["CloudWatchBuffer", "CloudWatchMetrics"]

log = get_logger(__name__)

#: Dimension keys of the library's publications, as CloudWatch names them (the KPL's and KCL's).
_CLOUDWATCH_DIMENSIONS = {
    "stream": "StreamName",
    "shard_id": "ShardId",
    "worker": "WorkerIdentifier",
    "error_code": "ErrorCode",
}
#: PutMetricData accepts at most this many datums per call (and 1 MB; a datum here is small).
_MAX_DATUMS = 1000
_UNITS = {"PutRecordsLatency": "Seconds", "MillisBehindLatest": "Milliseconds"}
_SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


class CloudWatchMetrics:
    """Publishes to CloudWatch with PutMetricData, batched, on a daemon thread of its own.

    Each interval's publications are kept as statistic sets (count, sum, min, max) per metric
    and dimensions, and sent within PutMetricData's limits; publishing never waits for the
    network. When CloudWatch is unreachable a batch is dropped and counted (``dropped``); the
    buffer holds at most ``max_buffered`` series. Consumer metrics go to ``namespace`` (set it
    to the application name, as the KCL does), producer metrics to ``producer_namespace``
    (``KinesisProducerLibrary``, as the KPL). ``MillisBehindLatest`` is also published without
    its shard dimension: its Maximum is the application-wide lag. ``client`` replaces the
    CloudWatch client made from ``region`` / ``endpoint_url`` / ``session``.
    """

    def __init__(
        self,
        *,
        namespace: str = "KinesisActors",
        producer_namespace: str = "KinesisProducerLibrary",
        level: str = "DETAILED",
        dimensions: Iterable[str] | None = None,
        interval: float = 60.0,
        max_buffered: int = 10_000,
        client: Any = None,
        session: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        for value in (namespace, producer_namespace):
            if not value or value.startswith("AWS/"):
                raise ValueError(f"namespace {value!r} must be non-empty and not start with AWS/")
        if not interval > 0 or max_buffered < 1:
            raise ValueError("interval must be > 0 and max_buffered >= 1")
        self._level = level_rank(level)
        self._dimensions = frozenset(dimensions) if dimensions is not None else None

        def make_client() -> Any:
            if client is not None:
                return client
            from kinesis_actors._aws import client_config, new_client

            config = client_config(tries=1, connect_timeout=5.0, read_timeout=10.0)
            return new_client(
                "cloudwatch",
                session=session,
                region=region,
                endpoint_url=endpoint_url,
                config=config,
            )

        self._sink = CloudWatchBuffer(
            make_client,
            namespace=namespace,
            producer_namespace=producer_namespace,
            interval=interval,
            max_buffered=max_buffered,
        )

    @property
    def dropped(self) -> int:
        """Data points dropped because CloudWatch was unreachable or the buffer full."""
        return self._sink.dropped

    @property
    def sent(self) -> int:
        """Data points (statistic sets) CloudWatch accepted."""
        return self._sink.sent

    def _publish(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        if level_rank(metric_level(name)) > self._level:
            return
        if self._dimensions is not None:
            dimensions = {k: v for k, v in dimensions.items() if k in self._dimensions}
        self._sink.add(name, value, dimensions)

    count = gauge = observe = _publish

    def flush(self) -> None:
        """Send what is buffered now, on the caller's thread."""
        self._sink.flush()

    def close(self) -> None:
        """Flush and stop the sending thread."""
        self._sink.close()


class CloudWatchBuffer:
    """Statistic sets per (namespace, metric, dimensions), flushed every ``interval`` seconds."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        namespace: str,
        producer_namespace: str,
        interval: float,
        max_buffered: int,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._namespace = namespace
        self._producer_namespace = producer_namespace
        self._max_buffered = max_buffered
        self._lock = threading.Lock()
        self._series: dict[_SeriesKey, list[float]] = {}
        self._dropped = 0
        self._sent = 0
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(
            target=self._run, name="kinesis-actors-cloudwatch", daemon=True
        )
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Data points dropped: CloudWatch unreachable or refusing, or the buffer full."""
        with self._lock:
            return self._dropped

    @property
    def sent(self) -> int:
        """Data points (statistic sets) CloudWatch accepted."""
        with self._lock:
            return self._sent

    def add(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        namespace = self._producer_namespace if name in PRODUCER_METRICS else self._namespace
        dims = tuple(
            sorted((_CLOUDWATCH_DIMENSIONS.get(k, k), str(v)) for k, v in dimensions.items())
        )
        with self._lock:
            self._add(namespace, name, dims, value)
            if name == "MillisBehindLatest" and dims:
                self._add(namespace, name, (), value)  # the application-wide maximum

    def _add(
        self, namespace: str, name: str, dims: tuple[tuple[str, str], ...], value: float
    ) -> None:
        key = (namespace, name, dims)
        stats = self._series.get(key)
        if stats is None:
            if len(self._series) >= self._max_buffered:
                self._dropped += 1
                return
            self._series[key] = [1.0, value, value, value]  # count, sum, min, max
            return
        stats[0] += 1
        stats[1] += value
        stats[2] = min(stats[2], value)
        stats[3] = max(stats[3], value)

    def flush(self) -> None:
        """Send what is buffered now (on the caller's thread), in batches."""
        with self._send_lock:
            with self._lock:
                series, self._series = self._series, {}
            if not series:
                return
            now = datetime.now(UTC)
            by_namespace: dict[str, list[dict[str, Any]]] = {}
            for (namespace, name, dims), (count, total, low, high) in series.items():
                datum: dict[str, Any] = {
                    "MetricName": name,
                    "Timestamp": now,
                    "StatisticValues": {
                        "SampleCount": count,
                        "Sum": total,
                        "Minimum": low,
                        "Maximum": high,
                    },
                    "Unit": _UNITS.get(name, "Count"),
                }
                if dims:
                    datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in dims]
                by_namespace.setdefault(namespace, []).append(datum)
            for namespace, datums in by_namespace.items():
                for start in range(0, len(datums), _MAX_DATUMS):
                    self._send(namespace, datums[start : start + _MAX_DATUMS])

    def _send(self, namespace: str, datums: list[dict[str, Any]]) -> None:
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.put_metric_data(Namespace=namespace, MetricData=datums)
        except Exception as exc:  # any failure: drop and count, never raise into the caller
            with self._lock:
                self._dropped += len(datums)
                dropped = self._dropped
            log.warning(
                "CloudWatch metrics dropped",
                count=len(datums),
                dropped_total=dropped,
                error=str(exc)[:200],
            )
            return
        with self._lock:
            self._sent += len(datums)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 30)
        self.flush()
