"""Enhanced fan-out against polling, in one run on the same emulator (ministack + dynalite).

Run ``python benchmarks/fanout.py``. Kinesis is ministack 1.5.33 (the only local server with
SubscribeToShard), leases are on dynalite; both on loopback. Every consumer runs at the default
settings except ``kcl.retrievalMode`` (and ``gracefulShutdownHook = false``).

1. Put-to-process latency: one record every ``--interval-ms`` into a 1-shard stream, p50 / p99 of
   (processed - put). Polling waits ``idleTimeBetweenReadsInMillis`` (1 s) after an empty read;
   ministack pushes a new record ~0.2 s after the put (its internal poll), AWS in ~70 ms.
2. Drain: records/s from the first record processed to the last of a pre-filled 2-shard stream.
3. Idle cost: CPU time of the consumer process as a share of one core while it holds
   ``--idle-shards`` idle shards (target FANOUT <= 5 %), by thread (``--idle-only`` measures
   this alone, in both modes). No client hook counts calls here: one would turn off the lease
   table's direct DynamoDB path (``kinesis_actors._aws.direct``) and so measure something else.

ministack never throttles: polling's 5 GetRecords/s per shard and fan-out's 2 MiB/s per shard
are not enforced here, so the drain rates are upper bounds of this machine, not of AWS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# The repository first; this folder out (its asyncio.py would shadow the standard library's).
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from benchmarks._shared import consumer_conf  # noqa: E402
from kinesis_actors import ConsumerConf, ConsumerEvent, KinesisConsumer, metrics  # noqa: E402
from kinesis_actors.testing import LocalKinesis, LocalMinistack  # noqa: E402

__all__ = ["main"]

MODES = ("POLLING", "FANOUT")


def _conf(stream: str, mode: str, kinesis_endpoint: str, dynamodb_endpoint: str) -> ConsumerConf:
    return consumer_conf(
        stream,
        f'retrievalMode = {mode}, kinesisEndpoint = "{kinesis_endpoint}", '
        f'dynamoDBEndpoint = "{dynamodb_endpoint}"',
    )


def _shards_polled() -> int:
    """Shards with a ``MillisBehindLatest`` gauge: those whose first GetRecords has returned."""
    gauges = metrics.in_memory().snapshot()["gauges"]
    return sum(1 for label in gauges if label.startswith("MillisBehindLatest"))


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads by part (Linux ``/proc``; empty elsewhere):
    "reading" (GetRecords on the executor, or the subscription threads), "leases" (renewer and
    taker), "other" (actors, timers, the rest). From ``schedstat`` (nanoseconds): ``stat``
    counts clock ticks, so 200 threads using a little each would add up to nothing."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    parts: dict[str, float] = {}
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return {}
    for task in tasks:
        try:
            nanoseconds = int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue  # the thread ended
        name = names.get(int(task.name), "")
        if name.startswith("lease-"):
            part = "leases"
        elif name.endswith("-subscription") or "-blocking" in name:
            part = "reading"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + nanoseconds / 1e9
    return parts


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Bench:
    def __init__(self, ministack: LocalMinistack, local: LocalKinesis) -> None:
        self.ministack = ministack
        self.local = local
        self.kinesis = ministack.kinesis_client()

    def stream(self, shards: int) -> str:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        return name

    def consumer(
        self, stream: str, mode: str, process: Callable[[ConsumerEvent], object]
    ) -> KinesisConsumer:
        conf = _conf(stream, mode, self.ministack.endpoint, self.local.dynamodb_endpoint)
        return KinesisConsumer(process, conf)

    def latency(self, mode: str, count: int, interval: float) -> tuple[float, float]:
        stream = self.stream(1)
        lock = threading.Lock()
        delays: list[float] = []
        warm = threading.Event()

        def process(event: ConsumerEvent) -> None:
            now = time.time()
            text = event.payload_as_string()
            if text == "warm-up":
                warm.set()
                return
            with lock:
                delays.append(now - float(text))

        consumer = self.consumer(stream, mode, process)
        consumer.start()
        try:
            self.kinesis.put_record(StreamName=stream, Data=b"warm-up", PartitionKey="k")
            _wait(warm.is_set, 120, "the consumer to read")
            for _ in range(count):
                self.kinesis.put_record(
                    StreamName=stream, Data=repr(time.time()).encode(), PartitionKey="k"
                )
                time.sleep(interval)
            _wait(lambda: len(delays) >= count, 60, "every record processed")
        finally:
            consumer.stop()
        ordered = sorted(delays)
        return statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000

    def drain(self, mode: str, count: int) -> float:
        stream = self.stream(2)
        for start in range(0, count, 500):
            entries = [
                {"Data": b"x" * 100, "PartitionKey": f"pk-{n}"}
                for n in range(start, min(count, start + 500))
            ]
            self.kinesis.put_records(StreamName=stream, Records=entries)
        lock = threading.Lock()
        seen = {"count": 0, "first": 0.0, "last": 0.0}

        def process(event: ConsumerEvent) -> None:
            now = time.monotonic()
            with lock:
                if not seen["count"]:
                    seen["first"] = now
                seen["count"] += 1
                seen["last"] = now

        consumer = self.consumer(stream, mode, process)
        consumer.start()
        try:
            _wait(lambda: seen["count"] >= count, 300, "the stream drained")
        finally:
            consumer.stop()
        return count / max(seen["last"] - seen["first"], 1e-9)

    def idle(self, mode: str, shards: int, seconds: float, settle: float) -> dict[str, float]:
        stream = self.stream(shards)
        metrics.in_memory().reset()
        consumer = self.consumer(stream, mode, lambda event: None)
        started = time.monotonic()
        consumer.start()
        try:
            if mode == "FANOUT":
                reading = lambda: metrics.in_memory().total("FanoutSubscriptionsOpened") >= shards  # noqa: E731
            else:
                reading = lambda: _shards_polled() >= shards  # noqa: E731
            _wait(reading, 600, f"all {shards} shards read")
            ready = time.monotonic() - started
            time.sleep(settle)
            threads = threading.active_count()
            parts = _thread_cpu()
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            parts = {k: v - parts.get(k, 0.0) for k, v in _thread_cpu().items()}
        finally:
            consumer.stop()
        return {
            "cpu": cpu / wall,
            "reading": parts.get("reading", 0.0) / wall,
            "leases": parts.get("leases", 0.0) / wall,
            "threads": float(threads),
            "ready": ready,
        }


def _row(name: str, values: dict[str, float], fmt: str, ratio: bool = True) -> None:
    polling, fanout = values["POLLING"], values["FANOUT"]
    relative = f"{fanout / polling:8.2f}x" if ratio and polling else " " * 9
    print(f"  {name:<46} {polling:{fmt}} {fanout:{fmt}} {relative}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-records", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--drain-records", type=int, default=50_000)
    parser.add_argument("--idle-shards", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--idle-only", action="store_true", help="measure only the idle cost (3.), both modes"
    )
    args = parser.parse_args(argv)
    with LocalMinistack() as ministack, LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())  # dummy credentials and region for the consumers
        bench = _Bench(ministack, local)
        p50: dict[str, float] = {}
        p99: dict[str, float] = {}
        drained: dict[str, float] = {}
        idle: dict[str, dict[str, float]] = {}
        for mode in MODES:
            if not args.idle_only:
                p50[mode], p99[mode] = bench.latency(
                    mode, args.latency_records, args.interval_ms / 1000
                )
                drained[mode] = bench.drain(mode, args.drain_records)
            idle[mode] = bench.idle(mode, args.idle_shards, args.idle_seconds, args.settle_seconds)
    print("\nFan-out vs polling (ministack 1.5.33 for Kinesis, dynalite for leases, loopback)")
    print(f"  {'':<46} {'POLLING':>10} {'FANOUT':>10} {'FANOUT/POLLING':>9}")
    if not args.idle_only:
        _row("put-to-process p50, ms", p50, "10.0f")
        _row("put-to-process p99, ms", p99, "10.0f")
        _row(f"drain {args.drain_records} records (2 shards), records/s", drained, "10.0f")
    shards = args.idle_shards
    for key, name, fmt, scale in (
        ("cpu", "CPU, % of one core", "10.1f", 100.0),
        ("reading", "  of it: reading threads, %", "10.1f", 100.0),
        ("leases", "  of it: lease threads, %", "10.1f", 100.0),
        ("threads", "threads", "10.0f", 1.0),
        ("ready", "s until every shard is read", "10.1f", 1.0),
    ):
        _row(f"{shards} idle shards, {name}", {m: idle[m][key] * scale for m in MODES}, fmt)
    target = "met" if idle["FANOUT"]["cpu"] <= 0.05 else "NOT met"
    print(f"\n  target FANOUT idle CPU <= 5 % of a core (whole process): {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
