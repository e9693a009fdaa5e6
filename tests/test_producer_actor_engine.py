"""KinesisProducerActor on the real KinesisProducer, with an in-memory stream (no network)."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from typing import Any

import pykka

from kinesis_actors._aggregation import deaggregate
from kinesis_actors._config import ProducerConf, load_config
from kinesis_actors._errors import PartitionKeyError, RecordTooLargeError
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors._producer.messages import (
    GetStats,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis


def conf(extra: str = "") -> ProducerConf:
    return ProducerConf.from_config(load_config(f'kinesis.p {{ stream-name = "s"\n{extra} }}'), "p")


def test_real_engine_confirms_every_record_and_fails_only_the_invalid_ones() -> None:
    stream = InMemoryKinesis(shard_count=2)
    client: Any = stream
    actor = KinesisProducerActor.start(
        conf("akka.max-outstanding-requests = 500"),
        engine_factory=lambda c: KinesisProducer(c, client=client),
    )
    try:
        answers = {}
        for n in range(3000):
            key = "" if n == 1234 else f"k{n % 50}"
            payload = b"x" * 2_000_000 if n == 2345 else f"r{n}".encode()
            answers[n] = actor.ask(SendWithCallback(ProducerEvent(key, payload), f"m{n}"))
        outcomes = {n: a.result(timeout=60) for n, a in answers.items()}
        stats = actor.ask(GetStats())
    finally:
        actor.stop()
    failed = {n: o for n, o in outcomes.items() if isinstance(o, SendFailed)}
    assert set(failed) == {1234, 2345}
    assert isinstance(failed[1234].reason, PartitionKeyError)
    assert isinstance(failed[2345].reason, RecordTooLargeError)
    assert all(isinstance(o, SendSuccessful) for n, o in outcomes.items() if n not in failed)
    assert (stats.sent, stats.failed) == (2998, 2)
    # aggregated: count the user records inside the stored Kinesis records
    stored = Counter(
        member.data
        for record in stream.records()
        for member in deaggregate(record.data, record.partition_key)
    )
    assert sum(stored.values()) == 2998 and set(stored.values()) == {1}


def test_stop_releases_the_engine_threads() -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("kinesis-producer")}
    client: Any = InMemoryKinesis()
    actor = KinesisProducerActor.start(
        conf(), engine_factory=lambda c: KinesisProducer(c, client=client)
    )
    reply = actor.ask(SendWithCallback(ProducerEvent("k", "v"))).result(timeout=30)
    assert isinstance(reply, SendSuccessful)
    assert actor.stop() is True
    after = {t for t in threading.enumerate() if t.name.startswith("kinesis-producer")}
    assert after <= before
    assert not pykka.ActorRegistry.get_all()


class _Replies(pykka.ThreadingActor):
    """A service actor: keeps every reply it is told."""

    def __init__(self, replies: queue.Queue[Any]) -> None:
        super().__init__()
        self.replies = replies

    def on_receive(self, message: Any) -> Any:
        self.replies.put(message)
        return None


def test_told_sends_through_the_engine_sink_are_answered_once_even_when_stopped_at_once() -> None:
    # No throttle: a told SendWithCallback goes straight to the engine, whose sink (not a done
    # callback per record) hands the finished records back to the actor.
    stream = InMemoryKinesis(shard_count=2)
    client: Any = stream
    replies: queue.Queue[Any] = queue.Queue()
    service = _Replies.start(replies)
    actor = KinesisProducerActor.start(
        conf(), engine_factory=lambda c: KinesisProducer(c, client=client)
    )
    try:
        for n in range(2000):
            key = "" if n == 777 else f"k{n % 50}"
            actor.tell(SendWithCallback(ProducerEvent(key, f"r{n}"), f"m{n}", reply_to=service))
        assert actor.stop() is True  # flushes: every send is answered before the stop returns
        got: list[Any] = []
        while len(got) < 2000:
            got.append(replies.get(timeout=30))
    finally:
        actor.stop()
        service.stop()
    ids = Counter(reply.message_id for reply in got)
    assert set(ids.values()) == {1} and len(ids) == 2000
    [failed] = [reply for reply in got if isinstance(reply, SendFailed)]
    assert (failed.message_id, type(failed.reason)) == ("m777", PartitionKeyError)
    assert replies.empty()
    stored = sum(
        1 for record in stream.records() for _ in deaggregate(record.data, record.partition_key)
    )
    assert stored == 1999


def test_an_engine_subclass_without_the_sink_keyword_is_served_through_done_callbacks() -> None:
    class Counting(KinesisProducer):
        added = 0

        def add_user_record(self, event: ProducerEvent) -> Any:  # type: ignore[override]
            Counting.added += 1
            return super().add_user_record(event)

    client: Any = InMemoryKinesis()
    actor = KinesisProducerActor.start(conf(), engine_factory=lambda c: Counting(c, client=client))
    try:
        answers = [actor.ask(SendWithCallback(ProducerEvent("k", f"r{n}"))) for n in range(20)]
        outcomes = [a.result(timeout=30) for a in answers]
    finally:
        actor.stop()
    assert all(isinstance(o, SendSuccessful) for o in outcomes)
    assert Counting.added == 20
