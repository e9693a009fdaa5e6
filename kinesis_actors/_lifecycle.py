"""``with`` for things that start and stop: the block's end stops them, however it ends.

The producer engine, the lease coordinator and the local servers are used as context managers
the same way; these two bases hold that protocol once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["StartedOnEnter", "StoppedOnExit"]


class StoppedOnExit(ABC):
    """``with x:`` uses an ``x`` that is already running, and stops it when the block ends."""

    @abstractmethod
    def stop(self) -> None:
        """Stop what runs (the end of a ``with`` block calls it)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class StartedOnEnter(StoppedOnExit):
    """``with x:`` starts ``x`` and stops it when the block ends."""

    @abstractmethod
    def start(self) -> object:
        """Start (the beginning of a ``with`` block calls it)."""

    def __enter__(self) -> Self:
        self.start()
        return self
