"""Stop on SIGINT, SIGTERM or SIGHUP alike: a terminal's Ctrl-C, a CI timeout, a closed session.

Long-running commands wait on :class:`StopSignals`; a command that must clean up whatever step
it is in asks for ``interrupt=True``: the first signal then raises :class:`StopRequested` where
the main thread is (as Ctrl-C raises ``KeyboardInterrupt``), so ``finally`` blocks clean up;
further signals during the cleanup are only remembered, never interrupt it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["STOP_SIGNALS", "StopRequested", "StopSignals"]

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """A stop signal arrived; a BaseException so that ``except Exception`` does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT)."""
        return 128 + self.signum


class StopSignals:
    """While entered, SIGINT, SIGTERM and SIGHUP request a stop instead of killing the process.

    Only the main thread can install signal handlers; elsewhere this is a plain event.
    """

    def __init__(self, *, interrupt: bool = False) -> None:
        self._interrupt = interrupt
        self._event = threading.Event()
        self._previous: dict[signal.Signals, signal._HANDLER] = {}
        #: The first signal received, or None.
        self.signum: int | None = None

    def __enter__(self) -> Self:
        for signum in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        self._event.set()
        if first and self._interrupt:
            raise StopRequested(signum)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """True once a stop was requested; waits at most ``timeout`` seconds."""
        return self._event.wait(timeout)
