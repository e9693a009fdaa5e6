"""The KPL/KCL metric set, published to pluggable sinks: in-memory, structlog, Prometheus,
CloudWatch.

Components publish at batch granularity (one call per PutRecords request, per GetRecords batch,
per lease-taker run), never per user record, so metrics stay off the hot path. Like structlog,
the sinks are process-wide and configured by the application (``configure``); the default is an
in-memory sink that tests, ``GetStats`` and operators can read.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from kinesis_actors._cloudwatch import CloudWatchMetrics
from kinesis_actors._logging import get_logger
from kinesis_actors._metric_names import METRICS, level_rank, metric_level

__all__ = [
    "CloudWatchMetrics",
    "InMemoryMetrics",
    "MetricsSink",
    "PrometheusMetrics",
    "StructlogMetrics",
    "configure",
    "count",
    "dimensions_for",
    "gauge",
    "in_memory",
    "observe",
]

#: The KCL's dimension names, and the KPL's granularities, as the library's dimension keys.
_KCL_DIMENSIONS = {"ShardId": "shard_id", "WorkerIdentifier": "worker", "Operation": None}
_GRANULARITY = {
    "global": frozenset({"error_code", "worker"}),
    "stream": frozenset({"error_code", "worker", "stream"}),
    "shard": None,
}


def dimensions_for(setting: str | Iterable[str]) -> frozenset[str] | None:
    """The dimension keys kept for a KPL ``MetricsGranularity`` (global, stream, shard) or a
    KCL ``metricsEnabledDimensions`` list (Operation, ShardId, WorkerIdentifier, ALL);
    None means all of them."""
    if isinstance(setting, str):
        if setting.lower() not in _GRANULARITY:
            raise ValueError(f"{setting!r} is not one of global, stream, shard")
        return _GRANULARITY[setting.lower()]
    names = set(setting)
    if "ALL" in names:
        return None
    unknown = names - set(_KCL_DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown metric dimensions {sorted(unknown)} (known: {_KCL_DIMENSIONS})")
    kept = {_KCL_DIMENSIONS[name] for name in names} - {None}
    return frozenset({"stream", "error_code"} | {key for key in kept if key})


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


class _Filtered:
    """A sink behind a level and a set of kept dimension keys."""

    def __init__(self, sink: MetricsSink, level: int, dimensions: frozenset[str] | None) -> None:
        self.sink, self._level, self._dimensions = sink, level, dimensions

    def _pass(self, name: str, dimensions: Mapping[str, str]) -> Mapping[str, str] | None:
        if level_rank(metric_level(name)) > self._level:
            return None
        if self._dimensions is None:
            return dimensions
        return {k: v for k, v in dimensions.items() if k in self._dimensions}

    def count(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        if (kept := self._pass(name, dimensions)) is not None:
            self.sink.count(name, value, kept)

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        if (kept := self._pass(name, dimensions)) is not None:
            self.sink.gauge(name, value, kept)

    def observe(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        if (kept := self._pass(name, dimensions)) is not None:
            self.sink.observe(name, value, kept)


_in_memory = InMemoryMetrics()
_sinks: tuple[MetricsSink, ...] = (_in_memory,)


def configure(
    *sinks: MetricsSink,
    keep_in_memory: bool = True,
    level: str = "DETAILED",
    dimensions: Iterable[str] | None = None,
) -> None:
    """Publish to ``sinks`` from now on (the in-memory sink stays unless told otherwise).

    ``level`` (NONE, SUMMARY, DETAILED) and ``dimensions`` (the dimension keys kept, e.g.
    ``dimensions_for("stream")`` or ``dimensions_for(["ShardId"])``; None keeps all) apply to
    ``sinks``; the in-memory sink always sees everything (``GetStats`` reads it).
    """
    global _sinks
    rank = level_rank(level)
    kept = frozenset(dimensions) if dimensions is not None else None
    wrapped = tuple(
        sink if rank == level_rank("DETAILED") and kept is None else _Filtered(sink, rank, kept)
        for sink in sinks
    )
    _sinks = ((_in_memory,) if keep_in_memory else ()) + wrapped


_installed: dict[tuple[Any, ...], CloudWatchMetrics] = {}
_install_lock = threading.Lock()


def _install_cloudwatch(key: tuple[Any, ...], make: Callable[[], CloudWatchMetrics]) -> None:
    """Add the CloudWatch sink ``key`` names unless this process has it (config-installed)."""
    global _sinks
    with _install_lock:
        if key not in _installed:
            _installed[key] = make()
            _sinks = (*_sinks, _installed[key])


def _install_for(conf: Any) -> None:
    """Install the sink a ``ProducerConf`` / ``ConsumerConf`` asks for (``MetricsSink`` /
    ``metricsSink``); the entry points call it. Idempotent per namespace and settings."""
    from kinesis_actors._aws import session_for
    from kinesis_actors._config import ConsumerConf, ProducerConf
    from kinesis_actors._config._credentials import AssumeRoleConf

    sink: Callable[..., CloudWatchMetrics]
    credentials: tuple[tuple[str, ...], str | None, AssumeRoleConf | None]
    if isinstance(conf, ProducerConf) and conf.kpl.metrics_sink == "cloudwatch":
        kpl = conf.kpl
        key: tuple[Any, ...] = (
            "producer",
            kpl.metrics_namespace,
            kpl.metrics_level,
            kpl.metrics_granularity,
        )
        sink = partial(
            CloudWatchMetrics,
            producer_namespace=kpl.metrics_namespace,
            interval=kpl.metrics_upload_delay,
        )
        credentials = (kpl.credentials_provider, kpl.region, kpl.assume_role)
    elif isinstance(conf, ConsumerConf) and conf.kcl.metrics_sink == "cloudwatch":
        kcl = conf.kcl
        key = ("consumer", conf.application_name, kcl.metrics_level, kcl.metrics_enabled_dimensions)
        sink = partial(
            CloudWatchMetrics,
            namespace=conf.application_name,
            interval=kcl.metrics_buffer_time,
            max_buffered=kcl.metrics_max_queue_size,
        )
        own = kcl.cloudwatch_credentials_provider
        credentials = (
            (kcl.credentials_provider, kcl.region_name, kcl.assume_role)
            if own is None
            else (own, kcl.region_name, None)
        )
    else:
        return
    providers, region, assume_role = credentials
    _, _, level, dimensions = key  # both keys end in the level and the dimension setting
    _install_cloudwatch(
        key,
        lambda: sink(
            level=level,
            dimensions=dimensions_for(dimensions),
            session=session_for(providers, region, assume_role=assume_role),
        ),
    )


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
