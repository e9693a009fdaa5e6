"""What every table of the lease coordinator is: a name, created on demand, and deletable.

The lease table and the fleet's membership table share this: `Table` declares creation once
(the configured options, `CreateOptions`), `InMemoryTable` is the in-process twin of both (a
dict under one lock that can be missing, as a deleted table is).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kinesis_actors._errors import LeaseTableMissingError

__all__ = ["CreateOptions", "InMemoryTable", "Table"]

_V = TypeVar("_V")


@dataclass(frozen=True)
class CreateOptions:
    """How a table is created if it is created here (an existing table is never changed)."""

    billing_mode: str = "PAY_PER_REQUEST"
    read_capacity: int | None = None
    write_capacity: int | None = None
    tags: Sequence[tuple[str, str]] = ()
    point_in_time_recovery: bool = False
    deletion_protection: bool = False
    #: Fail (`LeaseTableMissingError`) instead of creating.
    must_exist: bool = False
    #: Seconds to wait for a created table to become active.
    timeout: float = 60.0


class Table(abc.ABC):
    """A table with a name that the coordinator creates at start if missing."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    def create_if_missing(
        self,
        *,
        billing_mode: str = "PAY_PER_REQUEST",
        read_capacity: int | None = None,
        write_capacity: int | None = None,
        tags: Sequence[tuple[str, str]] = (),
        point_in_time_recovery: bool = False,
        deletion_protection: bool = False,
        must_exist: bool = False,
        timeout: float = 60.0,
    ) -> bool:
        """Create the table unless it exists (``must_exist``: fail instead) and wait until it
        is active; True if created here."""
        options = CreateOptions(
            billing_mode, read_capacity, write_capacity, tags, point_in_time_recovery,
            deletion_protection, must_exist, timeout,
        )  # fmt: skip
        return self._create_if_missing(options)

    @abc.abstractmethod
    def _create_if_missing(self, options: CreateOptions) -> bool: ...

    @abc.abstractmethod
    def delete_table(self) -> None: ...


class InMemoryTable(Table, Generic[_V]):
    """Items by key in a dict under one lock; it exists from the start (`delete_table` removes
    it, and every access then raises `LeaseTableMissingError`, as DynamoDB would)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stored: dict[str, _V] | None = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def _items(self) -> dict[str, _V]:
        """The items (call with the lock held)."""
        if self._stored is None:
            raise LeaseTableMissingError(self._name)
        return self._stored

    def _create_if_missing(self, options: CreateOptions) -> bool:
        with self._lock:
            if self._stored is not None:
                return False
            if options.must_exist:
                raise LeaseTableMissingError(self._name, "leaseTableMustExist: not created")
            self._stored = {}
            return True

    def delete_table(self) -> None:
        with self._lock:
            self._items()
            self._stored = None
