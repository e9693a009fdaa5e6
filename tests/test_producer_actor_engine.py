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
    Send,
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


def _gated_engine(
    client: Any, gate: threading.Event, bulk_sizes: list[int], order: list[bytes]
) -> Any:
    """An engine factory that waits for ``gate`` (so told messages pile up in the inbox) and
    records how the actor hands it records: the sizes of bulk calls, and every record's data."""

    def factory(c: ProducerConf) -> KinesisProducer:
        gate.wait(10)
        engine = KinesisProducer(c, client=client)
        bulk, single = engine.add_user_records, engine.add_user_record

        def add_user_records(events: Any, tags: Any, sink: Any) -> Any:
            bulk_sizes.append(len(events))
            order.extend(event.data for event in events)
            return bulk(events, tags, sink)

        def add_user_record(event: ProducerEvent, **kwargs: Any) -> Any:
            order.append(event.data)
            return single(event, **kwargs)

        engine.add_user_records = add_user_records  # type: ignore[method-assign]
        engine.add_user_record = add_user_record  # type: ignore[method-assign]
        return engine

    return factory


def test_told_sends_waiting_in_the_inbox_enter_the_engine_together_in_the_order_told() -> None:
    client: Any = InMemoryKinesis()
    gate = threading.Event()
    bulk_sizes: list[int] = []
    order: list[bytes] = []
    replies: queue.Queue[Any] = queue.Queue()
    service = _Replies.start(replies)
    actor = KinesisProducerActor.start(
        conf(), engine_factory=_gated_engine(client, gate, bulk_sizes, order)
    )
    try:
        told: list[bytes] = []
        for n in range(600):
            if n == 300:  # a Send among them keeps its place
                actor.tell(Send(ProducerEvent("k", b"fire-and-forget")))
                told.append(b"fire-and-forget")
            actor.tell(SendWithCallback(ProducerEvent("k", f"r{n}"), f"m{n}", reply_to=service))
            told.append(f"r{n}".encode())
        stats = actor.ask(GetStats(), block=False)
        gate.set()
        got = [replies.get(timeout=30) for _ in range(600)]
        counted = stats.get(timeout=30)
    finally:
        actor.stop()
        service.stop()
    # At most 256 at a time, and the Send and the GetStats first hand over those gathered.
    assert bulk_sizes == [256, 44, 256, 44]
    assert order == told
    assert (counted.sent + counted.in_flight, counted.failed) == (601, 0)
    assert all(isinstance(reply, SendSuccessful) for reply in got)
    assert sorted(reply.message_id for reply in got) == sorted(f"m{n}" for n in range(600))
    assert replies.empty()


def test_told_sends_gathered_when_the_stop_arrives_are_sent_and_answered() -> None:
    stream = InMemoryKinesis()
    client: Any = stream
    gate = threading.Event()
    bulk_sizes: list[int] = []
    replies: queue.Queue[Any] = queue.Queue()
    service = _Replies.start(replies)
    actor = KinesisProducerActor.start(
        conf(), engine_factory=_gated_engine(client, gate, bulk_sizes, [])
    )
    try:
        for n in range(300):
            actor.tell(SendWithCallback(ProducerEvent("k", f"r{n}"), f"m{n}", reply_to=service))
        stopped = actor.stop(block=False)
        gate.set()
        assert stopped.get(timeout=30) is True
        got = [replies.get(timeout=30) for _ in range(300)]
    finally:
        service.stop()
    assert bulk_sizes == [256, 44]  # the last 44 waited behind the stop: sent on stop
    assert all(isinstance(reply, SendSuccessful) for reply in got)
    assert len({reply.message_id for reply in got}) == 300 and replies.empty()
    stored = sum(
        1 for record in stream.records() for _ in deaggregate(record.data, record.partition_key)
    )
    assert stored == 300
