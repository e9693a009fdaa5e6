"""KinesisProducerActor on the real engine against kinesalite.

A service actor sends 50 000 records with ``SendWithCallback(reply_to=itself)`` through a
throttled producer actor (max-outstanding-requests 5000); every send must be confirmed exactly
once, and reading the 4-shard stream back (deaggregated) must give every record exactly once, at
the shard and sequence number its ``SendSuccessful`` reported.
"""

from __future__ import annotations

import runpy
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from kinesis_actors._aggregation import deaggregate
from kinesis_actors._config import ProducerConf, load_config
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.messages import (
    GetStats,
    ProducerActorStats,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)
from kinesis_actors.testing._local import LocalKinesis

RECORDS = 50_000
KEYS = 997


class Service(pykka.ThreadingActor):
    """Sends everything with callbacks and keeps every reply."""

    def __init__(self, producer: pykka.ActorRef[Any], done: threading.Event) -> None:
        super().__init__()
        self.producer = producer
        self.done = done
        self.replies: list[SendSuccessful | SendFailed] = []

    def on_receive(self, message: Any) -> Any:
        if message == "go":
            for n in range(RECORDS):
                event = ProducerEvent(f"key-{n % KEYS}", f"record-{n}")
                self.producer.tell(SendWithCallback(event, f"m-{n}", reply_to=self.actor_ref))
        elif isinstance(message, SendSuccessful | SendFailed):
            self.replies.append(message)
            if len(self.replies) == RECORDS:
                self.done.set()
        elif message == "replies":
            return list(self.replies)
        return None


def read_back(kinesis: Any, stream: str) -> list[tuple[str, str, bytes]]:
    """(shard id, sequence number, data) of every user record in the stream."""
    found: list[tuple[str, str, bytes]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                for member in deaggregate(record["Data"], record["PartitionKey"]):
                    found.append((shard["ShardId"], record["SequenceNumber"], member.data))
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return found


def test_fifty_thousand_sends_with_callbacks_all_confirmed_and_read_back(
    local_kinesis: LocalKinesis, make_stream: Callable[..., str], kinesis: Any
) -> None:
    stream = make_stream(4)
    conf = ProducerConf.from_config(
        load_config(
            f"""
            kinesis {{
              it-producer {{
                stream-name = "{stream}"
                akka {{ max-outstanding-requests = 5000, throttling-retry-millis = 20 }}
                kpl {{ RateLimit = 100000 }}
              }}
            }}
            """
        ),
        "it-producer",
    )
    producer = KinesisProducerActor.start(conf)
    done = threading.Event()
    service = Service.start(producer, done)
    try:
        service.tell("go")
        assert done.wait(180), "not every send was answered"
        replies: list[SendSuccessful | SendFailed] = service.ask("replies")
        stats: ProducerActorStats = producer.ask(GetStats())
    finally:
        service.stop()
        producer.stop()

    failures = [r for r in replies if isinstance(r, SendFailed)]
    assert failures == []
    ids = Counter(r.message_id for r in replies)
    assert len(ids) == RECORDS and set(ids.values()) == {1}
    assert (stats.sent, stats.failed, stats.in_flight, stats.queued) == (RECORDS, 0, 0, 0)

    stored = read_back(kinesis, stream)
    copies = Counter(data for _, _, data in stored)
    assert len(copies) == RECORDS and set(copies.values()) == {1}, "lost or duplicated records"
    where = {data: (shard, seq) for shard, seq, data in stored}
    for reply in replies:
        assert isinstance(reply, SendSuccessful)
        n = int(reply.message_id.removeprefix("m-"))
        result = reply.user_record_result
        assert where[f"record-{n}".encode()] == (result.shard_id, result.sequence_number)


def test_send_and_stop_deliver_everything_queued(
    local_kinesis: LocalKinesis, make_stream: Callable[..., str], kinesis: Any
) -> None:
    """Fire-and-forget sends still waiting in the throttle queue are put by stop()."""
    stream = make_stream(1)
    conf = ProducerConf.from_config(
        load_config(
            f'kinesis.p {{ stream-name = "{stream}", akka.max-outstanding-requests = 100 }}'
        ),
        "p",
    )
    with capture_logs() as logs:
        producer = KinesisProducerActor.start(conf)
        for n in range(2000):
            producer.tell(Send(ProducerEvent(f"k{n}", f"send-{n}")))
        producer.stop()
    [stopping] = [e for e in logs if e["event"] == "producer actor stopping: flushing"]
    assert stopping["sent_from_queue"] > 0  # the stop really found queued sends
    copies = Counter(data for _, _, data in read_back(kinesis, stream))
    assert copies == Counter(f"send-{n}".encode() for n in range(2000))


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("producer_actor_within_actor.py", "10 sends answered, 0 failed"),
        ("producer_actor_from_plain_code.py", "asked 1000: 1000 sent, 0 failed"),
    ],
)
def test_the_examples_run_on_kinesalite(
    local_kinesis: LocalKinesis, capsys: pytest.CaptureFixture[str], example: str, expected: str
) -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / example
    assert runpy.run_path(str(path))["main"]([]) == 0
    assert expected in capsys.readouterr().out
