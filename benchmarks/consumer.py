"""Consumer throughput and latency against a plain boto3 drain of the same data, in one run.

Run ``python benchmarks/consumer.py`` (kinesalite + dynalite on loopback; ``--records`` to scale).
Each rate is the best of ``--repeat`` interleaved runs.

1. Baseline: one thread per shard drains a pre-filled 4-shard stream with GetRecords
   (``Limit`` = ``kcl.maxRecords``), no processing, no checkpoints: Kinesis records/s.
2. KinesisConsumer on the same stream, no-op ``process_record``, checkpointing on: user
   records/s from the first record to the last (lease-table start-up excluded; reported apart).
3. The same user records KPL-aggregated (~50 KB aggregates) on another 4-shard stream.
4. Put-to-process latency at low load: one record every 20 ms, p50 / p99.

Targets (issue #6): non-aggregated >= 0.8x the baseline, aggregated >= 3x the baseline's rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._shared import consumer_conf
from kinesis_actors._aggregation import AggregateBuilder, hash_key
from kinesis_actors._aws import add_client_hook, remove_client_hook
from kinesis_actors._config import ConsumerConf
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._models import ConsumerEvent
from kinesis_actors.testing._local import LocalKinesis

__all__ = ["main", "run"]

SHARDS = 4
PAYLOAD = b"x" * 100
AGGREGATE_SIZE = 51200


def _conf(stream: str, idle_ms: int = 100) -> ConsumerConf:
    return consumer_conf(
        stream, f"idleTimeBetweenReadsInMillis = {idle_ms}, failoverTimeMillis = 2000"
    )


def _shard_ranges(kinesis: Any, stream: str) -> list[tuple[str, int, int]]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return [
        (
            s["ShardId"],
            int(s["HashKeyRange"]["StartingHashKey"]),
            int(s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in shards
    ]


def _stream(kinesis: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def _fill_plain(kinesis: Any, stream: str, count: int) -> None:
    for start in range(0, count, 500):
        entries = [
            {"Data": PAYLOAD, "PartitionKey": f"pk-{n}"}
            for n in range(start, min(start + 500, count))
        ]
        kinesis.put_records(StreamName=stream, Records=entries)


def _fill_aggregated(kinesis: Any, stream: str, count: int) -> int:
    """``count`` user records, aggregated per shard; returns the number of Kinesis records."""
    ranges = _shard_ranges(kinesis, stream)
    builders = {shard_id: AggregateBuilder() for shard_id, _, _ in ranges}
    aggregates: list[dict[str, Any]] = []

    def flush(shard_id: str) -> None:
        builder = builders[shard_id]
        aggregates.append(
            {
                "Data": builder.build(),
                "PartitionKey": "a",
                "ExplicitHashKey": str(builder.first_hash_key),
            }
        )
        builders[shard_id] = AggregateBuilder()

    for n in range(count):
        pk = f"pk-{n}"
        key = hash_key(pk)
        shard_id = next(s for s, lo, hi in ranges if lo <= key <= hi)
        builder = builders[shard_id]
        if builder.count and builder.size_if_added(pk, None, PAYLOAD) > AGGREGATE_SIZE:
            flush(shard_id)
        builders[shard_id].add(pk, None, PAYLOAD)
    for shard_id, builder in builders.items():
        if builder.count:
            flush(shard_id)
    for start in range(0, len(aggregates), 50):
        kinesis.put_records(StreamName=stream, Records=aggregates[start : start + 50])
    return len(aggregates)


def baseline(kinesis: Any, stream: str, limit: int) -> tuple[int, float]:
    """Plain boto3 drain, one thread per shard: (Kinesis records read, seconds)."""
    counts: list[int] = []
    lock = threading.Lock()

    def drain(shard_id: str) -> None:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        read = 0
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=limit)
            if not response["Records"]:
                break
            read += len(response["Records"])
            iterator = response.get("NextShardIterator")
        with lock:
            counts.append(read)

    threads = [
        threading.Thread(target=drain, args=(shard_id,))
        for shard_id, _, _ in _shard_ranges(kinesis, stream)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - started


class _Counter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()

    def __call__(self, event: ConsumerEvent) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.last = time.perf_counter()
            self.done.set()


def consume(stream: str, expected: int) -> tuple[float, float]:
    """(records/s from the first GetRecords call to the last record processed, seconds from
    ``start()`` to that first call: lease table, shard sync, lease taking). The consumer builds
    its own clients from the config, as an application's does."""
    counter = _Counter(expected)
    first_read: list[float] = []

    def on_get_records(**_: Any) -> None:
        if not first_read:
            first_read.append(time.perf_counter())

    def hook(service: str, client: Any) -> None:
        if service == "kinesis":
            client.meta.events.register("before-call.kinesis.GetRecords", on_get_records)

    add_client_hook(hook)
    consumer = KinesisConsumer(counter, _conf(stream))
    started = time.perf_counter()
    try:
        consumer.start()
        if not counter.done.wait(120):
            raise RuntimeError(f"consumed {counter.count} of {expected} records in 120 s")
    finally:
        consumer.stop()
        remove_client_hook(hook)
    return expected / (counter.last - first_read[0]), first_read[0] - started


