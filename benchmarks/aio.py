"""asyncio entry points against their threaded baselines, in one run.

Run ``python benchmarks/aio.py`` (producer: in-memory Kinesis, so the asyncio layer's own cost
shows; consumer: kinesalite + dynalite on loopback). The name keeps the standard library's
``asyncio`` importable by the other scripts of this folder. Each rate is the best of ``--rounds``
interleaved runs.

1. Producer: plain code calls the engine's ``add_user_record`` with at most ``--window`` records
   unanswered (callbacks read the outcome) versus ``AsyncKinesisProducer.put`` awaited by
   ``--window`` tasks (``max-outstanding-requests`` = the window). Target: >= 80 %.
2. Consumer: a plain function ``process_record`` versus an ``async def`` one on the same
   pre-filled stream (each run a fresh lease table, from TRIM_HORIZON). Target: >= 80 %.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import gc
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from kinesis_actors import ProducerConf, ProducerEvent, load_config
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors.aio import AsyncKinesisProducer
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis

__all__ = ["main", "run_producer"]

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


def run_producer(
    records: int = 100_000, payload_size: int = 100, window: int = 5_000, rounds: int = 3
) -> dict[str, float]:
    """Best of ``rounds`` of each producer path, interleaved; records/s and the ratio."""
    payload = b"x" * payload_size
    events = [ProducerEvent(f"pk-{n}", payload) for n in range(records)]
    conf = _producer_conf(window)
    paths: dict[str, Callable[[], float]] = {
        "engine_count": lambda: _engine_path(conf, events, window, read=False),
        "engine_read": lambda: _engine_path(conf, events, window, read=True),
        "asyncio": lambda: _async_path(conf, events, window),
    }
    best = dict.fromkeys(paths, math.inf)
    gc.collect()
    gc.freeze()
    try:
        for _ in range(rounds):
            for name, path in paths.items():
                gc.collect()
                best[name] = min(best[name], path())
    finally:
        gc.unfreeze()
    rate = {name: records / seconds for name, seconds in best.items()}
    return {
        **rate,
        "ratio_count": rate["asyncio"] / rate["engine_count"],
        "ratio_read": rate["asyncio"] / rate["engine_read"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5_000, help="outstanding records / tasks")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    producer = run_producer(args.records, args.payload_size, args.window, args.rounds)
    rows = [
        (f"producer: engine, window {args.window}, callbacks count", producer["engine_count"]),
        (f"producer: engine, window {args.window}, callbacks read", producer["engine_read"]),
        (f"producer: AsyncKinesisProducer.put, {args.window} tasks", producer["asyncio"]),
    ]
    print(
        f"asyncio vs threads ({args.records} records of {args.payload_size} B, "
        f"best of {args.rounds})"
    )
    print(f"  {'path':<56}{'records/s':>12}{'ratio':>8}")
    for label, rate in rows:
        print(f"  {label:<56}{rate:>12,.0f}{rate / producer['engine_count']:>8.0%}")
    print("  target: AsyncKinesisProducer.put >= 80 % of the engine (counting callbacks)")
    return 0 if producer["ratio_count"] >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
