"""The producer actor's cost: SendWithCallback from another actor versus the engine alone.

Run ``python benchmarks/producer_actor.py`` (in-memory Kinesis: no network, so the actor's own
overhead is what shows) or ``--backend kinesalite`` (local Kinesis on loopback). Every path puts
the same records through a fresh ``KinesisProducer`` in the same run:

- engine, counting: plain code calls ``add_user_record``; callbacks only count (the floor);
- engine, reading: the same, but each callback reads its outcome (``exception()``/``result()``),
  as a useful callback does;
- actor: a service actor tells ``SendWithCallback(event, reply_to=itself)`` to a
  ``KinesisProducerActor`` and counts the ``SendSuccessful`` replies.

``--window N`` keeps at most N records unanswered in every path (the back-pressure a real
producer applies; the engine's own example keeps 5 000); ``--window 0`` sends everything at
once. The target (issue #4) is an actor path at >= 70 % of the engine's throughput.
``run()`` returns the numbers for other benchmark scripts.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pykka

from kinesis_actors._config import ProducerConf, load_config
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors._producer.messages import (
    GetStats,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)

__all__ = ["main", "run"]

EngineFactory = Callable[[ProducerConf], KinesisProducer]
CHUNK = 500  # records sent in one go before looking at the window again


def _events(count: int, payload_size: int) -> list[ProducerEvent]:
    payload = b"x" * payload_size
    return [ProducerEvent(f"pk-{i}", payload) for i in range(count)]


def _engine_alone(
    factory: EngineFactory,
    conf: ProducerConf,
    events: list[ProducerEvent],
    *,
    read: bool,
    window: int,
) -> float:
    """Plain code on the engine; with ``read`` each callback looks at its record's outcome."""
    engine = factory(conf)
    done = threading.Event()
    room = threading.Event()
    total = len(events)
    limit = window - CHUNK if window else math.inf
    issued = [0]
    finished = [0]

    def count(_future: Any) -> None:  # engine thread
        finished[0] += 1
        if finished[0] == total:
            done.set()
        elif issued[0] - finished[0] <= limit:
            room.set()

    def read_outcome(future: Any) -> None:
        if future.exception() is None:
            future.result()
        count(future)

    callback = read_outcome if read else count
    try:
        started = time.perf_counter()
        for start in range(0, total, CHUNK):
            while issued[0] - finished[0] > limit:
                room.clear()
                if issued[0] - finished[0] > limit:
                    room.wait(1.0)
            for ev in events[start : start + CHUNK]:
                engine.add_user_record(ev).add_done_callback(callback)
            issued[0] += min(CHUNK, total - start)
        if not done.wait(600):
            raise RuntimeError("engine: records did not complete")
        elapsed = time.perf_counter() - started
    finally:
        engine.stop()
    failed = engine.stats().user_records_failed
    if failed:
        raise RuntimeError(f"engine: {failed} records failed")
    return elapsed


class _Sender(pykka.ThreadingActor):
    """A service actor: sends with callbacks in chunks within the window, counts the replies."""

    def __init__(
        self,
        producer: pykka.ActorRef[Any],
        events: list[ProducerEvent],
        window: int,
        done: threading.Event,
    ) -> None:
        super().__init__()
        self._producer = producer
        self._events = events
        self._limit = window - CHUNK if window else math.inf
        self._done = done
        self._next = 0
        self._answered = 0
        self._waiting = False
        self.failures = 0

    def on_receive(self, message: Any) -> Any:
        if message == "go":
            self._send_chunk()
        elif isinstance(message, SendSuccessful | SendFailed):
            if isinstance(message, SendFailed):
                self.failures += 1
            self._answered += 1
            if self._answered == len(self._events):
                self._done.set()
            elif self._waiting and self._next - self._answered <= self._limit:
                self._waiting = False
                self._send_chunk()
        elif message == "failures":
            return self.failures
        return None

    def _send_chunk(self) -> None:
        if self._next - self._answered > self._limit:
            self._waiting = True  # a reply will resume
            return
        me = self.actor_ref
        tell = self._producer.tell
        for ev in self._events[self._next : self._next + CHUNK]:
            tell(SendWithCallback(ev, reply_to=me))
        self._next += CHUNK
        if self._next < len(self._events):
            me.tell("go")  # handle the replies that came in meanwhile, then go on


def _actor_path(
    factory: EngineFactory, conf: ProducerConf, events: list[ProducerEvent], *, window: int
) -> float:
    producer = KinesisProducerActor.start(conf, engine_factory=factory)
    done = threading.Event()
    sender = _Sender.start(producer, events, window, done)
    try:
        producer.ask(GetStats())  # on_start has built the engine
        started = time.perf_counter()
        sender.tell("go")
        if not done.wait(600):
            raise RuntimeError("actor: replies did not arrive")
        elapsed = time.perf_counter() - started
        failures = sender.ask("failures")
    finally:
        sender.stop()
        producer.stop()
    if failures:
        raise RuntimeError(f"actor: {failures} records failed")
    return elapsed


