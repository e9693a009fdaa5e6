"""The CloudWatch sink against moto's CloudWatch, in-process: names, namespaces, dimensions per
level and granularity, batches within PutMetricData's limits, drops counted when unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kinesis_actors import metrics
from kinesis_actors.metrics import CloudWatchMetrics, InMemoryMetrics, dimensions_for


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def listed(client: Any, namespace: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = client.list_metrics(Namespace=namespace)["Metrics"]
    return {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", []))))
        for m in found
    }


def publish_sample(sink: Any) -> None:
    sink.count("UserRecordsPut", 5, {"stream": "orders", "shard_id": "shardId-1"})
    sink.count("Retries", 2, {"stream": "orders"})
    sink.count("RecordsProcessed", 7, {"shard_id": "shardId-1", "worker": "w1"})
    sink.gauge("LeasesHeld", 3, {"worker": "w1"})


def test_publishes_the_metric_set_under_the_kpl_and_kcl_namespaces(cloudwatch: Any) -> None:
    sink = CloudWatchMetrics(namespace="OrderService", client=cloudwatch)
    publish_sample(sink)
    sink.flush()
    assert listed(cloudwatch, "KinesisProducerLibrary") == {
        ("UserRecordsPut", (("ShardId", "shardId-1"), ("StreamName", "orders"))),
        ("Retries", (("StreamName", "orders"),)),
    }
    assert listed(cloudwatch, "OrderService") == {
        ("RecordsProcessed", (("ShardId", "shardId-1"), ("WorkerIdentifier", "w1"))),
        ("LeasesHeld", (("WorkerIdentifier", "w1"),)),
    }
    assert (sink.sent, sink.dropped) == (4, 0)
    sink.close()


@pytest.mark.parametrize(
    ("level", "dimensions", "expected"),
    [
        ("NONE", None, set()),
        ("SUMMARY", None, {"UserRecordsPut", "RecordsProcessed", "LeasesHeld"}),
        ("DETAILED", dimensions_for("global"), {"UserRecordsPut", "Retries"}),
    ],
)
def test_level_and_granularity(
    cloudwatch: Any, level: str, dimensions: frozenset[str] | None, expected: set[str]
) -> None:
    sink = CloudWatchMetrics(namespace="App", client=cloudwatch, level=level, dimensions=dimensions)
    publish_sample(sink)
    sink.flush()
    everything = listed(cloudwatch, "KinesisProducerLibrary") | listed(cloudwatch, "App")
    if level == "DETAILED":  # global: no stream or shard dimension survives
        producer = listed(cloudwatch, "KinesisProducerLibrary")
        assert {name for name, _ in producer} == expected
        assert all(dims == () for _, dims in producer)
    else:
        assert {name for name, _ in everything} == expected
    sink.close()


def test_kcl_dimension_names_select_dimensions() -> None:
    assert dimensions_for(["Operation", "ShardId"]) == {"stream", "error_code", "shard_id"}
    assert dimensions_for(["ALL"]) is None
    assert dimensions_for("shard") is None
    assert dimensions_for("stream") == {"stream", "error_code", "worker"}
    with pytest.raises(ValueError, match="unknown metric dimensions"):
        dimensions_for(["Shard"])


def test_batches_stay_within_put_metric_data_limits(cloudwatch: Any) -> None:
    sizes: list[int] = []
    cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData",
        lambda params, **_: sizes.append(len(params["MetricData"])),
    )
    sink = CloudWatchMetrics(namespace="App", client=cloudwatch, max_buffered=5000)
    for shard in range(2500):
        sink.count("RecordsProcessed", 1, {"shard_id": f"shardId-{shard}"})
    sink.flush()
    assert sizes == [1000, 1000, 500]
    assert sink.sent == 2500
    sink.close()


def test_the_application_wide_maximum_millis_behind_latest(cloudwatch: Any) -> None:
    sink = CloudWatchMetrics(namespace="App", client=cloudwatch)
    for shard, lag in (("shardId-0", 100.0), ("shardId-1", 500.0), ("shardId-0", 50.0)):
        sink.gauge("MillisBehindLatest", lag, {"shard_id": shard})
    sink.flush()
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="App",
        MetricName="MillisBehindLatest",
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in stats] == [500.0]
    assert ("MillisBehindLatest", ()) in listed(cloudwatch, "App")  # no ShardId: the application
    sink.close()


def test_unreachable_cloudwatch_drops_with_a_count_and_a_bounded_buffer() -> None:
    sink = CloudWatchMetrics(
        namespace="App", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_buffered=3
    )
    for shard in range(5):
        sink.count("RecordsProcessed", 1, {"shard_id": f"shardId-{shard}"})
    assert sink.dropped == 2  # the buffer holds 3 series
    sink.flush()  # never raises
    assert (sink.sent, sink.dropped) == (0, 5)
    sink.close()


def test_configure_applies_level_and_dimensions_to_every_sink() -> None:
    other = InMemoryMetrics()
    metrics.configure(other, level="SUMMARY", dimensions=dimensions_for("stream"))
    try:
        metrics.count("UserRecordsPut", 3, stream="s", shard_id="shardId-1")
        metrics.count("Retries", 1, stream="s")
        assert other.total("UserRecordsPut", stream="s") == 3
        assert other.total("UserRecordsPut", shard_id="shardId-1") == 0  # dimension dropped
        assert other.total("Retries") == 0  # DETAILED only
        assert metrics.in_memory().total("Retries", stream="s") >= 1  # in-memory sees all
    finally:
        metrics.configure()


def test_a_config_setting_installs_the_sink_once(cloudwatch: Any) -> None:
    from kinesis_actors._config import ConsumerConf, load_config

    conf = ConsumerConf.from_config(
        load_config(
            "kinesis { application-name = OrderService, c { stream-name = s, kcl { "
            "metricsSink = cloudwatch, regionName = us-east-1, metricsLevel = SUMMARY } } }"
        ),
        "c",
    )
    try:
        metrics._install_for(conf)
        metrics._install_for(conf)  # a second consumer of the same application: the same sink
        installed = [s for s in metrics._sinks if isinstance(s, CloudWatchMetrics)]
        assert len(installed) == 1
        metrics.count("RecordsProcessed", 4, shard_id="shardId-0")
        metrics.count("LeaseTakes", 1, worker="w")  # DETAILED: not sent at SUMMARY
        installed[0].flush()
        assert listed(cloudwatch, "OrderService") == {
            ("RecordsProcessed", (("ShardId", "shardId-0"),))
        }
    finally:
        for sink in metrics._installed.values():
            sink.close()
        metrics._installed.clear()
        metrics.configure()
