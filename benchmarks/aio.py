"""asyncio entry points against their threaded baselines, in one run.

Run ``python benchmarks/aio.py`` (producer: in-memory Kinesis, so the asyncio layer's own cost
shows; consumer: kinesalite + dynalite on loopback). The name keeps the standard library's
``asyncio`` importable by the other scripts of this folder. Each rate is the best of ``--rounds``
interleaved runs.

1. Producer: plain code calls the engine's ``add_user_record`` with at most ``--window`` records
   unanswered (callbacks read the outcome) versus ``AsyncKinesisProducer.put`` awaited by
   ``--window`` tasks (``max-outstanding-requests`` = the window). Target: >= 80 %. A last
   row shows what asyncio itself costs (the same tasks awaiting a future per record, set in
   batches from a thread, no engine): the engine's CPU plus that one is the asyncio path's floor.
2. Consumer: a plain function ``process_record`` versus an ``async def`` one on the same
   pre-filled 4-shard stream (KPL-aggregated, so processing rather than fetching dominates; each
   run a fresh lease table, from TRIM_HORIZON; records/s from the first record processed to the
   last): ``KinesisConsumer`` with its own event loop, and ``AsyncKinesisConsumer`` on the
   caller's loop. Target: >= 80 % for ``KinesisConsumer``.

Exit code 1 if a target is missed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import functools
import gc
import itertools
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import producer_actor

from kinesis_actors import (
    ConsumerConf,
    ConsumerEvent,
    KinesisConsumer,
    ProducerConf,
    ProducerEvent,
    load_config,
)
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors.aio import AsyncKinesisConsumer, AsyncKinesisProducer
from kinesis_actors.testing import LocalKinesis
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis

__all__ = ["main", "run_consumer", "run_producer"]

SHARDS = 4


def _producer_conf(window: int) -> ProducerConf:
    tree = load_config(
        f'kinesis.bench {{ stream-name = "bench", akka.max-outstanding-requests = {window} }}'
    )
    return ProducerConf.from_config(tree, "bench")


def _in_memory_engine(conf: ProducerConf) -> KinesisProducer:
    client: Any = InMemoryKinesis(SHARDS, keep=False)
    return KinesisProducer(conf, client=client)


def _engine_path(
    conf: ProducerConf, events: list[ProducerEvent], window: int, *, read: bool
) -> float:
    """The baseline: one thread adds records while fewer than ``window`` are unanswered; with
    ``read`` each callback reads its outcome (``exception()`` / ``result()``), else it counts."""
    engine = _in_memory_engine(conf)
    total = len(events)
    finished = [0]
    room = threading.Condition()

    def done(future: Any) -> None:  # engine thread
        if read and future.exception() is None:
            future.result()
        with room:
            finished[0] += 1
            room.notify()

    try:
        started = time.perf_counter()
        for issued, event in enumerate(events):
            if issued - finished[0] >= window:
                with room:
                    room.wait_for(lambda n=issued: n - finished[0] < window, timeout=60)
            engine.add_user_record(event).add_done_callback(done)
        with room:
            if not room.wait_for(lambda: finished[0] == total, timeout=600):
                raise RuntimeError("engine: records did not complete")
        elapsed = time.perf_counter() - started
    finally:
        engine.stop()
    if engine.stats().user_records_failed:
        raise RuntimeError("engine: records failed")
    return elapsed


def _async_path(conf: ProducerConf, events: list[ProducerEvent], tasks: int) -> float:
    """``tasks`` coroutines each await ``put`` for their share of the records."""

    async def main() -> float:
        async with AsyncKinesisProducer(conf, engine_factory=_in_memory_engine) as producer:

            async def task(share: list[ProducerEvent]) -> None:
                for event in share:
                    await producer.put(event)

            started = time.perf_counter()
            await asyncio.gather(*(task(events[t::tasks]) for t in range(tasks)))
            elapsed = time.perf_counter() - started
            if producer.stats().engine.user_records_failed:
                raise RuntimeError("asyncio: records failed")
            return elapsed

    return asyncio.run(main())


def _loop_alone(events: list[ProducerEvent], tasks: int) -> float:
    """What asyncio itself costs per put, no engine: ``tasks`` coroutines each await a fresh
    future per record, which a thread sets in batches (one ``call_soon_threadsafe`` a batch)."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        pending: deque[asyncio.Future[None] | None] = deque()
        wake = threading.Event()

        def set_all(batch: list[asyncio.Future[None] | None]) -> None:
            for future in batch:
                if future is not None:
                    future.set_result(None)

        def resolver() -> None:  # the engine's part: take what is there, hand it back
            while True:
                wake.wait()
                wake.clear()
                batch = [pending.popleft() for _ in range(len(pending))]
                loop.call_soon_threadsafe(set_all, batch)
                if None in batch:
                    return

        async def task(share: list[ProducerEvent]) -> None:
            for _ in share:
                future = loop.create_future()
                pending.append(future)
                wake.set()
                await future

        thread = threading.Thread(target=resolver)
        thread.start()
        started = time.perf_counter()
        await asyncio.gather(*(task(events[t::tasks]) for t in range(tasks)))
        elapsed = time.perf_counter() - started
        pending.append(None)
        wake.set()
        await asyncio.to_thread(thread.join)
        return elapsed

    return asyncio.run(main())


