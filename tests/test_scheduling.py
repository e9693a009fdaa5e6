from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from kinesis_actors._scheduling import Scheduler, schedule_every, schedule_once


class Recorder(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return list(self.received)
        self.received.append(message)
        return None


@pytest.fixture
def recorder() -> Iterator[pykka.ActorRef[Recorder]]:
    ref = Recorder.start()
    yield ref
    ref.stop()


def wait_for(predicate: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_schedule_once_tells_after_the_delay(recorder: pykka.ActorRef[Recorder]) -> None:
    started = time.monotonic()
    schedule_once(recorder, 0.05, "tick")
    wait_for(lambda: recorder.ask("get") == ["tick"])
    assert time.monotonic() - started >= 0.05


def test_cancel_before_due_prevents_the_tell(recorder: pykka.ActorRef[Recorder]) -> None:
    handle = schedule_once(recorder, 0.05, "never")
    handle.cancel()
    handle.cancel()  # idempotent
    schedule_once(recorder, 0.1, "later")
    wait_for(lambda: recorder.ask("get") == ["later"])
    assert handle.cancelled


def test_schedule_every_repeats_until_cancelled(recorder: pykka.ActorRef[Recorder]) -> None:
    handle = schedule_every(recorder, 0.02, "tick", initial_delay=0)
    wait_for(lambda: len(recorder.ask("get")) >= 3)
    handle.cancel()
    count = len(recorder.ask("get"))
    time.sleep(0.1)
    assert len(recorder.ask("get")) <= count + 1  # at most one already in flight


def test_periodic_tell_to_a_dead_actor_cancels_itself() -> None:
    ref = Recorder.start()
    handle = schedule_every(ref, 0.01, "tick")
    ref.stop()
    wait_for(lambda: handle.cancelled)


def test_entries_fire_in_due_order() -> None:
    scheduler = Scheduler()
    fired: list[int] = []
    done = threading.Event()
    for delay, label in [(0.06, 3), (0.02, 1), (0.04, 2)]:
        scheduler.schedule(delay, lambda label=label: fired.append(label))
    scheduler.schedule(0.08, done.set)
    assert done.wait(2)
    assert fired == [1, 2, 3]


def test_timer_thread_exits_when_idle() -> None:
    scheduler = Scheduler(name="idle-test-scheduler")
    done = threading.Event()
    scheduler.schedule(0.0, done.set)
    assert done.wait(2)
    wait_for(lambda: all(t.name != "idle-test-scheduler" for t in threading.enumerate()))


def test_a_failing_action_does_not_stop_the_scheduler() -> None:
    scheduler = Scheduler()
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    failing = scheduler.schedule(0.0, boom, interval=0.01)
    scheduler.schedule(0.02, done.set)
    assert done.wait(2)
    assert failing.cancelled


def test_non_positive_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="interval"):
        Scheduler().schedule(0, lambda: None, interval=0)
