"""Logs a person can read: one line per distinct condition per interval, never one per record.

A failing stream fails thousands of records and attempts a second. ``LogSummary`` logs the
first occurrence of a condition (its key: an error code, a message type) at once, counts the
repeats, and logs again only when the condition recurs an interval later (the producer's
``kpl.LogSummaryInterval``), with the count of what it held back. ``flush`` reports counts
still held (on stop). Field values are clipped so that no line grows past a couple of kilobytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from structlog.stdlib import BoundLogger

__all__ = ["LogSummary", "clip"]

_MAX_TEXT = 300  # characters of one field value; a line holds a handful of fields


def clip(value: object, limit: int = _MAX_TEXT) -> str:
    """``str(value)`` cut to ``limit`` characters, saying how much was cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass
class _Window:
    start: float
    level: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    held_back: int = 0


class LogSummary:
    """Rate-limits log lines per condition key; not thread-safe (one owner thread)."""

    def __init__(
        self,
        log: BoundLogger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}

    def warning(self, key: Hashable, event: str, now: float | None = None, **fields: Any) -> None:
        self._note("warning", key, event, now, fields)

    def error(self, key: Hashable, event: str, now: float | None = None, **fields: Any) -> None:
        self._note("error", key, event, now, fields)

    def info(self, key: Hashable, event: str, now: float | None = None, **fields: Any) -> None:
        self._note("info", key, event, now, fields)

    def _note(
        self, level: str, key: Hashable, event: str, now: float | None, fields: dict[str, Any]
    ) -> None:
        now = self._clock() if now is None else now
        window = self._windows.get(key)
        if window is not None and now - window.start < self._interval:
            window.held_back += 1
            return
        clipped = {name: _clip_field(value) for name, value in fields.items()}
        if window is not None and window.held_back:
            clipped["repeats_since_last_line"] = window.held_back
        self._windows[key] = _Window(now, level, event, clipped)
        getattr(self._log, level)(event, **clipped)

    def flush(self) -> None:
        """Log the repeats still held back, one line per condition, and start afresh."""
        for window in self._windows.values():
            if window.held_back:
                getattr(self._log, window.level)(
                    window.event, **window.fields, repeats_since_last_line=window.held_back
                )
        self._windows.clear()


def _clip_field(value: Any) -> Any:
    """Text is clipped; other values (numbers, the small lists callers build) pass as given."""
    if isinstance(value, str | bytes | BaseException):
        return clip(value)
    return value
