"""The KPL/KCL metric set, published to pluggable sinks: in-memory, structlog, Prometheus.

Components publish at batch granularity (one call per PutRecords request, per GetRecords batch,
per lease-taker run), never per user record, so metrics stay off the hot path. Like structlog,
the sinks are process-wide and configured by the application (``configure``); the default is an
in-memory sink that tests, ``GetStats`` and operators can read.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kinesis_actors._logging import get_logger

__all__ = [
    "InMemoryMetrics",
    "MetricsSink",
    "PrometheusMetrics",
    "StructlogMetrics",
    "configure",
    "count",
    "gauge",
    "in_memory",
    "observe",
]

#: Every metric name the library publishes, with what it means (the KPL's and KCL's names).
METRICS: Mapping[str, str] = {
    # producer engine
    "UserRecordsReceived": "user records added to the producer",
    "UserRecordsPut": "user records confirmed by Kinesis",
    "UserRecordsFailed": "user records whose future failed (any reason)",
    "UserRecordExpired": "user records that reached RecordTtl",
    "KinesisRecordsPut": "Kinesis records (aggregates count once) confirmed",
    "PutRecordsCalls": "PutRecords requests sent",
    "Retries": "user-record retries",
    "Throttles": "user records throttled by Kinesis (ProvisionedThroughputExceeded)",
    "PutRecordsLatency": "seconds per PutRecords request",
    # consumer
    "RecordsProcessed": "user records acknowledged by the processor",
    "MillisBehindLatest": "how far a shard's reader is behind the tip, milliseconds",
    "IteratorAgeMillis": "age of the newest record of the last batch, milliseconds",
    "LeasesHeld": "leases this worker holds",
    "LeaseTakes": "leases taken (expired or released ones)",
    "LeaseSteals": "leases stolen from a busier worker",
    "LeaseLosses": "leases lost (stolen, expired, or failed renewal)",
    "CheckpointFailures": "checkpoints that failed (throttled, lease lost, ...)",
}


class MetricsSink(Protocol):
    """Where metrics go. Dimensions are short strings (stream, shard_id, error_code, worker)."""

    def count(self, name: str, value: float, dimensions: Mapping[str, str]) -> None: ...

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str]) -> None: ...

    def observe(self, name: str, value: float, dimensions: Mapping[str, str]) -> None: ...


def _key(name: str, dimensions: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(dimensions.items()))


class InMemoryMetrics:
    """Counters, last gauge values and observation summaries, readable with ``snapshot()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._observations: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    def count(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        with self._lock:
            self._counts[_key(name, dimensions)] += value

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        with self._lock:
            self._gauges[_key(name, dimensions)] = value

    def observe(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        with self._lock:
            summary = self._observations.setdefault(_key(name, dimensions), [0.0, 0.0, 0.0])
            summary[0] += 1
            summary[1] += value
            summary[2] = max(summary[2], value)

    def total(self, name: str, **dimensions: str) -> float:
        """Sum of a counter over every dimension set that includes ``dimensions``."""
        wanted = set(dimensions.items())
        with self._lock:
            return sum(
                v for (n, dims), v in self._counts.items() if n == name and wanted <= set(dims)
            )

    def value(self, name: str, **dimensions: str) -> float | None:
        """The last value of a gauge with exactly these dimensions."""
        with self._lock:
            return self._gauges.get(_key(name, dimensions))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": {_label(k): v for k, v in self._counts.items()},
                "gauges": {_label(k): v for k, v in self._gauges.items()},
                "observations": {
                    _label(k): {"count": c, "sum": s, "max": m}
                    for k, (c, s, m) in self._observations.items()
                },
            }

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._gauges.clear()
            self._observations.clear()


def _label(key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
    name, dims = key
    return name + ("{" + ",".join(f"{k}={v}" for k, v in dims) + "}" if dims else "")


class StructlogMetrics:
    """Each publication as a debug log event ``metric`` (name, value, kind, dimensions)."""

    def __init__(self, level: str = "debug") -> None:
        self._log = getattr(get_logger("kinesis_actors.metrics"), level)

    def count(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._log("metric", kind="count", name=name, value=value, **dimensions)

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._log("metric", kind="gauge", name=name, value=value, **dimensions)

    def observe(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._log("metric", kind="observe", name=name, value=value, **dimensions)


class PrometheusMetrics:
    """Counters, gauges and histograms in a ``prometheus_client`` registry (optional extra).

    Names become ``kinesis_actors_<snake_case>``; dimensions become labels.
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "PrometheusMetrics needs: pip install 'kinesis-actors[prometheus]'"
            ) from exc
        self._client = prometheus_client
        self._registry = registry if registry is not None else prometheus_client.REGISTRY
        self._metrics: dict[tuple[str, str, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()

    def _metric(self, kind: str, name: str, labels: Iterable[str]) -> Any:
        label_names = tuple(sorted(labels))
        key = (kind, name, label_names)
        with self._lock:
            metric = self._metrics.get(key)
            if metric is None:
                factory = {
                    "count": self._client.Counter,
                    "gauge": self._client.Gauge,
                    "observe": self._client.Histogram,
                }[kind]
                metric_name = "kinesis_actors_" + _snake(name)
                metric = factory(
                    metric_name, METRICS.get(name, name), label_names, registry=self._registry
                )
                self._metrics[key] = metric
            return metric

    def _labelled(self, kind: str, name: str, dimensions: Mapping[str, str]) -> Any:
        metric = self._metric(kind, name, dimensions)
        return metric.labels(**dimensions) if dimensions else metric

    def count(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._labelled("count", name, dimensions).inc(value)

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._labelled("gauge", name, dimensions).set(value)

    def observe(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        self._labelled("observe", name, dimensions).observe(value)


def _snake(name: str) -> str:
    out = []
    for index, char in enumerate(name):
        if char.isupper() and index and not name[index - 1].isupper():
            out.append("_")
        out.append(char.lower())
    return "".join(out)


_in_memory = InMemoryMetrics()
_sinks: tuple[MetricsSink, ...] = (_in_memory,)


def configure(*sinks: MetricsSink, keep_in_memory: bool = True) -> None:
    """Publish to ``sinks`` from now on (the in-memory sink stays unless told otherwise)."""
    global _sinks
    _sinks = ((_in_memory,) if keep_in_memory else ()) + tuple(sinks)


def in_memory() -> InMemoryMetrics:
    """The process-wide in-memory sink."""
    return _in_memory


def count(name: str, value: float = 1, **dimensions: str) -> None:
    for sink in _sinks:
        sink.count(name, value, dimensions)


def gauge(name: str, value: float, **dimensions: str) -> None:
    for sink in _sinks:
        sink.gauge(name, value, dimensions)


def observe(name: str, value: float, **dimensions: str) -> None:
    for sink in _sinks:
        sink.observe(name, value, dimensions)
