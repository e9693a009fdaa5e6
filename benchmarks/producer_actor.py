"""The producer actor's cost: SendWithCallback from another actor versus the engine alone.

Run ``python benchmarks/producer_actor.py`` (in-memory Kinesis: no network, so the actor's own
overhead is what shows) or ``--backend kinesalite`` (local Kinesis on loopback). Both paths put
the same records through a fresh ``KinesisProducer`` in the same run:

- engine: plain code calls ``add_user_record`` and counts its futures' callbacks;
- actor: a sender actor tells ``SendWithCallback(event, reply_to=itself)`` to a
  ``KinesisProducerActor`` and counts the ``SendSuccessful`` replies.

The target (issue #4) is an actor path at >= 70 % of the engine's throughput.
``run()`` returns the numbers for other benchmark scripts.
"""

from __future__ import annotations

import argparse
import gc
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
import structlog

from kinesis_actors.config import ProducerConf, load_config
from kinesis_actors.models import ProducerEvent
from kinesis_actors.producer.actor import (
    GetStats,
    KinesisProducerActor,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)
from kinesis_actors.producer.engine import KinesisProducer

__all__ = ["main", "run"]

EngineFactory = Callable[[ProducerConf], KinesisProducer]


def _events(count: int, payload_size: int) -> list[ProducerEvent]:
    payload = b"x" * payload_size
    return [ProducerEvent(f"pk-{i}", payload) for i in range(count)]


def _engine_alone(
    factory: EngineFactory, conf: ProducerConf, events: list[ProducerEvent], *, read: bool
) -> float:
    """Plain code on the engine; with ``read`` each callback looks at its record's outcome."""
    engine = factory(conf)
    done = threading.Event()
    remaining = [len(events)]

    def count(_future: Any) -> None:  # engine thread; the cheapest callback possible
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()

    def read_outcome(future: Any) -> None:  # what a useful callback does
        if future.exception() is None:
            future.result()
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()

    callback = read_outcome if read else count
    try:
        started = time.perf_counter()
        for ev in events:
            engine.add_user_record(ev).add_done_callback(callback)
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
    """A service actor: sends everything with callbacks, counts the replies."""

    def __init__(
        self, producer: pykka.ActorRef[Any], events: list[ProducerEvent], done: threading.Event
    ) -> None:
        super().__init__()
        self._producer = producer
        self._events = events
        self._done = done
        self._remaining = len(events)
        self.failures = 0

    def on_receive(self, message: Any) -> Any:
        if message == "go":
            me = self.actor_ref
            tell = self._producer.tell
            for ev in self._events:
                tell(SendWithCallback(ev, reply_to=me))
        elif isinstance(message, SendSuccessful | SendFailed):
            if isinstance(message, SendFailed):
                self.failures += 1
            self._remaining -= 1
            if self._remaining == 0:
                self._done.set()
        elif message == "failures":
            return self.failures
        return None


def _actor_path(factory: EngineFactory, conf: ProducerConf, events: list[ProducerEvent]) -> float:
    producer = KinesisProducerActor.start(conf, engine_factory=factory)
    done = threading.Event()
    sender = _Sender.start(producer, events, done)
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
        from kinesis_actors.producer.testing import InMemoryKinesis

        tree = load_config('kinesis { bench { stream-name = "bench" } }')
        conf = ProducerConf.from_config(tree, "bench")

        def in_memory(c: ProducerConf) -> KinesisProducer:
            client: Any = InMemoryKinesis(shards, keep=False)
            return KinesisProducer(c, client=client)

        yield conf, in_memory
        return
    from kinesis_actors.aws import producer_client
    from kinesis_actors.local import LocalKinesis

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
) -> dict[str, float]:
    """Best of ``rounds`` for each path, interleaved so all see the same machine state."""
    events = _events(records, payload_size)
    best = {"engine_count": math.inf, "engine_read": math.inf, "actor": math.inf}
    with _backend(backend, shards) as (conf, factory):
        for _ in range(rounds):
            gc.collect()
            t = _engine_alone(factory, conf, events, read=False)
            best["engine_count"] = min(best["engine_count"], t)
            gc.collect()
            t = _engine_alone(factory, conf, events, read=True)
            best["engine_read"] = min(best["engine_read"], t)
            gc.collect()
            best["actor"] = min(best["actor"], _actor_path(factory, conf, events))
    rate = {name: records / seconds for name, seconds in best.items()}
    return {
        "records": records,
        "engine_counting_callbacks_per_s": rate["engine_count"],
        "engine_reading_callbacks_per_s": rate["engine_read"],
        "actor_records_per_s": rate["actor"],
        "actor_to_engine_counting": rate["actor"] / rate["engine_count"],
        "actor_to_engine_reading": rate["actor"] / rate["engine_read"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--backend", choices=("memory", "kinesalite"), default="memory")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = run(args.records, args.payload_size, args.backend, args.shards, args.rounds)
    print(
        f"producer actor vs engine ({args.backend}, {args.records} records of "
        f"{args.payload_size} B, best of {args.rounds}):\n"
        f"  engine alone, callbacks only count        "
        f"{result['engine_counting_callbacks_per_s']:>9,.0f} records/s\n"
        f"  engine alone, callbacks read the outcome  "
        f"{result['engine_reading_callbacks_per_s']:>9,.0f} records/s\n"
        f"  actor, SendWithCallback from an actor     "
        f"{result['actor_records_per_s']:>9,.0f} records/s\n"
        f"  actor / engine (counting callbacks)       {result['actor_to_engine_counting']:>9.0%}\n"
        f"  actor / engine (reading callbacks)        {result['actor_to_engine_reading']:>9.0%}"
        "  (target >= 70 %)"
    )
    return 0 if result["actor_to_engine_reading"] >= 0.7 else 1


if __name__ == "__main__":
    sys.exit(main())
