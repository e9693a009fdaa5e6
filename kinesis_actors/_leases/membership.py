"""Fleet membership: who is consuming, so every worker knows the fleet's size before it takes.

A KCL lease table must hold leases only (a Java KCL reads every item as one), so membership lives
in a small side table named after the lease table, ``<lease table>-Workers``, created like it
(same billing mode), with one item per worker:

========================= ==== ==========================================================
``workerId``              S    the worker id, as in ``leaseOwner`` (hash key)
``heartbeat``             N    raised by one at every heartbeat (every renewer interval)
``leases``                N    open leases held
``bytesPerSecond``        N    read rate of the shards held (their measured sum)
``recordsPerSecond``      N    idem, records
``releases``              N    leases released so far: a change makes the others re-plan
``updatedAt``             N    wall-clock epoch milliseconds of the heartbeat (for people)
========================= ==== ==========================================================

Liveness is judged as lease expiry is, by local observation and never by clocks: a member whose
``heartbeat`` did not change for ``failover_time`` on this worker's monotonic clock has aged out;
one first seen counts as live. A worker that stops gracefully deletes its item: it leaves at once.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinesis_actors._leases.dynamodb import DynamoDBTable
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DynamoDBMembershipTable",
    "InMemoryMembershipTable",
    "Member",
    "Membership",
    "MembershipTable",
    "membership_table_name",
]

log = get_logger(__name__)


def membership_table_name(lease_table: str) -> str:
    """The side table of a lease table."""
    return f"{lease_table}-Workers"


@dataclass(frozen=True)
class Member:
    """One worker's last heartbeat."""

    worker_id: str
    heartbeat: int
    leases: int = 0
    bytes_per_second: float = 0.0
    records_per_second: float = 0.0
    releases: int = 0


class MembershipTable(abc.ABC):
    """Where heartbeats are kept; `DynamoDBMembershipTable` or `InMemoryMembershipTable`."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
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
    ) -> bool: ...

    @abc.abstractmethod
    def delete_table(self) -> None: ...

    @abc.abstractmethod
    def put(self, member: Member) -> None:
        """Write a heartbeat (unconditionally: only its worker writes an item)."""

    @abc.abstractmethod
    def remove(self, worker_id: str) -> None:
        """Delete a worker's item (it leaves)."""

    @abc.abstractmethod
    def members(self) -> list[Member]:
        """Every item (an eventually consistent scan)."""


class DynamoDBMembershipTable(DynamoDBTable, MembershipTable):
    """The membership table in DynamoDB (or dynalite)."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        super().__init__(dynamodb, table_name, hash_key="workerId", kind="membership table")

    def put(self, member: Member) -> None:
        with self._errors("PutItem"):
            self._dynamodb.put_item(
                TableName=self._name,
                Item={
                    "workerId": {"S": member.worker_id},
                    "heartbeat": {"N": str(member.heartbeat)},
                    "leases": {"N": str(member.leases)},
                    "bytesPerSecond": {"N": f"{member.bytes_per_second:.3f}"},
                    "recordsPerSecond": {"N": f"{member.records_per_second:.3f}"},
                    "releases": {"N": str(member.releases)},
                    "updatedAt": {"N": str(int(time.time() * 1000))},
                },
            )

    def remove(self, worker_id: str) -> None:
        with self._errors("DeleteItem"):
            self._dynamodb.delete_item(TableName=self._name, Key={"workerId": {"S": worker_id}})

    def members(self) -> list[Member]:
        found: list[Member] = []
        with self._errors("Scan"):
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._name):
                for item in page.get("Items", []):
                    found.append(
                        Member(
                            worker_id=str(item["workerId"]["S"]),
                            heartbeat=int(item.get("heartbeat", {}).get("N", "0")),
                            leases=int(item.get("leases", {}).get("N", "0")),
                            bytes_per_second=float(item.get("bytesPerSecond", {}).get("N", "0")),
                            records_per_second=float(
                                item.get("recordsPerSecond", {}).get("N", "0")
                            ),
                            releases=int(item.get("releases", {}).get("N", "0")),
                        )
                    )
        return found


class InMemoryMembershipTable(MembershipTable):
    """A membership table in a dict, for tests and simulations."""

    def __init__(self, name: str = "leases-Workers") -> None:
        self._name = name
        self._members: dict[str, Member] = {}
        self._lock = threading.Lock()
        #: Scans made so far (the benchmark counts reads).
        self.scans = 0

    @property
    def name(self) -> str:
        return self._name

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
        return False

    def delete_table(self) -> None:
        with self._lock:
            self._members.clear()

    def put(self, member: Member) -> None:
        with self._lock:
            self._members[member.worker_id] = member

    def remove(self, worker_id: str) -> None:
        with self._lock:
            self._members.pop(worker_id, None)

    def members(self) -> list[Member]:
        with self._lock:
            self.scans += 1
            return list(self._members.values())


@dataclass
class _Seen:
    member: Member
    changed_at: float


class Membership:
    """This worker's heartbeat, and the live fleet as last observed. Thread-safe.

    ``clock`` is monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        table: MembershipTable,
        worker_id: str,
        *,
        failover_time: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._worker_id = worker_id
        self._failover_time = failover_time
        self._clock = clock
        self._heartbeat = 0
        self._releases = 0
        self._load: tuple[int, tuple[float, float]] = (0, (0.0, 0.0))
        self._seen: dict[str, _Seen] = {}
        self._live: frozenset[str] = frozenset({worker_id})
        self._lock = threading.Lock()

    @property
    def table(self) -> MembershipTable:
        return self._table

    def beat(self, leases: int = 0, rates: tuple[float, float] = (0.0, 0.0)) -> None:
        """Write this worker's heartbeat (join, or stay alive)."""
        with self._lock:
            self._heartbeat += 1
            self._load = (leases, rates)
            member = Member(
                self._worker_id, self._heartbeat, leases, rates[0], rates[1], self._releases
            )
        self._table.put(member)

    def released(self) -> None:
        """This worker freed a lease: tell the fleet now (a heartbeat with ``releases`` + 1)."""
        with self._lock:
            self._releases += 1
            leases, rates = self._load
        self.beat(leases, rates)

    def leave(self) -> None:
        """Delete this worker's item: the others count it out at their next poll."""
        self._table.remove(self._worker_id)

    def poll(self) -> bool:
        """Read the table; True if live workers changed or one released a lease since."""
        members = self._table.members()
        now = self._clock()
        with self._lock:
            seen: dict[str, _Seen] = {}
            released = False
            for member in members:
                before = self._seen.get(member.worker_id)
                released |= before is not None and before.member.releases != member.releases
                if before is not None and before.member.heartbeat == member.heartbeat:
                    seen[member.worker_id] = _Seen(member, before.changed_at)
                else:
                    seen[member.worker_id] = _Seen(member, now)
            self._seen = seen
            live = frozenset(
                worker_id
                for worker_id, entry in seen.items()
                if now - entry.changed_at <= self._failover_time
            ) | {self._worker_id}
            changed = live != self._live or released
            self._live = live
        return changed

    def live(self) -> frozenset[str]:
        """The workers alive at the last poll, this one included."""
        with self._lock:
            return self._live
