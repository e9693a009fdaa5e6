"""What both reliability actors share: the config they start from, and their timers."""

from __future__ import annotations

from typing import Any

import pykka
from pyhocon import ConfigTree

from kinesis_actors._scheduling import Cancellable
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config

__all__ = ["ReliabilityActor"]


class ReliabilityActor(pykka.ThreadingActor):
    """Reads the sample config unless given one; cancels its timers when it stops or fails."""

    def __init__(self, config: ConfigTree | None, settings: ReliabilitySettings | None) -> None:
        super().__init__()
        self._config = config if config is not None else load_reliability_config()
        self._settings = settings or ReliabilitySettings.from_config(self._config)
        self._timers: list[Cancellable] = []

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def on_stop(self) -> None:
        self._cancel_timers()

    def on_failure(self, *_: Any) -> None:
        self.on_stop()