def run_producer(
    events: list[ProducerEvent], window: int = 5_000, rounds: int = 3, *, gc_off: bool = False
) -> dict[str, float]:
    """Best of ``rounds`` of each producer path, interleaved; records/s and the ratio. With
    ``gc_off`` the cyclic garbage collector is disabled while a path runs (how much of a path's
    cost is the collector walking its objects)."""
    records = len(events)
    conf = _producer_conf(window)
    paths: dict[str, Callable[[], float]] = {
        "engine_count": lambda: _engine_path(conf, events, window, read=False),
        "engine_read": lambda: _engine_path(conf, events, window, read=True),
        "asyncio": lambda: _async_path(conf, events, window),
        "loop_alone": lambda: _loop_alone(events, window),
    }
    best = dict.fromkeys(paths, math.inf)
    cpu = dict.fromkeys(paths, math.inf)
    gc.collect()
    gc.freeze()
    try:
        for _ in range(rounds):
            for name, path in paths.items():
                gc.collect()
                if gc_off:
                    gc.disable()
                cpu_started = time.process_time()
                best[name] = min(best[name], path())
                cpu[name] = min(cpu[name], time.process_time() - cpu_started)
                gc.enable()
    finally:
        gc.enable()
        gc.unfreeze()
    rate = {name: records / seconds for name, seconds in best.items()}
    return {
        **rate,
        # CPU seconds of this process (all threads) per record: steadier on a busy machine.
        **{f"cpu_us_{name}": seconds / records * 1e6 for name, seconds in cpu.items()},
        "ratio_count": rate["asyncio"] / rate["engine_count"],
        "ratio_read": rate["asyncio"] / rate["engine_read"],
    }


# -- consumer ------------------------------------------------------------------------------------


