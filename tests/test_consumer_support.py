"""Fakes and probes shared by the consumer's unit tests (no tests here).

``Probe`` is the Akka TestProbe of the Scala specs: an actor that records what it receives, with
an optional autopilot. ``FakeCoordinator`` is an in-memory lease coordinator; ``FakeKinesis`` a
scriptable stand-in for the boto3 Kinesis client (iterators, shard end, expiry, throttling).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pykka
from botocore.exceptions import ClientError

from kinesis_actors._config import CheckpointerConf, ConsumerConf, WorkerConf, load_config
from kinesis_actors._consumer.messages import ProcessEvent
from kinesis_actors._errors import ShutdownError
from kinesis_actors._leases.lease import HeldLease
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel

SHARD = "shardId-000000000000"


def worker_conf(**overrides: Any) -> WorkerConf:
    values: dict[str, Any] = {
        "batch_timeout": 0.3,
        "failed_message_retries": 1,
        "failure_tolerance_percentage": 0.0,
        "failure_policy": "consumer",
        "graceful_shutdown_hook": False,
        "shutdown_timeout": 1.0,
        "max_blocking_threads": 8,
        "blocking_thread_idle": 5.0,
        "traceback_interval": 60.0,
        "max_concurrent_records": 1,
        "on_skipped": None,
        "dead_letter_stream": None,
    }
    values.update(overrides)
    return WorkerConf(**values)


def consumer_conf(hocon: str = "") -> ConsumerConf:
    """A consumer config with test timings; ``hocon`` overrides inside ``test-consumer``."""
    text = f"""
    kinesis {{
      application-name = "unit"
      test-consumer {{
        stream-name = "stream"
        worker {{ batchTimeoutSeconds = 0.5, failedMessageRetries = 1,
                 failureTolerancePercentage = 0, gracefulShutdownHook = false,
                 shutdownTimeoutSeconds = 2 }}
        checkpointer {{ backoffMillis = 100, intervalMillis = 50, notificationDelayMillis = 20 }}
        kcl {{ failoverTimeMillis = 1000, idleTimeBetweenReadsInMillis = 20,
              taskBackoffTimeMillis = 50, parentShardPollIntervalMillis = 50,
              shardSyncIntervalMillis = 500, releasedLeasePollMillis = 50,
              maxRecords = 100 }}
        {hocon}
      }}
    }}
    """
    return ConsumerConf.from_config(load_config(text), "test-consumer")


def checkpointer_conf(**overrides: Any) -> CheckpointerConf:
    values: dict[str, Any] = {"backoff": 0.3, "interval": 0.2, "notification_delay": 0.1}
    values.update(overrides)
    return CheckpointerConf(**values)


def seq(number: int | str, sub: int = 0) -> CompoundSequenceNumber:
    return CompoundSequenceNumber(str(number), sub)


def event(number: int | str, sub: int = 0, payload: bytes | None = None) -> ConsumerEvent:
    return ConsumerEvent(
        sequence_number=seq(number, sub),
        payload=payload if payload is not None else f"{number}/{sub}".encode(),
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        partition_key="pk",
        shard_id=SHARD,
    )


def wait_for(
    predicate: Callable[[], object], timeout: float = 3.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.005)


# -- probes ---------------------------------------------------------------------------------------


class _ProbeActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, inbox: queue.Queue[Any], autopilot: Callable[[Any], Any] | None) -> None:
        super().__init__()
        self._inbox = inbox
        self._autopilot = autopilot

    def on_receive(self, message: Any) -> Any:
        self._inbox.put(message)
        if self._autopilot is not None:
            return self._autopilot(message)
        return None


@dataclass
class Probe:
    """A recording actor. ``expect`` takes the next message (optionally skipping ``ignore``d
    types) and checks its type."""

    ref: pykka.ActorRef[Any]
    inbox: queue.Queue[Any]
    ignore: tuple[type, ...] = ()

    @classmethod
    def start(
        cls, autopilot: Callable[[Any], Any] | None = None, ignore: tuple[type, ...] = ()
    ) -> Probe:
        inbox: queue.Queue[Any] = queue.Queue()
        return cls(_ProbeActor.start(inbox, autopilot), inbox, ignore)

    def _next(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.inbox.get(timeout=max(remaining, 0.0001))
            except queue.Empty:
                raise AssertionError(f"no message within {timeout} s") from None
            if not isinstance(message, self.ignore):
                return message

    def expect(self, kind: type | object, timeout: float = 2.0) -> Any:
        message = self._next(timeout)
        if isinstance(kind, type):
            assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
        else:
            assert message == kind, f"expected {kind!r}, got {message!r}"
        return message

    def expect_no_message(self, duration: float) -> None:
        try:
            message = self._next(duration)
        except AssertionError:
            return
        raise AssertionError(f"unexpected message {message!r}")

    def receive_all(self, kind: type, count: int, timeout: float = 2.0) -> list[Any]:
        return [self.expect(kind, timeout) for _ in range(count)]

    def drain(self) -> list[Any]:
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self.ref.stop()


# -- lease coordinator ---------------------------------------------------------------------------


def lease(
    shard_id: str = SHARD,
    checkpoint: CompoundSequenceNumber | Sentinel = Sentinel.TRIM_HORIZON,
    token: str = "token-1",
    parents: tuple[str, ...] = (),
    hash_range: tuple[int, int] | None = None,
) -> HeldLease:
    return HeldLease(
        shard_id=shard_id,
        concurrency_token=token,
        checkpoint=checkpoint,
        parent_shard_ids=parents,
        starting_hash_key=hash_range[0] if hash_range else None,
        ending_hash_key=hash_range[1] if hash_range else None,
    )


@dataclass
class FakeCoordinator:
    """In-memory checkpoints; ``fail_with`` makes the next checkpoint calls raise."""

    checkpoints: dict[str, list[Any]] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    reads: list[tuple[str, int, int]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    blocked_children: set[str] = field(default_factory=set)
    fail_with: list[BaseException] = field(default_factory=list)
    checkpoint_delay: float = 0.0
    held: dict[str, HeldLease] = field(default_factory=dict)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    started: bool = False
    taking_stopped: bool = False
    stopped: bool = False
    #: Called by `hand_over` (on the manager's hand-over thread): the others' requests.
    on_hand_over: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, shard_id: str, token: str) -> None:
        if self.checkpoint_delay:
            time.sleep(self.checkpoint_delay)
        with self.lock:
            if self.fail_with:
                raise self.fail_with.pop(0)
            if self.tokens.get(shard_id, token) != token:
                raise ShutdownError(f"lease {shard_id} is not held with token {token}")

    def checkpoint(
        self, shard_id: str, sequence_number: CompoundSequenceNumber, token: str
    ) -> None:
        self._check(shard_id, token)
        with self.lock:
            self.checkpoints.setdefault(shard_id, []).append(sequence_number)
            self.history.append(("checkpoint", shard_id, sequence_number))

    def shard_ended(self, shard_id: str, token: str, child_shards: Any = None) -> tuple[str, ...]:
        self._check(shard_id, token)
        with self.lock:
            self.checkpoints.setdefault(shard_id, []).append(Sentinel.SHARD_END)
            self.ended.append(shard_id)
            self.history.append(("checkpoint", shard_id, Sentinel.SHARD_END))
        return ()

    def parents_finished(self, shard_id: str) -> bool:
        return shard_id not in self.blocked_children

    def record_read(self, shard_id: str, records: int, size: int) -> None:
        with self.lock:
            self.reads.append((shard_id, records, size))

    def release(self, shard_id: str, token: str) -> bool:
        with self.lock:
            self.released.append(shard_id)
            self.held.pop(shard_id, None)
            self.history.append(("release", shard_id))
        return True

    # The coordinator as the manager and the KinesisConsumer drive it.

    def grant(self, *leases: HeldLease) -> None:
        with self.lock:
            for held in leases:
                self.held[held.shard_id] = held
                self.tokens[held.shard_id] = held.concurrency_token

    def held_leases(self) -> tuple[HeldLease, ...]:
        with self.lock:
            out = []
            for shard_id, held in sorted(self.held.items()):
                points = self.checkpoints.get(shard_id)
                out.append(replace(held, checkpoint=points[-1]) if points else held)
            return tuple(out)

    def start(self) -> None:
        self.started = True

    def hand_over(self) -> None:
        self.taking_stopped = True
        self.history.append(("hand_over",))
        if self.on_hand_over is not None:
            self.on_hand_over()

    def stop_taking(self) -> None:
        self.taking_stopped = True

    def stop(self, release: bool | None = None) -> None:
        with self.lock:
            self.released.extend(sorted(self.held))
            self.held.clear()
            self.stopped = True
            self.history.append(("stop",))

    def last(self, shard_id: str = SHARD) -> Any:
        with self.lock:
            points = self.checkpoints.get(shard_id, [])
            return points[-1] if points else None


# -- Kinesis ---------------------------------------------------------------------------------------


def client_error(code: str, operation: str = "GetRecords") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


MAX_HASH = 2**128 - 1


@dataclass
class FakeShard:
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    parents: tuple[str, ...] = ()
    hash_range: tuple[int, int] = (0, MAX_HASH)


class FakeKinesis:
    """The two calls a shard reader makes. Iterators are ``shard:position:serial``; an iterator
    listed in ``expired`` raises ExpiredIteratorException; ``errors`` are raised by the next
    get_records calls in order."""

    def __init__(self) -> None:
        self.shards: dict[str, FakeShard] = {}
        self.errors: list[BaseException] = []
        self.iterator_errors: list[BaseException] = []
        self.expire_next = False
        #: Cleared = every get_records call blocks until it is set again.
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._serial = itertools.count()
        self._expired: set[str] = set()
        self.lock = threading.Lock()

    def put(
        self, shard_id: str, data: bytes, partition_key: str = "pk", number: int | None = None
    ) -> str:
        with self.lock:
            shard = self.shards.setdefault(shard_id, FakeShard())
            if number is None:
                number = (int(shard.records[-1]["SequenceNumber"]) + 1) if shard.records else 1000
            sequence_number = str(number)
            shard.records.append(
                {
                    "SequenceNumber": sequence_number,
                    "Data": data,
                    "PartitionKey": partition_key,
                    "ApproximateArrivalTimestamp": datetime.now(UTC),
                }
            )
            return sequence_number

    def add_shard(
        self,
        shard_id: str,
        parents: tuple[str, ...] = (),
        hash_range: tuple[int, int] = (0, MAX_HASH),
    ) -> None:
        with self.lock:
            self.shards[shard_id] = FakeShard(parents=parents, hash_range=hash_range)

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            shards = []
            for shard_id, shard in self.shards.items():
                entry: dict[str, Any] = {
                    "ShardId": shard_id,
                    "HashKeyRange": {
                        "StartingHashKey": str(shard.hash_range[0]),
                        "EndingHashKey": str(shard.hash_range[1]),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "0"},
                }
                if shard.closed:
                    entry["SequenceNumberRange"]["EndingSequenceNumber"] = "9" * 20
                for key, parent in zip(
                    ("ParentShardId", "AdjacentParentShardId"), shard.parents, strict=False
                ):
                    entry[key] = parent
                shards.append(entry)
            return {"Shards": shards}

    def close(self, shard_id: str) -> None:
        with self.lock:
            self.shards.setdefault(shard_id, FakeShard()).closed = True

    def _iterator(self, shard_id: str, position: int) -> str:
        return f"{shard_id}:{position}:{next(self._serial)}"

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("get_shard_iterator", kwargs))
            if self.iterator_errors:
                raise self.iterator_errors.pop(0)
            shard_id = kwargs["ShardId"]
            if shard_id not in self.shards:
                raise client_error("ResourceNotFoundException", "GetShardIterator")
            records = self.shards[shard_id].records
            kind = kwargs["ShardIteratorType"]
            numbers = [int(r["SequenceNumber"]) for r in records]
            if kind == "TRIM_HORIZON":
                position = 0
            elif kind == "LATEST":
                position = len(records)
            elif kind == "AT_SEQUENCE_NUMBER":
                position = next(
                    (
                        i
                        for i, n in enumerate(numbers)
                        if n >= int(kwargs["StartingSequenceNumber"])
                    ),
                    len(records),
                )
            elif kind == "AFTER_SEQUENCE_NUMBER":
                position = next(
                    (i for i, n in enumerate(numbers) if n > int(kwargs["StartingSequenceNumber"])),
                    len(records),
                )
            else:
                raise client_error("InvalidArgumentException", "GetShardIterator")
            return {"ShardIterator": self._iterator(shard_id, position)}

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        self.gate.wait()
        with self.lock:
            self.calls.append(("get_records", kwargs))
            iterator = kwargs["ShardIterator"]
            if self.errors:
                raise self.errors.pop(0)
            if self.expire_next or iterator in self._expired:
                self.expire_next = False
                self._expired.add(iterator)
                raise client_error("ExpiredIteratorException")
            shard_id, position_text, _ = iterator.rsplit(":", 2)
            shard = self.shards[shard_id]
            position = int(position_text)
            batch = shard.records[position : position + kwargs.get("Limit", 10000)]
            end = position + len(batch)
            response: dict[str, Any] = {
                "Records": [dict(r) for r in batch],
                "MillisBehindLatest": 0,
            }
            if not (shard.closed and end >= len(shard.records)):
                response["NextShardIterator"] = self._iterator(shard_id, end)
            return response

    def get_records_calls(self) -> int:
        with self.lock:
            return sum(1 for name, _ in self.calls if name == "get_records")


class Acker:
    """A processor autopilot that records every event and acknowledges it (unless ``hold``)."""

    def __init__(self) -> None:
        self.events: list[ConsumerEvent] = []
        self.lock = threading.Lock()
        self.hold = threading.Event()  # set = stop acknowledging

    def __call__(self, message: Any) -> None:
        if isinstance(message, ProcessEvent):
            with self.lock:
                self.events.append(message.event)
            if not self.hold.is_set():
                message.acknowledge()

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [e.payload for e in self.events]
