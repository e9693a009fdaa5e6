"""The library measured against AWS's limits instead of an emulator's CPU, in one run.

Run ``python benchmarks/aws_limits.py`` (kinesalite + dynalite behind the limits mode: 1 000
records/s and 1 MiB/s written, 5 GetRecords and 2 MiB read per second per shard, shared by every
client). Parts, each beside a baseline measured in the same run:

1. producer, 100-byte records, not aggregated, 4 shards: user records/s as a share of the 4 000
   records/s the shards take (target >= 95 %) and throttled entries per record, against a plain
   boto3 ``put_records(500)`` loop that re-sends its failed entries;
2. the same aggregated: user records/s as a share of what 4 MiB/s allows, against the same loop;
3. consumer: three applications on a 2-shard stream written at its limit: each one's lag when
   the writing stops (seconds until it has processed everything) and its GetRecords refused per
   call;
4. put-to-process latency p50/p99 at default settings, against a raw boto3 PutRecord and a
   GetRecords loop paced at one call per second (the KCL default);
5. idle cost of one consumer holding 200 idle shards: CPU share of one core and calls/s, with the
   idle backoff (``idleReadBackoffMaxMillis``) against without (target with it <= 15 % of a core),
   measured by ``benchmarks/idle_consumer.py``.

Each producer contender keeps a backlog (it is offered more than the shards take) for
``--seconds``; throughput counts the records confirmed stored in that window.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import idle_consumer
import structlog

from kinesis_actors import KinesisConsumer, load_config
from kinesis_actors._models import ConsumerEvent, ProducerEvent
from kinesis_actors._producer import KinesisProducer
from kinesis_actors.testing import LimitsStats, LocalKinesis

__all__ = ["main"]

MIB = 1024 * 1024
RECORD_SIZE = 100
#: What a shard takes: 1 000 records/s, 1 MiB/s.
RECORDS_PER_SHARD = 1000
TARGETS = {"plain_share": 0.95, "idle_cpu_share": 0.15}
#: Records the producer may have outstanding: a backlog, so the producer never waits for input.
BACKLOG = 20_000


def _stream(local: LocalKinesis, shards: int) -> str:
    name = f"limits-{uuid.uuid4().hex[:8]}"
    kinesis = local.kinesis_client()
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    return name


def _payload(n: int) -> bytes:
    return f"{n}:".encode().ljust(RECORD_SIZE, b".")


def _in_window(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t < end)


# -- 1 and 2: producing -------------------------------------------------------------------------


def produce_with_library(
    local: LocalKinesis, shards: int, aggregated: bool, seconds: float
) -> dict[str, float]:
    """KinesisProducer (RateLimit default) kept busy for ``seconds`` after a 2 s warm-up."""
    stream = _stream(local, shards)
    assert local.limits is not None
    done: list[float] = []
    lock = threading.Lock()

    def confirmed(_: Any) -> None:
        now = time.monotonic()
        with lock:
            done.append(now)

    warm_up = 2.0
    with KinesisProducer({"AggregationEnabled": aggregated}, stream) as producer:
        started = time.monotonic()
        window = (started + warm_up, started + warm_up + seconds)
        before: LimitsStats | None = None
        n = 0
        while time.monotonic() < window[1]:
            if before is None and time.monotonic() >= window[0]:
                before = local.limits.stats()
            if producer.outstanding_records_count() >= BACKLOG:
                time.sleep(0.002)
                continue
            for _ in range(500):
                producer.add_user_record(ProducerEvent(f"k{n}", _payload(n))).add_done_callback(
                    confirmed
                )
                n += 1
        after = local.limits.stats()
        stats = producer.stats()
    assert before is not None
    puts = (after - before).api("kinesis.PutRecords")
    with lock:
        stored = _in_window(done, *window)
    return {
        "user_records_per_s": stored / seconds,
        "throttled_per_record": puts.throttled_entries / max(1, stored),
        "kinesis_bytes_per_s": puts.bytes / seconds,
        "failed": float(stats.user_records_failed),
    }


def produce_with_boto3_loop(local: LocalKinesis, shards: int, seconds: float) -> dict[str, float]:
    """A plain ``put_records(500)`` loop that re-sends the failed entries first."""
    stream = _stream(local, shards)
    assert local.limits is not None
    client = local.kinesis_client()
    warm_up = 2.0
    started = time.monotonic()
    window = (started + warm_up, started + warm_up + seconds)
    pending: list[dict[str, Any]] = []
    stored = throttled = n = 0
    before: LimitsStats | None = None
    while time.monotonic() < window[1]:
        now = time.monotonic()
        if before is None and now >= window[0]:
            before = local.limits.stats()
        while len(pending) < 500:
            pending.append({"Data": _payload(n), "PartitionKey": f"k{n}"})
            n += 1
        batch, pending = pending[:500], pending[500:]
        answer = client.put_records(StreamName=stream, Records=batch)
        failed = [r for r, e in zip(batch, answer["Records"], strict=True) if "ErrorCode" in e]
        pending = failed + pending
        if now >= window[0]:
            stored += len(batch) - len(failed)
            throttled += len(failed)
    assert before is not None
    return {
        "user_records_per_s": stored / seconds,
        "throttled_per_record": throttled / max(1, stored),
        "kinesis_bytes_per_s": (local.limits.stats() - before).api("kinesis.PutRecords").bytes
        / seconds,
        "failed": 0.0,
    }


# -- 3: three applications ----------------------------------------------------------------------

_CONSUMER_CONF = """
kinesis {{
  application-name = "{application}"
  bench {{
    stream-name = "{stream}"
    worker {{ gracefulShutdownHook = false }}
    kcl {{ initialPositionInStream = TRIM_HORIZON {kcl} }}
  }}
}}
"""


class _Seen:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, event: ConsumerEvent) -> None:
        with self.lock:
            self.count += 1
            if event.payload.startswith(b"t="):
                sent = float(event.payload[2:].split(b";", 1)[0])
                self.latencies.append(time.time() - sent)


def _consumer(stream: str, seen: _Seen, kcl: str = "") -> KinesisConsumer:
    application = f"bench-{uuid.uuid4().hex[:6]}"
    text = _CONSUMER_CONF.format(application=application, stream=stream, kcl=kcl)
    return KinesisConsumer(seen, load_config(text), "bench")


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def three_applications(local: LocalKinesis, seconds: float) -> list[dict[str, float]]:
    shards = 2
    stream = _stream(local, shards)
    assert local.limits is not None
    apps = [_Seen() for _ in range(3)]
    rate = RECORDS_PER_SHARD * shards
    with ExitStack() as stack:
        for seen in apps:
            consumer = _consumer(stream, seen)
            consumer.start()
            stack.callback(consumer.stop)
        # warm-up: every application reads every shard
        _wait(lambda: local.limits.stats().api("kinesis.GetShardIterator").calls >= 3 * shards, 60)
        before = local.limits.stats()
        with KinesisProducer({"AggregationEnabled": False}, stream) as producer:
            started = time.monotonic()
            count = int(rate * seconds)
            futures = []
            for n in range(count):
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
                futures.append(producer.add_user_record(ProducerEvent(f"k{n}", _payload(n))))
            for future in futures:
                future.result(60)
        written = time.monotonic()
        lags = []
        for seen in apps:
            _wait(lambda seen=seen: seen.count >= count, 120)
            lags.append(time.monotonic() - written)
        reads = (local.limits.stats() - before).api("kinesis.GetRecords")
    return [
        {
            "lag_s": lag,
            "seen_share": seen.count / count,
            "refused_per_call": reads.refused / max(1, reads.calls),
            "reads_per_shard_s": reads.calls / shards / (time.monotonic() - started) / 3,
        }
        for lag, seen in zip(lags, apps, strict=True)
    ]


# -- 4: latency ----------------------------------------------------------------------------------


def latency_library(local: LocalKinesis, count: int, rate: float) -> list[float]:
    stream = _stream(local, 1)
    seen = _Seen()
    consumer = _consumer(stream, seen, ", initialPositionInStream = LATEST")
    assert local.limits is not None
    iterators = local.limits.stats().api("kinesis.GetShardIterator").calls
    consumer.start()
    try:
        # reading: the shard has its iterator
        _wait(lambda: local.limits.stats().api("kinesis.GetShardIterator").calls > iterators, 60)
        time.sleep(1.0)
        with KinesisProducer({}, stream) as producer:
            for n in range(count):
                payload = f"t={time.time():.6f};{n}".encode()
                producer.add_user_record(ProducerEvent(f"k{n}", payload))
                time.sleep(1 / rate)
        _wait(lambda: len(seen.latencies) >= count, 60)
    finally:
        consumer.stop()
    return seen.latencies


def latency_boto3(local: LocalKinesis, count: int, rate: float) -> list[float]:
    """PutRecord one by one; one GetRecords per second on the shard."""
    stream = _stream(local, 1)
    client = local.kinesis_client()
    shard = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="LATEST"
    )["ShardIterator"]
    latencies: list[float] = []
    deadline = time.monotonic() + count / rate + 30

    def poll() -> None:
        nonlocal iterator
        while len(latencies) < count and time.monotonic() < deadline:
            started = time.monotonic()
            answer = client.get_records(ShardIterator=iterator)
            iterator = answer["NextShardIterator"]
            now = time.time()
            latencies.extend(now - float(r["Data"][2:].split(b";")[0]) for r in answer["Records"])
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    writer = local.kinesis_client()
    for n in range(count):
        writer.put_record(
            StreamName=stream, Data=f"t={time.time():.6f};{n}".encode(), PartitionKey="k"
        )
        time.sleep(1 / rate)
    reader.join(60)
    return latencies


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- the table -----------------------------------------------------------------------------------


def _row(name: str, value: str, baseline: str = "", ratio: str = "", note: str = "") -> None:
    print(f"{name:<46}{value:>12}{baseline:>12}{ratio:>8}  {note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per part")
    parser.add_argument("--latency-records", type=int, default=300)
    parser.add_argument("--idle-shards", type=int, default=200)
    parser.add_argument("--idle-backoff-ms", type=int, default=10_000)
    parser.add_argument(
        "--parts", default="1,2,3,4,5", help="comma-separated parts to run (default: all)"
    )
    args = parser.parse_args(argv)
    parts = {int(p) for p in args.parts.split(",")}
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    random.seed(1)
    print("AWS limits benchmark: kinesalite + dynalite behind the limits mode")
    print(f"{'measure':<46}{'library':>12}{'baseline':>12}{'ratio':>8}  target / baseline")
    with LocalKinesis(backend="emulators", aws_limits=True) as local:
        os.environ.update(local.environ())
        if 1 in parts:
            lib = produce_with_library(local, 4, False, args.seconds)
            loop = produce_with_boto3_loop(local, 4, args.seconds)
            capacity = 4 * RECORDS_PER_SHARD
            share, base_share = (
                lib["user_records_per_s"] / capacity,
                loop["user_records_per_s"] / capacity,
            )
            _row(
                "1 plain: user records/s",
                f"{lib['user_records_per_s']:.0f}",
                f"{loop['user_records_per_s']:.0f}",
                f"{share / base_share:.2f}",
                "boto3 put_records(500) loop",
            )
            _row(
                "1 plain: share of 4 000 records/s",
                f"{share:.1%}",
                f"{base_share:.1%}",
                "",
                f"target >= {TARGETS['plain_share']:.0%}",
            )
            _row(
                "1 plain: throttled entries per record",
                f"{lib['throttled_per_record']:.3f}",
                f"{loop['throttled_per_record']:.3f}",
                "",
                "",
            )
        if 2 in parts:
            lib = produce_with_library(local, 4, True, args.seconds)
            loop = produce_with_boto3_loop(local, 4, args.seconds)
            allowed = 4 * MIB / RECORD_SIZE
            _row(
                "2 aggregated: user records/s",
                f"{lib['user_records_per_s']:.0f}",
                f"{loop['user_records_per_s']:.0f}",
                f"{lib['user_records_per_s'] / loop['user_records_per_s']:.2f}",
                "boto3 put_records(500) loop",
            )
            _row(
                "2 aggregated: share of 4 MiB/s in records",
                f"{lib['user_records_per_s'] / allowed:.1%}",
                f"{loop['user_records_per_s'] / allowed:.1%}",
                "",
                f"{allowed:.0f} records/s of {RECORD_SIZE} B",
            )
            _row(
                "2 aggregated: Kinesis MiB/s stored",
                f"{lib['kinesis_bytes_per_s'] / MIB:.2f}",
                f"{loop['kinesis_bytes_per_s'] / MIB:.2f}",
                "",
                "of 4 MiB/s",
            )
            _row(
                "2 aggregated: throttled entries per record",
                f"{lib['throttled_per_record']:.4f}",
                f"{loop['throttled_per_record']:.3f}",
                "",
                "",
            )
        if 3 in parts:
            for index, app in enumerate(three_applications(local, args.seconds), 1):
                _row(
                    f"3 application {index}: lag when writing stops, s",
                    f"{app['lag_s']:.2f}",
                    "",
                    "",
                    f"saw {app['seen_share']:.0%} of the records",
                )
            _row(
                "3 GetRecords refused per call (all apps)",
                f"{app['refused_per_call']:.3f}",
                "",
                "",
                f"{app['reads_per_shard_s']:.2f} reads/s per shard per app",
            )
        if 4 in parts:
            lib_lat = latency_library(local, args.latency_records, 20)
            raw_lat = latency_boto3(local, args.latency_records, 20)
            for label, share in (("p50", 0.5), ("p99", 0.99)):
                ours, theirs = _percentile(lib_lat, share), _percentile(raw_lat, share)
                _row(
                    f"4 put-to-process latency {label}, ms",
                    f"{ours * 1000:.0f}",
                    f"{theirs * 1000:.0f}",
                    f"{ours / theirs:.2f}",
                    "boto3 PutRecord + GetRecords every 1 s",
                )
    if 5 in parts:
        kcl_on = f"idleReadBackoffMaxMillis = {args.idle_backoff_ms}"
        on = idle_consumer.measure(args.idle_shards, args.seconds, 5.0, kcl=kcl_on, aws_limits=True)
        off = idle_consumer.measure(args.idle_shards, args.seconds, 5.0, aws_limits=True)
        _row(
            f"5 idle, {args.idle_shards} shards: CPU share of a core",
            f"{on['cpu_share']:.1%}",
            f"{off['cpu_share']:.1%}",
            f"{on['cpu_share'] / off['cpu_share']:.2f}",
            f"target <= {TARGETS['idle_cpu_share']:.0%}; baseline: no idle backoff",
        )
        for op in sorted(set(on["calls_per_second"]) | set(off["calls_per_second"])):
            ours, theirs = on["calls_per_second"].get(op, 0.0), off["calls_per_second"].get(op, 0.0)
            _row(
                f"5 idle: {op}/s",
                f"{ours:.1f}",
                f"{theirs:.1f}",
                f"{ours / theirs:.2f}" if theirs else "-",
                "",
            )
    print(f"(one run; --seconds {args.seconds:g}; command: python benchmarks/aws_limits.py)")


if __name__ == "__main__":
    main()