@contextmanager
def _backend(name: str, shards: int) -> Iterator[tuple[ProducerConf, EngineFactory]]:
    if name == "memory":
        from kinesis_actors.testing._memory_kinesis import InMemoryKinesis

        # No per-shard rate limit: the in-memory stream has none, and at the default 150 % of
        # 1 MiB/s per shard the limiter (not the actor) would cap both paths alike.
        tree = load_config(
            'kinesis { bench { stream-name = "bench", kpl { RateLimit = 100000 } } }'
        )
        conf = ProducerConf.from_config(tree, "bench")

        def in_memory(c: ProducerConf) -> KinesisProducer:
            client: Any = InMemoryKinesis(shards, keep=False)
            return KinesisProducer(c, client=client)

        yield conf, in_memory
        return
    from kinesis_actors._aws import producer_client
    from kinesis_actors.testing._local import LocalKinesis

    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())
        stream = f"bench-actor-{uuid.uuid4().hex[:8]}"
        tree = load_config(f'kinesis {{ bench {{ stream-name = "{stream}" }} }}')
        conf = ProducerConf.from_config(tree, "bench")
        client = producer_client(conf.kpl)
        client.create_stream(StreamName=stream, ShardCount=shards)
        client.get_waiter("stream_exists").wait(
            StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        yield conf, KinesisProducer


def run(
    records: int = 100_000,
    payload_size: int = 100,
    backend: str = "memory",
    shards: int = 4,
    rounds: int = 3,
    window: int = 10_000,
) -> dict[str, float]:
    """Best of ``rounds`` for each path, interleaved so all see the same machine state.

    The records exist before timing starts and are frozen out of the garbage collector's reach
    (``gc.freeze``) for every path alike, as in ``benchmarks/producer.py``.
    """
    events = _events(records, payload_size)
    gc.collect()
    gc.freeze()
    best = {"engine_count": math.inf, "engine_read": math.inf, "actor": math.inf}
    cpu = dict(best)
    paths: dict[str, Callable[[EngineFactory, ProducerConf], float]] = {
        "engine_count": lambda f, c: _engine_alone(f, c, events, read=False, window=window),
        "engine_read": lambda f, c: _engine_alone(f, c, events, read=True, window=window),
        "actor": lambda f, c: _actor_path(f, c, events, window=window),
    }
    try:
        with _backend(backend, shards) as (conf, factory):
            for _ in range(rounds):
                for name, path in paths.items():
                    gc.collect()
                    cpu_started = time.process_time()
                    best[name] = min(best[name], path(factory, conf))
                    cpu[name] = min(cpu[name], time.process_time() - cpu_started)
    finally:
        gc.unfreeze()
    rate = {name: records / seconds for name, seconds in best.items()}
    return {
        "records": records,
        "window": window,
        "engine_counting_callbacks_per_s": rate["engine_count"],
        "engine_reading_callbacks_per_s": rate["engine_read"],
        "actor_records_per_s": rate["actor"],
        "actor_to_engine_counting": rate["actor"] / rate["engine_count"],
        "actor_to_engine_reading": rate["actor"] / rate["engine_read"],
        # CPU seconds of this process (all threads) per record: steadier on a busy machine.
        "engine_counting_cpu_us": cpu["engine_count"] / records * 1e6,
        "engine_reading_cpu_us": cpu["engine_read"] / records * 1e6,
        "actor_cpu_us": cpu["actor"] / records * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--backend", choices=("memory", "kinesalite"), default="memory")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--window", type=int, default=10_000, help="max unanswered records; 0 = no limit"
    )
    args = parser.parse_args(argv)
    if args.window and args.window <= CHUNK:
        parser.error(f"--window must be 0 or more than {CHUNK}")
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    result = run(
        args.records, args.payload_size, args.backend, args.shards, args.rounds, args.window
    )
    window = f"window {args.window}" if args.window else "no window"
    print(
        f"producer actor vs engine ({args.backend}, {args.records} records of "
        f"{args.payload_size} B, {window}, best of {args.rounds}):\n"
        f"  engine alone, callbacks only count        "
        f"{result['engine_counting_callbacks_per_s']:>9,.0f} records/s"
        f"  {result['engine_counting_cpu_us']:5.1f} us CPU/record\n"
        f"  engine alone, callbacks read the outcome  "
        f"{result['engine_reading_callbacks_per_s']:>9,.0f} records/s"
        f"  {result['engine_reading_cpu_us']:5.1f} us CPU/record\n"
        f"  actor, SendWithCallback from an actor     "
        f"{result['actor_records_per_s']:>9,.0f} records/s"
        f"  {result['actor_cpu_us']:5.1f} us CPU/record\n"
        f"  actor / engine (counting callbacks)       {result['actor_to_engine_counting']:>9.0%}"
        "  (target >= 70 %)\n"
        f"  actor / engine (reading callbacks)        {result['actor_to_engine_reading']:>9.0%}"
    )
    return 0 if result["actor_to_engine_counting"] >= 0.7 else 1


if __name__ == "__main__":
    sys.exit(main())
