"""Pins the Pykka behaviour that kinesis_actors._pykka_compat relies on.

If one of these fails after a Pykka upgrade, the compatibility module must change with it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

from kinesis_actors._pykka_compat import SimpleQueueInbox, drain_inbox


class _Seen:
    def __init__(self) -> None:
        self.received: list[Any] = []
        self.drained: list[tuple[Any, bool]] = []


class _Gate(pykka.ThreadingActor):
    """Blocks in its first message until ``gate`` is set, so messages pile up behind a stop."""

    use_daemon_thread = True

    def __init__(self, gate: threading.Event, drain: bool, seen: _Seen | None = None) -> None:
        super().__init__()
        self.gate = gate
        self.drain = drain
        self.seen = seen or _Seen()

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.gate.wait(10)
        self.seen.received.append(message)
        return f"answer to {message}"

    def on_stop(self) -> None:
        if self.drain:

            def handle(message: Any, reply_to: pykka.Future[Any] | None) -> bool:
                if not isinstance(message, str):
                    return False  # Pykka's own stop request goes back to Pykka
                self.seen.drained.append((message, reply_to is not None))
                if reply_to is not None:
                    reply_to.set(f"drained {message}")
                return True

            drain_inbox(self, handle)


class _FastGate(SimpleQueueInbox, _Gate):
    pass


def _pile_up_behind_stop(
    actor_class: type[_Gate], drain: bool
) -> tuple[_Seen, pykka.Future[Any], pykka.Future[Any]]:
    gate = threading.Event()
    seen = _Seen()
    ref = actor_class.start(gate, drain, seen)
    ref.tell("block")
    stopped = ref.stop(block=False)
    ref.tell("told behind the stop")
    asked = ref.ask("asked behind the stop", block=False)
    second_stop = ref.stop(block=False)
    gate.set()
    assert stopped.get(timeout=10) is True
    second_stop.get(timeout=10)
    return seen, asked, second_stop


def test_simple_queue_inbox_replaces_the_default_inbox() -> None:
    ref = _FastGate.start(threading.Event(), False)
    try:
        assert type(ref.actor_inbox) is queue.SimpleQueue
        assert ref.ask("hello", timeout=10) == "answer to hello"
    finally:
        ref.stop(timeout=10)
    plain = _Gate.start(threading.Event(), False)
    try:
        assert type(plain.actor_inbox) is queue.Queue  # what SimpleQueueInbox replaces
    finally:
        plain.stop(timeout=10)


@pytest.mark.parametrize("actor_class", [_Gate, _FastGate])
def test_pykka_discards_tells_queued_behind_a_stop(actor_class: type[_Gate]) -> None:
    """Why drain_inbox exists: without it the told message is lost, the ask fails."""
    seen, asked, _ = _pile_up_behind_stop(actor_class, drain=False)
    assert seen.received == ["block"]
    with pytest.raises(pykka.ActorDeadError):
        asked.get(timeout=10)


@pytest.mark.parametrize("actor_class", [_Gate, _FastGate])
def test_drain_inbox_hands_over_what_waits_behind_a_stop(actor_class: type[_Gate]) -> None:
    seen, asked, second_stop = _pile_up_behind_stop(actor_class, drain=True)
    assert seen.received == ["block"]
    assert seen.drained == [("told behind the stop", False), ("asked behind the stop", True)]
    assert asked.get(timeout=10) == "drained asked behind the stop"
    assert second_stop.get(timeout=10) is True  # the declined stop request: settled by Pykka


def test_tells_are_refused_once_on_stop_runs() -> None:
    """drain_inbox relies on the inbox only shrinking while on_stop runs."""
    seen: list[bool] = []

    class Probe(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_stop(self) -> None:
            try:
                self.actor_ref.tell("late")
            except pykka.ActorDeadError:
                seen.append(True)

    Probe.start().stop(timeout=10)
    assert seen == [True]
