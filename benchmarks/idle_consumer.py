"""What a consumer costs at idle: threads, CPU and AWS calls of one process holding many shards.

Run ``python benchmarks/idle_consumer.py`` (kinesalite + dynalite on loopback, 200 shards, no
records). One KinesisConsumer takes every lease; once every shard is being read, the process is
sampled for ``--seconds``: its thread count (peak and median), the threads it starts per second
(``threading.Thread.start`` is counted), its CPU time as a share of one core, and the API calls
per second its clients make, by operation.

``--compare PATH`` runs the same measurement a second time in a child process with
``PYTHONPATH=PATH`` (for instance ``/work/base``, a checkout of an earlier commit) and prints both
columns with the ratio current / baseline. The script uses only public names that both layouts
have (``kinesis_actors.KinesisConsumer``, ``load_config``, ``LocalKinesis``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from _shared import consumer_conf  # this folder: the script's own
from botocore.config import Config

import kinesis_actors
from kinesis_actors import ConsumerConf, KinesisConsumer

try:
    from kinesis_actors.testing import LocalKinesis
except ImportError:  # the layout before the public `testing` package
    from kinesis_actors.local import LocalKinesis  # type: ignore[import-not-found,no-redef]

__all__ = ["main", "measure"]


def _conf(stream: str, kcl: str = "") -> ConsumerConf:
    every_lease = 'workerId = "idle-bench", maxLeasesForWorker = 100000'
    return consumer_conf(stream, f"{every_lease}, {kcl}" if kcl else every_lease)


def _counted(client: Any, calls: Counter[str]) -> Any:
    """``client`` with every API call counted by operation name."""
    lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        with lock:
            calls[model.name] += 1

    client.meta.events.register("before-call", count)
    return client


class _StartCounter:
    """Counts ``threading.Thread.start`` calls in this process (the benchmark's own probe)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = threading.Thread.start

        def start(thread: threading.Thread) -> None:
            with self._lock:
                self.count += 1
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign]


def _held(dynamodb: Any, table: str) -> int:
    try:
        items = dynamodb.scan(TableName=table, ProjectionExpression="leaseOwner")["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return 0
    return sum(1 for item in items if item.get("leaseOwner", {}).get("S") == "idle-bench")


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def measure(
    shards: int, seconds: float, settle: float, *, kcl: str = "", aws_limits: bool = False
) -> dict[str, Any]:
    """One run: start the servers, a stream of ``shards`` shards and a consumer; sample it.

    ``kcl``: extra HOCON settings of the consumer's ``kcl`` block; ``aws_limits``: the servers
    behind the limits mode (``benchmarks/aws_limits.py``).
    """
    limits: dict[str, Any] = {"aws_limits": True} if aws_limits else {}  # older layouts lack it
    with LocalKinesis(backend="emulators", **limits) as local:
        admin_kinesis, admin_dynamodb = local.kinesis_client(), local.dynamodb_client()
        stream = f"idle-{uuid.uuid4().hex[:8]}"
        admin_kinesis.create_stream(StreamName=stream, ShardCount=shards)
        admin_kinesis.get_waiter("stream_exists").wait(
            StreamName=stream, WaiterConfig={"Delay": 0.2}
        )
        threads_before = threading.active_count()
        calls: Counter[str] = Counter()
        pool = Config(max_pool_connections=max(10, shards))
        kinesis = _counted(local.kinesis_client(config=pool), calls)
        dynamodb = _counted(local.dynamodb_client(config=pool), calls)
        conf = _conf(stream, kcl)
        starts = _StartCounter()
        consumer = KinesisConsumer(lambda event: None, conf, kinesis=kinesis, dynamodb=dynamodb)
        started = time.monotonic()
        consumer.start()
        try:
            _wait(lambda: _held(admin_dynamodb, conf.table_name) >= shards, 300, "every lease")
            _wait(lambda: calls["GetShardIterator"] >= shards, 120, "every shard reading")
            ready = time.monotonic() - started
            time.sleep(settle)
            counts: list[int] = []
            before, started_before = dict(calls), starts.count
            cpu, wall = time.process_time(), time.monotonic()
            while time.monotonic() - wall < seconds:
                counts.append(threading.active_count())
                time.sleep(0.25)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            delta = {op: (calls[op] - before.get(op, 0)) / wall for op in calls}
            thread_starts = (starts.count - started_before) / wall
        finally:
            consumer.stop()
    return {
        "version": kinesis_actors.__version__,
        "path": str(Path(kinesis_actors.__file__).parent),
        "threads_before": threads_before,
        "threads_peak": max(counts),
        "threads_median": statistics.median(counts),
        "threads_started_per_second": thread_starts,
        "cpu_share": cpu / wall,
        "calls_per_second": {op: rate for op, rate in delta.items() if rate > 0},
        "seconds_to_ready": ready,
    }


def _rows(result: dict[str, Any]) -> dict[str, float]:
    rows = {
        "threads (peak)": float(result["threads_peak"]),
        "threads (median)": float(result["threads_median"]),
        "threads started per second": result["threads_started_per_second"],
        "threads before the consumer": float(result["threads_before"]),
        "CPU, share of one core": result["cpu_share"],
        "AWS calls/s (all)": sum(result["calls_per_second"].values()),
    }
    for op, rate in sorted(result["calls_per_second"].items()):
        rows[f"  {op}/s"] = rate
    rows["seconds until every shard is read"] = result["seconds_to_ready"]
    return rows


def _print(current: dict[str, Any], baseline: dict[str, Any] | None, shards: int) -> None:
    cur = _rows(current)
    base = _rows(baseline) if baseline is not None else {}
    names = list(cur) + [name for name in base if name not in cur]
    print(f"\nIdle consumer, {shards} shards, kinesalite + dynalite")
    print(f"  current : {current['path']}")
    if baseline is not None:
        print(f"  baseline: {baseline['path']}")
        print(f"\n{'metric':<36}{'current':>12}{'baseline':>12}{'ratio':>9}")
    else:
        print(f"\n{'metric':<36}{'current':>12}")
    for name in names:
        value = cur.get(name)
        text = f"{name:<36}{_fmt(value):>12}"
        if baseline is not None:
            other = base.get(name)
            ratio = f"{value / other:.2f}" if value is not None and other else "-"
            text += f"{_fmt(other):>12}{ratio:>9}"
        print(text)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time")
    parser.add_argument("--settle", type=float, default=3.0, help="wait before sampling")
    parser.add_argument("--compare", metavar="PATH", help="baseline code (PYTHONPATH) to compare")
    parser.add_argument("--json", action="store_true", help="print one JSON object, no table")
    args = parser.parse_args(argv)
    if args.shards < 1 or args.seconds <= 0 or args.settle < 0:
        parser.error("--shards must be >= 1, --seconds > 0 and --settle >= 0")
    baseline = None
    if args.compare:
        # -P keeps this checkout off the path; this folder stays on it for the shared helpers.
        path = os.pathsep.join([args.compare, str(Path(__file__).parent)])
        env = dict(os.environ, PYTHONPATH=path)
        command = [sys.executable, "-P", __file__, "--json", f"--shards={args.shards}"]
        command += [f"--seconds={args.seconds}", f"--settle={args.settle}"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        baseline = json.loads(done.stdout.strip().splitlines()[-1])
    current = measure(args.shards, args.seconds, args.settle)
    if args.json:
        print(json.dumps(current))
        return
    _print(current, baseline, args.shards)


if __name__ == "__main__":
    main()
