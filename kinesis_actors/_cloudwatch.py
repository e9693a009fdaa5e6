"""The CloudWatch sink: metrics buffered per interval and sent by PutMetricData on its own thread.

Publishing only adds to an in-memory statistic set under a lock (never a network call), so the
producer's and consumer's hot paths never wait for CloudWatch. A daemon thread sends each
interval's data in batches within PutMetricData's limits; when CloudWatch cannot be reached
the batch is dropped and counted (``dropped``), and the buffer is bounded (``max_buffered``
distinct series per interval, beyond which data is dropped and counted too).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kinesis_actors._logging import get_logger

__all__ = ["CLOUDWATCH_DIMENSIONS", "PRODUCER_METRICS", "CloudWatchSink"]

log = get_logger(__name__)

#: Dimension keys of the library's publications, as CloudWatch names them (the KPL's and KCL's).
CLOUDWATCH_DIMENSIONS = {
    "stream": "StreamName",
    "shard_id": "ShardId",
    "worker": "WorkerIdentifier",
    "error_code": "ErrorCode",
}
#: Metrics of the producer engine: published under the producer's namespace.
PRODUCER_METRICS = frozenset(
    {
        "UserRecordsReceived", "UserRecordsPut", "UserRecordsFailed", "UserRecordExpired",
        "KinesisRecordsPut", "PutRecordsCalls", "Retries", "Throttles", "PutRecordsLatency",
    }
)  # fmt: skip
#: PutMetricData accepts at most this many datums per call (and 1 MB; a datum here is small).
_MAX_DATUMS = 1000
_UNITS = {"PutRecordsLatency": "Seconds", "MillisBehindLatest": "Milliseconds"}
_SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


class CloudWatchSink:
    """Statistic sets per (namespace, metric, dimensions), flushed every ``interval`` seconds."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        namespace: str,
        producer_namespace: str,
        interval: float,
        max_buffered: int,
        timer: bool = True,
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
        self._thread: threading.Thread | None = None
        if timer:
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
            sorted((CLOUDWATCH_DIMENSIONS.get(k, k), str(v)) for k, v in dimensions.items())
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
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 30)
        self.flush()
