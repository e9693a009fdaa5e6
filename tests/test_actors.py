"""The one helper that tells an actor which may already be gone."""

from __future__ import annotations

import queue
from typing import Any

import pykka

from kinesis_actors._actors import tell


class _Recorder(pykka.ThreadingActor):
    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self._inbox = inbox

    def on_receive(self, message: Any) -> Any:
        self._inbox.put(message)
        return None


def test_tell_delivers_to_a_live_actor() -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    ref = _Recorder.start(inbox)
    try:
        assert tell(ref, "hello") is True
        assert inbox.get(timeout=5) == "hello"
    finally:
        ref.stop()


def test_tell_to_a_dead_actor_or_none_reports_not_delivered() -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    ref = _Recorder.start(inbox)
    ref.stop()
    assert tell(ref, "late") is False
    assert tell(None, "nobody") is False
    assert inbox.empty()
