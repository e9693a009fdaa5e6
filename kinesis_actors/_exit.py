"""What the library does at interpreter exit for objects the application never stopped.

A script that starts a producer (engine or actor) or a consumer and forgets ``stop()`` must
neither hang (Pykka's threads are non-daemon, so the library's actors and threads are daemon
ones) nor lose silently what it buffered. Each such object registers a stop here; one
``atexit`` hook runs them in order (consumers, which may feed producers and own a dead-letter
producer, then actors, then the engines they feed), each bounded by its own timeout, and each
logs one warning with its counts.
"""

from __future__ import annotations

import atexit
import itertools
import threading
from collections.abc import Callable

from kinesis_actors._logging import get_logger

__all__ = ["ACTORS", "CONSUMERS", "ENGINES", "at_exit"]

log = get_logger(__name__)

#: Run order: consumers first (they stop feeding producers; their dead-letter producer still
#: runs for their last batch), then producer actors (they hand what they hold to their engine),
#: then engines (they flush).
CONSUMERS, ACTORS, ENGINES = 0, 1, 2

_lock = threading.Lock()
_stops: dict[int, tuple[int, Callable[[], object]]] = {}
_ids = itertools.count()
_installed = False


def at_exit(stop: Callable[[], object], order: int) -> Callable[[], None]:
    """Run ``stop`` at interpreter exit unless the returned ``cancel`` is called first."""
    global _installed
    key = next(_ids)
    with _lock:
        _stops[key] = (order, stop)
        if not _installed:
            atexit.register(_run)
            _installed = True

    def cancel() -> None:
        with _lock:
            _stops.pop(key, None)

    return cancel


def _run() -> None:
    with _lock:
        pending = sorted(_stops.items(), key=lambda item: (item[1][0], item[0]))
        _stops.clear()
    for _, (_, stop) in pending:
        try:
            stop()
        except Exception:
            log.exception("stopping at interpreter exit failed")
