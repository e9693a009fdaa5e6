"""KinesisProducerActor against a fake engine whose futures the tests resolve by hand.

Ports the Scala library's KinesisProducerActorSpec (no response for Send; success and failure
callbacks; throttling at 10/10, still blocked at 9, released at 8; stop stops the producer) and
adds what the port promises beyond it: ask from plain code, replies to another actor, concurrent
senders, retries, the queue guard, stop with queued sends, and visible start failures.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from kinesis_actors._config import ProducerConf, ThrottlingConf, load_config
from kinesis_actors._errors import (
    PartitionKeyError,
    ProducerStoppedError,
    QueueFullError,
    UserRecordFailedError,
)
from kinesis_actors._models import Attempt, ProducerEvent, UserRecordResult
from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.messages import (
    GetStats,
    ProducerActorStats,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)

RETRY = 0.03  # throttling-retry for the tests, seconds


# -- fakes ----------------------------------------------------------------------------------------


def ok_result(seq: int = 1) -> UserRecordResult:
    return UserRecordResult(
        shard_id="shardId-000000000000",
        sequence_number=str(49_000_000 + seq),
        attempts=(Attempt(delay=0.0, duration=0.01, success=True),),
        successful=True,
    )


def failed_error() -> UserRecordFailedError:
    attempts = (
        Attempt(0.0, 0.02, "ProvisionedThroughputExceededException", "Rate exceeded for shard"),
        Attempt(0.1, 0.02, "Expired", "Record has reached expiration"),
    )
    return UserRecordFailedError(UserRecordResult(None, None, attempts, successful=False))


class FakeEngine:
    """The KinesisProducer interface; futures stay pending until a test resolves them."""

    def __init__(self, outstanding: int | None = None) -> None:
        self.forced_outstanding = outstanding
        self.records: list[tuple[ProducerEvent, concurrent.futures.Future[UserRecordResult]]] = []
        self.flushes = 0
        self.stops = 0
        self.stopped = False
        self.complete_on_stop = True
        self.created_in: str | None = None
        #: Cleared = add_user_record blocks (the actor is busy), so messages pile up behind it.
        self.gate = threading.Event()
        self.gate.set()
        self._cond = threading.Condition()
        self._pending = 0

    def add_user_record(self, event: ProducerEvent) -> concurrent.futures.Future[UserRecordResult]:
        assert self.gate.wait(10), "the test never opened the gate"
        with self._cond:
            if self.stopped:
                raise ProducerStoppedError("Kinesis producer has been stopped")
            future: concurrent.futures.Future[UserRecordResult] = concurrent.futures.Future()
            self.records.append((event, future))
            self._pending += 1
            self._cond.notify_all()
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: concurrent.futures.Future[UserRecordResult]) -> None:
        with self._cond:
            self._pending -= 1

    def outstanding_records_count(self) -> int:
        if self.forced_outstanding is not None:
            return self.forced_outstanding
        with self._cond:
            return self._pending

    def flush(self) -> None:
        self.flushes += 1

    def stop(self) -> None:
        self.stops += 1
        if self.complete_on_stop:
            self.complete_all()
        with self._cond:
            self.stopped = True

    # -- test helpers
    def wait_records(self, count: int, timeout: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.records) >= count, timeout), (
                f"{len(self.records)} records added, expected {count}"
            )

    def future(self, index: int) -> concurrent.futures.Future[UserRecordResult]:
        with self._cond:
            return self.records[index][1]

    def complete_all(self) -> None:
        with self._cond:
            pending = [(i, f) for i, (_, f) in enumerate(self.records) if not f.done()]
        for i, future in pending:
            future.set_result(ok_result(i))


class Probe(pykka.ThreadingActor):
    """Another actor: puts every message it receives on a queue the test reads."""

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> Any:
        self.inbox.put(message)
        return None


def expect_nothing(inbox: queue.Queue[Any], wait: float = 0.15) -> None:
    with pytest.raises(queue.Empty):
        got = inbox.get(timeout=wait)
        pytest.fail(f"unexpected message {got!r}")


def event(i: int = 0) -> ProducerEvent:
    return ProducerEvent(f"pk-{i}", f"payload {i}")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def inbox() -> queue.Queue[Any]:
    return queue.Queue()


@pytest.fixture
def probe(inbox: queue.Queue[Any]) -> Iterator[pykka.ActorRef[Probe]]:
    ref = Probe.start(inbox)
    yield ref
    ref.stop()


@pytest.fixture
def start_actor() -> Iterator[Callable[..., pykka.ActorRef[KinesisProducerActor]]]:
    refs: list[pykka.ActorRef[KinesisProducerActor]] = []

    def start(*args: Any, **kwargs: Any) -> pykka.ActorRef[KinesisProducerActor]:
        ref = KinesisProducerActor.start(*args, **kwargs)
        refs.append(ref)
        return ref

    yield start
    for ref in refs:
        ref.stop()


@pytest.fixture
def actor(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> pykka.ActorRef[KinesisProducerActor]:
    return start_actor(engine)


def producer_conf(extra: str = "") -> ProducerConf:
    tree = load_config(
        'kinesis {\n  application-name = "Spec"\n'
        f'  test-producer {{\n    stream-name = "int-test-stream-1"\n    {extra}\n  }}\n}}\n'
    )
    return ProducerConf.from_config(tree, "test-producer")


# -- KinesisProducerActorSpec ---------------------------------------------------------------------


def test_send_puts_the_record_once_and_answers_nothing(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    assert actor.ask(Send(event(1))) is None
    engine.wait_records(1)
    engine.future(0).set_result(ok_result())
    stats = actor.ask(GetStats())
    assert len(engine.records) == 1
    assert engine.records[0][0] == event(1)
    wait_until(lambda: actor.ask(GetStats()).sent == 1)
    assert stats.failed == 0


def test_send_with_callback_replies_send_successful_to_reply_to(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    actor.tell(SendWithCallback(event(), message_id="id-1", reply_to=probe))
    engine.wait_records(1)
    expect_nothing(inbox)  # not before the record completes
    engine.future(0).set_result(ok_result(7))
    assert inbox.get(timeout=5) == SendSuccessful("id-1", ok_result(7))
    expect_nothing(inbox)


def test_failed_record_replies_send_failed_with_event_id_and_reason(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    error = failed_error()
    actor.tell(SendWithCallback(event(3), message_id="id-3", reply_to=probe))
    engine.wait_records(1)
    engine.future(0).set_exception(error)
    assert inbox.get(timeout=5) == SendFailed(event(3), "id-3", error)
    assert actor.ask(GetStats()).failed == 1


def test_throttles_at_max_outstanding_still_blocked_at_9_released_at_8(
    engine: FakeEngine,
    start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]],
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    engine.forced_outstanding = 10
    actor = start_actor(engine, throttling=ThrottlingConf(10, RETRY))
    actor.tell(SendWithCallback(event(), message_id="throttled", reply_to=probe))
    time.sleep(RETRY * 4)
    assert engine.records == []
    stats: ProducerActorStats = actor.ask(GetStats())
    assert (stats.throttled, stats.queued, stats.outstanding) == (True, 1, 10)

    engine.forced_outstanding = 9  # 9 is not < 0.9 * 10: still throttled
    time.sleep(RETRY * 4)
    assert engine.records == []

    engine.forced_outstanding = 8
    engine.wait_records(1)
    engine.future(0).set_result(ok_result())
    assert inbox.get(timeout=5) == SendSuccessful("throttled", ok_result())
    assert actor.ask(GetStats()).throttled is False


def test_stop_flushes_and_stops_the_engine(
    engine: FakeEngine, probe: pykka.ActorRef[Probe], inbox: queue.Queue[Any]
) -> None:
    actor = KinesisProducerActor.start(engine)
    actor.tell(SendWithCallback(event(), message_id="in-flight", reply_to=probe))
    engine.wait_records(1)
    assert actor.stop() is True
    assert engine.flushes >= 1
    assert engine.stops == 1
    # the record completed during stop(): its outcome was still delivered
    assert inbox.get(timeout=5) == SendSuccessful("in-flight", ok_result(0))


# -- beyond the Scala spec ------------------------------------------------------------------------


def test_ask_from_plain_code_returns_a_future_of_the_outcome(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    answer = actor.ask(SendWithCallback(event(), message_id="asked"))
    assert isinstance(answer, concurrent.futures.Future)
    assert not answer.done()
    # the actor keeps serving other messages while the record is in flight
    assert actor.ask(GetStats(), timeout=1).in_flight == 1
    engine.future(0).set_result(ok_result())
    assert answer.result(timeout=5) == SendSuccessful("asked", ok_result())


def test_ask_one_liner_for_a_failure(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    error = failed_error()
    threading.Timer(0.05, lambda: engine.future(0).set_exception(error)).start()
    outcome = actor.ask(SendWithCallback(event(), message_id="x")).result(timeout=5)
    assert outcome == SendFailed(event(), "x", error)


def test_with_reply_to_the_outcome_goes_there_and_ask_answers_none(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    assert actor.ask(SendWithCallback(event(), message_id="there", reply_to=probe)) is None
    engine.future(0).set_result(ok_result())
    assert inbox.get(timeout=5) == SendSuccessful("there", ok_result())


class Requester(pykka.ThreadingActor):
    """A service actor as in the README: sends with callback, collects the replies."""

    def __init__(self, producer: pykka.ActorRef[Any], done: queue.Queue[Any]) -> None:
        super().__init__()
        self.producer = producer
        self.done = done

    def on_receive(self, message: Any) -> Any:
        if message == "do-something":
            self.producer.tell(SendWithCallback(event(42), reply_to=self.actor_ref))
        elif isinstance(message, SendSuccessful | SendFailed):
            self.done.put(message)
        return None


def test_another_actor_gets_the_reply(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine, inbox: queue.Queue[Any]
) -> None:
    requester = Requester.start(actor, inbox)
    try:
        requester.tell("do-something")
        engine.wait_records(1)
        engine.future(0).set_result(ok_result())
        reply = inbox.get(timeout=5)
        assert isinstance(reply, SendSuccessful)
        assert uuid.UUID(reply.message_id).version == 1  # time-based by default
    finally:
        requester.stop()


def test_ten_thousand_concurrent_sends_every_callback_exactly_once(
    engine: FakeEngine,
    start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]],
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    actor = start_actor(engine, throttling=ThrottlingConf(500, 0.005))
    stop_completer = threading.Event()

    def completer() -> None:  # the "engine threads": complete futures in bursts, 1 in 97 fails
        done = 0
        while not stop_completer.is_set() or done < len(engine.records):
            with engine._cond:
                batch = engine.records[done:]
            for offset, (ev, future) in enumerate(batch):
                if int(ev.partition_key.rsplit("-", 1)[1]) % 97 == 0:
                    future.set_exception(failed_error())
                else:
                    future.set_result(ok_result(done + offset))
            done += len(batch)
            time.sleep(0.001)

    completers = [threading.Thread(target=completer, daemon=True)]
    completers[0].start()
    asked: dict[str, concurrent.futures.Future[Any]] = {}
    asked_lock = threading.Lock()

    def sender(worker: int) -> None:
        for n in range(2500):
            i = worker * 2500 + n
            message_id = f"m-{i}"
            if worker % 2 == 0:
                actor.tell(SendWithCallback(event(i), message_id=message_id, reply_to=probe))
            else:
                future = actor.ask(SendWithCallback(event(i), message_id=message_id))
                with asked_lock:
                    asked[message_id] = future

    senders = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=60)

    told: list[Any] = [inbox.get(timeout=30) for _ in range(5000)]
    answered = [f.result(timeout=30) for f in asked.values()]
    stop_completer.set()
    completers[0].join(timeout=10)
    expect_nothing(inbox, 0.2)  # nothing delivered twice

    outcomes = told + answered
    ids = [o.message_id for o in outcomes]
    assert len(ids) == len(set(ids)) == 10_000
    assert set(ids) == {f"m-{i}" for i in range(10_000)}
    failed = {o.message_id for o in outcomes if isinstance(o, SendFailed)}
    assert failed == {f"m-{i}" for i in range(10_000) if i % 97 == 0}
    assert len(engine.records) == 10_000
    stats = actor.ask(GetStats())
    assert (stats.sent, stats.failed, stats.in_flight, stats.queued) == (
        10_000 - len(failed),
        len(failed),
        0,
        0,
    )


def test_a_failing_record_among_good_ones(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    for i in range(5):
        actor.tell(SendWithCallback(event(i), message_id=f"r{i}", reply_to=probe))
    engine.wait_records(5)
    bad = PartitionKeyError("partition key must not be empty")
    for i in range(5):
        if i == 2:
            engine.future(i).set_exception(bad)
        else:
            engine.future(i).set_result(ok_result(i))
    replies = {m.message_id: m for m in (inbox.get(timeout=5) for _ in range(5))}
    assert replies["r2"] == SendFailed(event(2), "r2", bad)
    assert all(isinstance(replies[f"r{i}"], SendSuccessful) for i in (0, 1, 3, 4))


def test_send_failure_is_logged_with_id_partition_key_and_attempts(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    with capture_logs() as logs:
        actor.tell(Send(event(9), message_id="fire-and-forget"))
        engine.wait_records(1)
        engine.future(0).set_exception(failed_error())
        wait_until(lambda: actor.ask(GetStats()).failed == 1)
    [entry] = [e for e in logs if e.get("message_id") == "fire-and-forget"]
    assert entry["log_level"] == "error"
    assert entry["partition_key"] == "pk-9"
    assert [a["error_code"] for a in entry["attempts"]] == [
        "ProvisionedThroughputExceededException",
        "Expired",
    ]


def test_stop_sends_queued_messages_then_flushes(
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    engine.forced_outstanding = 10
    actor = KinesisProducerActor.start(engine, throttling=ThrottlingConf(10, 60.0))
    for i in range(3):
        actor.tell(SendWithCallback(event(i), message_id=f"q{i}", reply_to=probe))
    actor.tell(Send(event(3)))
    assert actor.ask(GetStats()).queued == 4
    assert engine.records == []
    actor.stop()
    assert [e for e, _ in engine.records] == [event(i) for i in range(4)]  # in order
    assert engine.flushes >= 1 and engine.stops == 1
    replies = sorted((inbox.get(timeout=5) for _ in range(3)), key=lambda m: m.message_id)
    assert replies == [SendSuccessful(f"q{i}", ok_result(i)) for i in range(3)]


def test_stop_fails_each_queued_send_when_the_engine_cannot_send(
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    engine.forced_outstanding = 10
    actor = KinesisProducerActor.start(engine, throttling=ThrottlingConf(10, 60.0))
    answers = [actor.ask(SendWithCallback(event(i), message_id=f"q{i}")) for i in range(2)]
    actor.tell(SendWithCallback(event(2), message_id="q2", reply_to=probe))
    engine.stopped = True  # e.g. someone else stopped the shared engine
    actor.stop()
    outcomes = [a.result(timeout=5) for a in answers] + [inbox.get(timeout=5)]
    assert [o.message_id for o in outcomes] == ["q0", "q1", "q2"]
    assert all(isinstance(o, SendFailed) for o in outcomes)
    assert all(isinstance(o.reason, ProducerStoppedError) for o in outcomes)


def test_stop_fails_records_that_do_not_complete_within_the_stop_timeout(
    engine: FakeEngine,
) -> None:
    engine.complete_on_stop = False
    actor = KinesisProducerActor.start(engine, stop_timeout=0.1)
    answer = actor.ask(SendWithCallback(event(), message_id="stuck"))
    actor.stop()
    outcome = answer.result(timeout=5)
    assert isinstance(outcome, SendFailed)
    assert isinstance(outcome.reason, ProducerStoppedError)


def test_stop_engine_false_leaves_a_shared_engine_running(engine: FakeEngine) -> None:
    actor = KinesisProducerActor.start(engine, stop_engine=False)
    answer = actor.ask(SendWithCallback(event()))
    threading.Timer(0.05, engine.complete_all).start()
    actor.stop()
    assert isinstance(answer.result(timeout=5), SendSuccessful)
    assert engine.stops == 0 and engine.flushes == 1


def test_queue_guard_fails_sends_beyond_max_queued_sends(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    engine.forced_outstanding = 10
    actor = start_actor(engine, throttling=ThrottlingConf(10, 60.0), max_queued_sends=2)
    answers = [actor.ask(SendWithCallback(event(i), message_id=f"g{i}")) for i in range(3)]
    outcome = answers[2].result(timeout=5)
    assert isinstance(outcome, SendFailed)
    assert isinstance(outcome.reason, QueueFullError)
    assert not answers[0].done() and not answers[1].done()
    assert actor.ask(GetStats()).queued == 2


def test_failed_send_retries_resend_then_succeed(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine, failed_send_retries=2)
    answer = actor.ask(SendWithCallback(event(), message_id="retry-me"))
    engine.future(0).set_exception(failed_error())
    engine.wait_records(2)
    engine.future(1).set_exception(failed_error())
    engine.wait_records(3)
    engine.future(2).set_result(ok_result())
    assert answer.result(timeout=5) == SendSuccessful("retry-me", ok_result())
    stats = actor.ask(GetStats())
    assert (stats.retried, stats.sent, stats.failed) == (2, 1, 0)


def test_failed_send_retries_give_up_after_the_last_retry(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine, failed_send_retries=1)
    answer = actor.ask(SendWithCallback(event(), message_id="give-up"))
    engine.future(0).set_exception(failed_error())
    engine.wait_records(2)
    last = failed_error()
    engine.future(1).set_exception(last)
    assert answer.result(timeout=5) == SendFailed(event(), "give-up", last)


def test_invalid_records_are_not_retried(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine, failed_send_retries=3)
    answer = actor.ask(SendWithCallback(event()))
    engine.future(0).set_exception(PartitionKeyError("empty"))
    assert isinstance(answer.result(timeout=5), SendFailed)
    assert len(engine.records) == 1


def test_a_dead_reply_to_does_not_kill_the_actor(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine, inbox: queue.Queue[Any]
) -> None:
    dead = Probe.start(inbox)
    dead.stop()
    with capture_logs() as logs:
        actor.tell(SendWithCallback(event(), message_id="orphan", reply_to=dead))
        engine.wait_records(1)
        engine.future(0).set_result(ok_result())
        wait_until(lambda: actor.ask(GetStats()).sent == 1)
    assert actor.is_alive()
    assert any(e["event"] == "could not deliver to reply_to" for e in logs)


def test_add_user_record_raising_fails_only_that_send(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    engine.stopped = True
    outcome = actor.ask(SendWithCallback(event(), message_id="late")).result(timeout=5)
    assert isinstance(outcome, SendFailed)
    assert isinstance(outcome.reason, ProducerStoppedError)
    assert actor.is_alive()


def test_unknown_messages_are_logged_and_ignored(
    actor: pykka.ActorRef[KinesisProducerActor],
) -> None:
    with capture_logs() as logs:
        actor.tell("what is this")
        actor.ask(GetStats())
    assert any(e["event"] == "unexpected message ignored" for e in logs)
    assert actor.is_alive()


def test_get_stats_with_reply_to(
    actor: pykka.ActorRef[KinesisProducerActor],
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    actor.tell(GetStats(reply_to=probe))
    stats = inbox.get(timeout=5)
    assert stats == ProducerActorStats(0, 0, 0, 0, 0, 0, throttled=False)


# -- construction ---------------------------------------------------------------------------------


def test_engine_is_built_in_on_start_on_the_actor_thread(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    built = threading.Event()

    def factory(conf: ProducerConf) -> FakeEngine:
        engine.created_in = threading.current_thread().name
        built.set()
        return engine

    conf = producer_conf("akka { max-outstanding-requests = 10, failed-send-retries = 1 }")
    actor = KinesisProducerActor(conf, engine_factory=factory)  # the object alone: no engine
    assert not built.is_set()
    ref = start_actor(conf, engine_factory=factory)
    assert ref.ask(GetStats()).outstanding == 0
    assert engine.created_in != threading.current_thread().name
    del actor


def test_start_from_a_config_tree_and_a_producer_name(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    seen: list[ProducerConf] = []

    def factory(conf: ProducerConf) -> FakeEngine:
        seen.append(conf)
        return engine

    tree = load_config(
        'kinesis {\n testProducer {\n  stream-name = "core-test-foo"\n'
        "  akka.max-outstanding-requests = 10\n }\n}\n"
    )
    ref = start_actor(tree["kinesis"], "testProducer", engine_factory=factory)
    answer = ref.ask(SendWithCallback(event()))
    engine.wait_records(1)
    engine.future(0).set_result(ok_result())
    assert isinstance(answer.result(timeout=5), SendSuccessful)
    assert seen[0].stream_name == "core-test-foo"
    assert seen[0].throttling == ThrottlingConf(10, 0.1)


def test_conf_and_keyword_overrides_are_exclusive() -> None:
    with pytest.raises(TypeError, match="come from the ProducerConf"):
        KinesisProducerActor(producer_conf(), failed_send_retries=2)
    with pytest.raises(TypeError, match="producer name"):
        KinesisProducerActor(load_config('kinesis { p { stream-name = "s" } }'))
    with pytest.raises(TypeError, match="expected a ProducerConf"):
        KinesisProducerActor(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="failed_send_retries"):
        KinesisProducerActor(FakeEngine(), failed_send_retries=-1)


def test_engine_start_failure_is_logged_and_fails_queued_sends(
    probe: pykka.ActorRef[Probe], inbox: queue.Queue[Any]
) -> None:
    release = threading.Event()

    def factory(conf: ProducerConf) -> FakeEngine:
        release.wait(5)
        raise RuntimeError("no credentials")

    with capture_logs() as logs:
        ref = KinesisProducerActor.start(producer_conf(), engine_factory=factory)
        ref.tell(SendWithCallback(event(), message_id="early", reply_to=probe))
        answer = ref.ask(SendWithCallback(event(), message_id="asked"), block=False)
        release.set()
        reply = inbox.get(timeout=5)
        wait_until(lambda: not ref.is_alive())
    assert isinstance(reply, SendFailed) and isinstance(reply.reason, ProducerStoppedError)
    assert "no credentials" in str(reply.reason)
    assert isinstance(answer.get(timeout=5).result(timeout=5), SendFailed)
    [failure] = [e for e in logs if e["log_level"] == "error"]
    assert "failed to start" in failure["event"]
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Send(event()))


# -- edges ----------------------------------------------------------------------------------------


def test_completions_release_the_throttle_without_waiting_for_the_timer(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine, throttling=ThrottlingConf(2, 60.0))  # the timer never fires here
    answers = [actor.ask(SendWithCallback(event(i), message_id=f"t{i}")) for i in range(3)]
    assert actor.ask(GetStats()).queued == 1
    engine.future(0).set_result(ok_result(0))
    engine.future(1).set_result(ok_result(1))
    engine.wait_records(3)  # outstanding 0 < 1.8: released by the completions
    engine.future(2).set_result(ok_result(2))
    assert [a.result(timeout=5).message_id for a in answers] == ["t0", "t1", "t2"]


def test_queued_sends_keep_their_order_across_throttle_cycles(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine, throttling=ThrottlingConf(5, RETRY))
    for i in range(40):
        actor.tell(Send(event(i)))
    for done in range(40):
        engine.wait_records(done + 1)
        engine.future(done).set_result(ok_result(done))
    assert [e for e, _ in engine.records] == [event(i) for i in range(40)]
    wait_until(lambda: actor.ask(GetStats()).sent == 40)


def test_a_cancelled_engine_future_is_a_send_failed(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine
) -> None:
    answer = actor.ask(SendWithCallback(event(), message_id="cancelled"))
    assert engine.future(0).cancel()
    outcome = answer.result(timeout=5)
    assert isinstance(outcome, SendFailed)
    assert isinstance(outcome.reason, concurrent.futures.CancelledError)


def test_retries_go_on_while_stopping(engine: FakeEngine) -> None:
    engine.complete_on_stop = False
    actor = KinesisProducerActor.start(engine, failed_send_retries=1, stop_timeout=5)
    answer = actor.ask(SendWithCallback(event(), message_id="late-retry"))

    def fail_then_succeed() -> None:
        engine.future(0).set_exception(failed_error())
        engine.wait_records(2)
        engine.future(1).set_result(ok_result())

    helper = threading.Timer(0.05, fail_then_succeed)
    helper.start()
    actor.stop()
    helper.join()
    assert answer.result(timeout=5) == SendSuccessful("late-retry", ok_result())
    assert engine.stops == 1


class Crashing(KinesisProducerActor):
    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("a bug")
        return super().on_receive(message)


def test_a_crash_still_delivers_outcomes_and_stops_the_engine(
    engine: FakeEngine, probe: pykka.ActorRef[Probe], inbox: queue.Queue[Any]
) -> None:
    actor = Crashing.start(engine)
    actor.tell(SendWithCallback(event(), message_id="before-crash", reply_to=probe))
    engine.wait_records(1)
    with capture_logs() as logs:
        actor.tell("boom")
        wait_until(lambda: not actor.is_alive())
        wait_until(lambda: engine.stops == 1)
    assert inbox.get(timeout=5) == SendSuccessful("before-crash", ok_result(0))
    assert any(e["event"] == "producer actor crashed; shutting down" for e in logs)


def test_message_ids_are_unique_time_based_uuids() -> None:
    ids = [SendWithCallback(event()).message_id for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {1}
    assert [u.time for u in parsed] == sorted(u.time for u in parsed)
    assert abs(parsed[-1].time - (time.time_ns() // 100 + 0x01B21DD213814000)) < 10**8  # < 10 s


# -- issue 12: every send answered exactly once, bad input refused, logs summarised ---------------


def test_sends_told_while_the_stop_is_pending_are_answered_never_dropped(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    engine.gate.clear()  # the actor blocks in its first send: everything else queues behind it
    for i in range(20):
        actor.tell(SendWithCallback(event(i), message_id=f"early-{i}", reply_to=probe))
    stopped = actor.stop(block=False)
    refused = 0
    late_asks = []
    for i in range(50):
        try:
            actor.tell(SendWithCallback(event(i), message_id=f"late-{i}", reply_to=probe))
        except pykka.ActorDeadError:
            refused += 1
    late_asks.append(actor.ask(SendWithCallback(event(99), message_id="late-ask"), block=False))
    engine.gate.set()
    assert stopped.get(timeout=10) is True
    replies = [inbox.get(timeout=5) for _ in range(20 + 50 - refused)]
    expect_nothing(inbox)
    ids = Counter(r.message_id for r in replies)
    assert set(ids.values()) == {1}, "a send was answered twice"
    assert {f"early-{i}" for i in range(20)} <= set(ids)
    late = [r for r in replies if r.message_id.startswith("late-")]
    assert len(late) == 50 - refused > 0  # the actor was busy: the late tells were accepted
    for reply in late:
        assert isinstance(reply, SendFailed)
        assert isinstance(reply.reason, ProducerStoppedError)
    outcome = late_asks[0].get(timeout=5).result(timeout=5)
    assert isinstance(outcome, SendFailed) and isinstance(outcome.reason, ProducerStoppedError)


def test_stop_all_answers_asked_sends_queued_behind_it(
    engine: FakeEngine, start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]]
) -> None:
    actor = start_actor(engine)
    engine.gate.clear()
    first = actor.ask(SendWithCallback(event(0), message_id="first"), block=False)
    stops = pykka.ActorRegistry.stop_all(block=False)
    late = actor.ask(SendWithCallback(event(1), message_id="behind-stop-all"), block=False)
    engine.gate.set()
    for stop in stops:
        stop.get(timeout=10)
    assert isinstance(first.get(timeout=5).result(timeout=5), SendSuccessful)
    outcome = late.get(timeout=5).result(timeout=5)
    assert isinstance(outcome, SendFailed) and outcome.message_id == "behind-stop-all"
    assert isinstance(outcome.reason, ProducerStoppedError)


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (SendWithCallback(None), "SendWithCallback.producer_event must be a ProducerEvent"),  # type: ignore[arg-type]
        (Send(b"raw bytes"), "Send.producer_event must be a ProducerEvent, got bytes"),  # type: ignore[arg-type]
        (SendWithCallback(event(), message_id=7), "message_id must be a str, got int"),  # type: ignore[arg-type]
        (SendWithCallback(event(), reply_to="me"), "reply_to must be a pykka.ActorRef or None"),  # type: ignore[arg-type]
        ("what is this", "does not handle str messages"),
    ],
)
def test_a_malformed_ask_returns_send_failed_with_a_type_error_and_the_actor_serves_on(
    actor: pykka.ActorRef[KinesisProducerActor], engine: FakeEngine, message: Any, named: str
) -> None:
    answer = actor.ask(message, timeout=5)
    if isinstance(message, SendWithCallback):
        answer = answer.result(timeout=5)  # the ask of a SendWithCallback is a future, as always
    assert isinstance(answer, SendFailed)
    assert isinstance(answer.reason, TypeError)
    assert named in str(answer.reason)
    good = actor.ask(SendWithCallback(event(1), message_id="good"), timeout=5)
    engine.wait_records(1)
    engine.complete_all()
    assert isinstance(good.result(timeout=5), SendSuccessful)


def test_malformed_tells_are_answered_to_reply_to_or_logged_once(
    actor: pykka.ActorRef[KinesisProducerActor],
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    with capture_logs() as logs:
        actor.tell(SendWithCallback(None, message_id="none-event", reply_to=probe))  # type: ignore[arg-type]
        for _ in range(10):
            actor.tell(Send(None))  # type: ignore[arg-type]
        stats = actor.ask(GetStats(), timeout=5)
    reply = inbox.get(timeout=5)
    assert isinstance(reply, SendFailed) and reply.message_id == "none-event"
    assert isinstance(reply.reason, TypeError) and "got NoneType" in str(reply.reason)
    expect_nothing(inbox)
    refusals = [e for e in logs if e["event"] == "malformed message refused"]
    assert len(refusals) == 2  # one line per kind of mistake, not one per message
    assert stats.failed == 11
    assert actor.is_alive()


def test_a_failing_stream_logs_one_line_per_condition_not_one_per_record(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
    inbox: queue.Queue[Any],
) -> None:
    long_attempts = tuple(
        Attempt(0.1 * i, 0.02, "ServiceUnavailable", "x" * 5000) for i in range(300)
    )
    error = UserRecordFailedError(UserRecordResult(None, None, long_attempts, successful=False))
    with capture_logs() as logs:
        for i in range(200):
            actor.tell(SendWithCallback(event(i), message_id=f"m{i}", reply_to=probe))
        engine.wait_records(200)
        for i in range(200):
            engine.future(i).set_exception(error)
        replies = [inbox.get(timeout=5) for _ in range(200)]
        actor.ask(GetStats(), timeout=5)
    assert all(isinstance(r, SendFailed) for r in replies)
    failures = [e for e in logs if e["event"] == "Record failed to put"]
    assert len(failures) == 1
    assert failures[0]["attempt_count"] == 300
    assert all(len(repr(e)) < 2048 for e in logs), "a log line longer than 2 KB"


def test_undeliverable_replies_are_summarised(
    actor: pykka.ActorRef[KinesisProducerActor],
    engine: FakeEngine,
    probe: pykka.ActorRef[Probe],
) -> None:
    for i in range(50):
        actor.tell(SendWithCallback(event(i), message_id=f"m{i}", reply_to=probe))
    engine.wait_records(50)
    probe.stop()
    with capture_logs() as logs:
        engine.complete_all()
        wait_until(lambda: actor.ask(GetStats()).sent == 50)
    lines = [e for e in logs if e["event"] == "could not deliver to reply_to"]
    assert len(lines) == 1


@pytest.mark.parametrize(("interval_ms", "lines"), [(0, 2), (10_000, 1)])
def test_repeated_send_failures_are_logged_once_per_log_summary_interval(
    engine: FakeEngine,
    start_actor: Callable[..., pykka.ActorRef[KinesisProducerActor]],
    interval_ms: int,
    lines: int,
) -> None:
    conf = producer_conf(f"kpl {{ LogSummaryInterval = {interval_ms} }}")
    with capture_logs() as logs:
        actor = start_actor(conf, engine_factory=lambda _conf: engine)
        for i in range(2):
            actor.tell(Send(event(i)))
        engine.wait_records(2)
        for i in range(2):
            engine.future(i).set_exception(failed_error())
        wait_until(lambda: actor.ask(GetStats()).failed == 2)
    assert [e["event"] for e in logs].count("Record of a Send failed to put") == lines
