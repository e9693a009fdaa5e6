"""FailureLog: what a shard's failing ``process_record`` calls put in the log, bounded.

A processor that fails every record must not flood the log: failures are collected per batch
attempt and logged as ONE warning with their count and their distinct errors; the traceback of
an error is attached once per ``worker.tracebackIntervalSeconds`` per shard (an error is "the
same" when its type and the line that raised it are). Every line stays under about 2 KB,
whatever the exception's message or the batch size.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from kinesis_actors._consumer._support import positions
from kinesis_actors._logging import get_logger
from kinesis_actors._models import ConsumerEvent

__all__ = ["FailureLog", "describe_error"]

#: Longest text of one error in a log line, and longest traceback line.
_MAX_ERROR = 200
#: Distinct errors listed in one summary line.
_LISTED_ERRORS = 5
#: Lines of a traceback kept (the innermost ones).
_TRACEBACK_LINES = 12
#: Longest traceback text (its innermost part is kept), so a line stays well under 2 KB.
_MAX_TRACEBACK = 1200

_Key = tuple[str, str]


def _key(error: BaseException | str) -> _Key:
    if isinstance(error, str):
        return (error, "")
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return (type(error).__qualname__, where)


def describe_error(error: BaseException | str) -> str:
    """``error`` as one bounded line: its type and message (``ValueError: bad payload``), or the
    text given."""
    text = error if isinstance(error, str) else f"{type(error).__qualname__}: {error}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _short_traceback(error: BaseException) -> str:
    lines = "".join(traceback.format_exception(error)).rstrip("\n").split("\n")
    kept = [line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 3] + "..." for line in lines]
    if len(kept) > _TRACEBACK_LINES:
        kept = [kept[0], "  ...", *kept[-(_TRACEBACK_LINES - 2) :]]
    text = "\n".join(kept)
    return text if len(text) <= _MAX_TRACEBACK else text[-_MAX_TRACEBACK:]


class FailureLog:
    """Failures of one shard's records; thread-safe (a future's callback may add to it)."""

    def __init__(
        self, shard_id: str, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._shard_id = shard_id
        self._interval = interval
        self._clock = clock
        self._log = get_logger(__name__).bind(shard_id=shard_id)
        self._lock = threading.Lock()
        self._events: list[ConsumerEvent] = []
        self._errors: dict[_Key, tuple[BaseException | str, int]] = {}
        self._traced: dict[_Key, float] = {}

    def add(self, event: ConsumerEvent, error: BaseException | str) -> None:
        """``event`` was not processed because of ``error`` (an exception, or why not)."""
        key = _key(error)
        with self._lock:
            self._events.append(event)
            first, count = self._errors.get(key, (error, 0))
            self._errors[key] = (first, count + 1)

    def flush(self) -> None:
        """Log what was added since the last flush: one line, plus one per further new error
        whose traceback is due."""
        with self._lock:
            events, errors = self._events, self._errors
            if not events:
                return
            self._events, self._errors = [], {}
            now = self._clock()
            due = [
                first
                for key, (first, _) in errors.items()
                if isinstance(first, BaseException)
                and now - self._traced.get(key, float("-inf")) >= self._interval
            ]
            for error in due:
                self._traced[_key(error)] = now
        listed = sorted(errors.values(), key=lambda item: -item[1])[:_LISTED_ERRORS]
        summary = "; ".join(f"{describe_error(first)} (x{count})" for first, count in listed)
        if len(errors) > _LISTED_ERRORS:
            summary += f"; and {len(errors) - _LISTED_ERRORS} other errors"
        fields: dict[str, object] = {
            "failed": len(events),
            "records": positions(events),
            "errors": summary,
        }
        if due:
            fields["traceback"] = _short_traceback(due[0])
        self._log.warning(
            "process_record failed; the records are not acknowledged and will be re-sent after "
            "the batch timeout",
            **fields,
        )
        for error in due[1:]:
            self._log.warning(
                "process_record failed: traceback of another error",
                error=describe_error(error),
                traceback=_short_traceback(error),
            )