def latency(kinesis: Any, stream: str, count: int, idle_ms: int) -> list[float]:
    """Put one record every 20 ms; seconds from put to process_record, per record."""
    latencies: list[float] = []
    done = threading.Event()

    def process(event: ConsumerEvent) -> None:
        latencies.append(time.time() - float(event.payload))
        if len(latencies) >= count:
            done.set()

    consumer = KinesisConsumer(process, _conf(stream, idle_ms))
    consumer.start()
    try:
        time.sleep(2.0)  # leases taken, iterators at the tip
        for n in range(count):
            kinesis.put_record(
                StreamName=stream, Data=repr(time.time()).encode(), PartitionKey=f"pk-{n}"
            )
            time.sleep(0.02)
        done.wait(30)
    finally:
        consumer.stop()
    return latencies


def run(
    records: int = 100_000, latency_records: int = 200, idle_ms: int = 100, repeat: int = 3
) -> dict[str, float]:
    """Best of ``repeat`` interleaved runs of each measurement (a shared 2-core box is noisy)."""
    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())  # where the consumers' own clients go
        kinesis = local.kinesis_client()
        plain = _stream(kinesis)
        _fill_plain(kinesis, plain, records)
        aggregated = _stream(kinesis)
        kinesis_records = _fill_aggregated(kinesis, aggregated, records)
        base_rate = plain_rate = agg_rate = 0.0
        plain_startup = agg_startup = float("inf")
        for _ in range(repeat):
            read, seconds = baseline(kinesis, plain, limit=10000)
            assert read == records, (read, records)
            base_rate = max(base_rate, read / seconds)
            rate, startup = consume(plain, records)
            plain_rate, plain_startup = max(plain_rate, rate), min(plain_startup, startup)
            rate, startup = consume(aggregated, records)
            agg_rate, agg_startup = max(agg_rate, rate), min(agg_startup, startup)
        lat = sorted(latency(kinesis, _stream(kinesis), latency_records, idle_ms))
    return {
        "records": records,
        "baseline_records_per_s": base_rate,
        "consumer_records_per_s": plain_rate,
        "consumer_startup_s": plain_startup,
        "aggregated_kinesis_records": kinesis_records,
        "aggregated_records_per_s": agg_rate,
        "aggregated_startup_s": agg_startup,
        "latency_p50_ms": statistics.median(lat) * 1000,
        "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "latency_samples": len(lat),
        "idle_ms": idle_ms,
        "repeat": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency-records", type=int, default=200)
    parser.add_argument("--idle-ms", type=int, default=100, help="kcl.idleTimeBetweenReadsInMillis")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    r = run(args.records, args.latency_records, args.idle_ms, args.repeat)
    base = r["baseline_records_per_s"]
    print(
        f"records: {r['records']} x {len(PAYLOAD)} B on {SHARDS} shards (kinesalite, loopback), "
        f"best of {r['repeat']}"
    )
    print(f"baseline boto3 drain     {base:>10,.0f} records/s")
    print(
        f"KinesisConsumer          {r['consumer_records_per_s']:>10,.0f} records/s  "
        f"{r['consumer_records_per_s'] / base:5.2f}x baseline (target >= 0.8x); "
        f"start-up {r['consumer_startup_s']:.2f} s"
    )
    print(
        f"KinesisConsumer, KPL agg {r['aggregated_records_per_s']:>10,.0f} records/s  "
        f"{r['aggregated_records_per_s'] / base:5.2f}x baseline (target >= 3x); "
        f"{r['aggregated_kinesis_records']} Kinesis records"
    )
    print(
        f"put-to-process latency   p50 {r['latency_p50_ms']:.0f} ms, "
        f"p99 {r['latency_p99_ms']:.0f} ms ({r['latency_samples']} records, 1 per 20 ms, "
        f"idle time {r['idle_ms']} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