class _Count:
    """Counts processed records (from several threads: ``itertools.count`` is atomic) and notes
    when the first and the last arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._counter = itertools.count(1)
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()

    def record(self) -> None:
        n = next(self._counter)
        if n == 1:
            self.first = time.perf_counter()
        elif n == self.expected:
            self.last = time.perf_counter()
            self.done.set()

    @property
    def rate(self) -> float:
        return (self.expected - 1) / (self.last - self.first)


def _consumer_conf(stream: str) -> ConsumerConf:
    tree = load_config(
        f"""
        kinesis {{
          application-name = "bench-aio-{uuid.uuid4().hex[:8]}"
          bench {{
            stream-name = "{stream}"
            worker {{ gracefulShutdownHook = false }}
            kcl {{ idleTimeBetweenReadsInMillis = 100 }}
          }}
        }}
        """
    )
    return ConsumerConf.from_config(tree, "bench")


def _on_kinesis_consumer(stream: str, expected: int, *, coroutine: bool) -> float:
    """``KinesisConsumer`` with a plain function or an ``async def`` (on its own loop)."""
    count = _Count(expected)

    def plain(event: ConsumerEvent) -> None:
        count.record()

    async def async_def(event: ConsumerEvent) -> None:
        count.record()

    consumer = KinesisConsumer(async_def if coroutine else plain, _consumer_conf(stream))
    try:
        consumer.start()
        if not count.done.wait(300):
            raise RuntimeError(f"coroutine={coroutine}: not every record was processed")
    finally:
        consumer.stop()
    return count.rate


def _coroutine_callers_loop(stream: str, expected: int) -> float:
    count = _Count(expected)

    async def process_record(event: ConsumerEvent) -> None:
        count.record()

    async def main() -> None:
        async with AsyncKinesisConsumer(process_record, _consumer_conf(stream)):
            await asyncio.wait_for(asyncio.to_thread(count.done.wait), 300)

    asyncio.run(main())
    return count.rate


def run_consumer(records: int = 200_000, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` interleaved runs of each processor kind on one pre-filled 4-shard
    stream (KPL-aggregated by the engine, so processing, not fetching, dominates)."""
    paths: dict[str, Callable[[str, int], float]] = {
        "plain": functools.partial(_on_kinesis_consumer, coroutine=False),
        "async_own_loop": functools.partial(_on_kinesis_consumer, coroutine=True),
        "async_callers_loop": _coroutine_callers_loop,
    }
    best = dict.fromkeys(paths, 0.0)
    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())  # where the consumers' own clients go
        kinesis = local.kinesis_client()
        stream = f"bench-aio-{uuid.uuid4().hex[:8]}"
        kinesis.create_stream(StreamName=stream, ShardCount=SHARDS)
        kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
        payload = b"x" * 100
        with KinesisProducer({"RateLimit": 100_000}, stream) as producer:
            futures = [
                producer.add_user_record(ProducerEvent(f"pk-{n}", payload)) for n in range(records)
            ]
            if not all(f.result(120).successful for f in futures):
                raise RuntimeError("the stream could not be filled")
        for _ in range(rounds):
            for name, path in paths.items():
                best[name] = max(best[name], path(stream, records))
    return {
        **best,
        "ratio_own_loop": best["async_own_loop"] / best["plain"],
        "ratio_callers_loop": best["async_callers_loop"] / best["plain"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5_000, help="outstanding records / tasks")
    parser.add_argument("--consumer-records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="consumer runs per path")
    parser.add_argument("--producer-rounds", type=int, default=5)
    parser.add_argument(
        "--gc-off", action="store_true", help="producer paths with the cyclic GC disabled"
    )
    parser.add_argument("--producer-only", action="store_true", help="skip the consumer part")
    args = parser.parse_args(argv)
    # The output is tables, not log lines.
    logging.basicConfig(level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING"))
    events = producer_actor._events(args.records, args.payload_size)
    producer = run_producer(events, args.window, args.producer_rounds, gc_off=args.gc_off)
    consumer = {} if args.producer_only else run_consumer(args.consumer_records, args.rounds)
    window = args.window
    rows = [
        ("producer: engine, window {window}, callbacks count", "engine_count", producer),
        ("producer: engine, window {window}, callbacks read", "engine_read", producer),
        ("producer: AsyncKinesisProducer.put, {window} tasks", "asyncio", producer),
        ("asyncio alone: {window} tasks await a future each, no engine", "loop_alone", producer),
        ("consumer: plain function process_record", "plain", consumer),
        ("consumer: async def, KinesisConsumer (own loop)", "async_own_loop", consumer),
        (
            "consumer: async def, AsyncKinesisConsumer (caller's loop)",
            "async_callers_loop",
            consumer,
        ),
    ]
    consumer_part = (
        f"; consumer: {args.consumer_records} records on kinesalite, best of {args.rounds}"
        if consumer
        else ""
    )
    print(
        f"asyncio vs threads (producer: {args.records} records of {args.payload_size} B in "
        f"memory, best of {args.producer_rounds}{consumer_part})"
    )
    print(f"  {'path':<60}{'records/s':>12}{'ratio':>8}{'us CPU/record':>15}")
    for label, key, figures in rows if consumer else rows[:4]:
        baseline = figures["engine_count" if figures is producer else "plain"]
        cpu = f"{figures[f'cpu_us_{key}']:.1f}" if f"cpu_us_{key}" in figures else "-"
        ratio = "-" if key == "loop_alone" else f"{figures[key] / baseline:.0%}"
        print(f"  {label.format(window=window):<60}{figures[key]:>12,.0f}{ratio:>8}{cpu:>15}")
    floor = producer["cpu_us_engine_count"] + producer["cpu_us_loop_alone"]
    print(f"  the asyncio path's floor (engine + asyncio alone): {floor:.1f} us CPU/record")
    print("  targets: asyncio paths >= 80 % of their baseline (engine counting; plain function)")
    ok = producer["ratio_count"] >= 0.8 and consumer.get("ratio_own_loop", 1.0) >= 0.8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
