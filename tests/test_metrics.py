from __future__ import annotations

from collections.abc import Iterator

import prometheus_client
import pytest
from structlog.testing import capture_logs

from kinesis_actors import metrics


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    metrics.in_memory().reset()
    yield
    metrics.configure()
    metrics.in_memory().reset()


def test_in_memory_sink_is_the_default() -> None:
    metrics.count("UserRecordsPut", 500, stream="s", shard_id="a")
    metrics.count("UserRecordsPut", 20, stream="s", shard_id="b")
    metrics.gauge("LeasesHeld", 3, worker="w1")
    metrics.observe("PutRecordsLatency", 0.25, stream="s")
    metrics.observe("PutRecordsLatency", 0.75, stream="s")
    memory = metrics.in_memory()
    assert memory.total("UserRecordsPut") == 520
    assert memory.total("UserRecordsPut", shard_id="b") == 20
    assert memory.value("LeasesHeld", worker="w1") == 3
    snapshot = memory.snapshot()
    assert snapshot["observations"]["PutRecordsLatency{stream=s}"] == {
        "count": 2,
        "sum": 1.0,
        "max": 0.75,
    }


def test_structlog_sink_logs_each_publication() -> None:
    metrics.configure(metrics.StructlogMetrics(level="info"))
    with capture_logs() as logs:
        metrics.count("LeaseSteals", 1, worker="w2")
    published = [entry for entry in logs if entry.get("name") == "LeaseSteals"]
    assert published == [
        {
            "event": "metric",
            "kind": "count",
            "name": "LeaseSteals",
            "value": 1,
            "worker": "w2",
            "log_level": "info",
        }
    ]
    assert metrics.in_memory().total("LeaseSteals") == 1


def test_prometheus_sink_exports_counters_gauges_histograms() -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics.configure(metrics.PrometheusMetrics(registry), keep_in_memory=False)
    metrics.count("UserRecordsPut", 7, stream="s")
    metrics.count("UserRecordsPut", 3, stream="s")
    metrics.gauge("MillisBehindLatest", 1200, shard_id="shardId-0")
    metrics.observe("PutRecordsLatency", 0.1)
    assert registry.get_sample_value("kinesis_actors_user_records_put_total", {"stream": "s"}) == 10
    assert (
        registry.get_sample_value("kinesis_actors_millis_behind_latest", {"shard_id": "shardId-0"})
        == 1200
    )
    assert registry.get_sample_value("kinesis_actors_put_records_latency_count") == 1
    assert metrics.in_memory().total("UserRecordsPut") == 0  # in-memory sink was dropped
