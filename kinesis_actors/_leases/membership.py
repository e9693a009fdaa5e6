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
``releases``              N    leases released so far
``created``               N    times this worker created leases or finished a shard
``handoffRequests``       SS   shards this worker asked other workers to hand over (only
                               while some are pending): their owners renew them at once,
                               and so learn of the request within a poll
``leaving``               BOOL true from a graceful stop's start (only then): the others plan
                               without it and ask for its leases, which it hands over
``updatedAt``             N    wall-clock epoch milliseconds of the heartbeat (for people)
========================= ==== ==========================================================

Liveness is judged as lease expiry is, by local observation and never by clocks: a member whose
``heartbeat`` did not change for ``failover_time`` on this worker's monotonic clock has aged out;
one first seen counts as live. One whose heartbeat is late (unchanged for ``suspect_after``) is a
suspect: its leases may be about to expire. A member whose heartbeat says it is ``leaving`` (and
is not aged out) is neither live nor departed: its leases are renewed, but planned for the
others, who ask for them by hand-off. A worker beats right after each renewal round, so the
time its heartbeat was last seen to change bounds its last renewal if it is dead
(`Membership.last_heard`, the evidence the taker back-dates lease counters with). A worker that
stops gracefully deletes its item: it leaves at once. The item of a worker that did not (a crash)
is deleted by whichever worker first sees it unchanged for ``forget_after``, conditional on the
heartbeat still being the one seen.

The heartbeats say when the lease table can have changed in a way that matters for the plan (a
worker joined, left, aged out, is late, holds more or fewer leases, released or created leases,
or its load moved): `Membership.needs_plan` compares what the last poll saw with what the last
plan was made from (`Membership.planned`).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kinesis_actors._leases.dynamodb import DynamoDBTable
from kinesis_actors._leases.tables import InMemoryTable, Table
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

#: A member's load moved enough to re-plan: by this fraction of the larger value...
LOAD_CHANGE = 0.25
#: ...and by more than this many bytes/s or records/s (idle rates decaying to 0 move nothing).
LOAD_FLOOR = (1024.0, 1.0)


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
    created: int = 0
    requested: frozenset[str] = frozenset()
    leaving: bool = False

    def announces_change_since(self, before: Member) -> bool:
        """Whether the lease table may have changed for the plan since ``before`` was seen."""
        if (self.leases, self.releases, self.created) != (
            before.leases,
            before.releases,
            before.created,
        ):
            return True
        pairs = zip(
            (before.bytes_per_second, before.records_per_second),
            (self.bytes_per_second, self.records_per_second),
            LOAD_FLOOR,
            strict=True,
        )
        return any(abs(b - a) > max(floor, LOAD_CHANGE * max(a, b)) for a, b, floor in pairs)


class MembershipTable(Table):
    """Where heartbeats are kept; `DynamoDBMembershipTable` or `InMemoryMembershipTable`."""

    @abc.abstractmethod
    def put(self, member: Member) -> None:
        """Write a heartbeat (unconditionally: only its worker writes an item)."""

    @abc.abstractmethod
    def remove(self, worker_id: str, heartbeat: int | None = None) -> bool:
        """Delete a worker's item (it leaves); with ``heartbeat``, only if it is still that one
        (a dead worker's item). True if deleted."""

    @abc.abstractmethod
    def members(self) -> list[Member]:
        """Every item (an eventually consistent scan)."""


_NUMBERS = {
    "heartbeat": "heartbeat",
    "leases": "leases",
    "releases": "releases",
    "created": "created",
}
_RATES = {"bytesPerSecond": "bytes_per_second", "recordsPerSecond": "records_per_second"}


class DynamoDBMembershipTable(DynamoDBTable, MembershipTable):
    """The membership table in DynamoDB (or dynalite)."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        super().__init__(dynamodb, table_name, hash_key="workerId", kind="membership table")

    def put(self, member: Member) -> None:
        item: dict[str, Any] = {"workerId": {"S": member.worker_id}}
        item |= {name: {"N": str(getattr(member, field))} for name, field in _NUMBERS.items()}
        item |= {name: {"N": f"{getattr(member, field):.3f}"} for name, field in _RATES.items()}
        if member.requested:
            item["handoffRequests"] = {"SS": sorted(member.requested)}
        if member.leaving:
            item["leaving"] = {"BOOL": True}
        item["updatedAt"] = {"N": str(int(time.time() * 1000))}
        with self._errors("PutItem"):
            self._dynamodb.put_item(TableName=self._name, Item=item)

    def remove(self, worker_id: str, heartbeat: int | None = None) -> bool:
        key: dict[str, Any] = {"workerId": {"S": worker_id}}
        if heartbeat is None:
            with self._errors("DeleteItem"):
                self._dynamodb.delete_item(TableName=self._name, Key=key)
            return True
        done = self._conditional(
            "DeleteItem",
            lambda: self._dynamodb.delete_item(
                TableName=self._name,
                Key=key,
                ConditionExpression="heartbeat = :heartbeat",
                ExpressionAttributeValues={":heartbeat": {"N": str(heartbeat)}},
            ),
        )
        return done is not None

    def members(self) -> list[Member]:
        found: list[Member] = []
        with self._errors("Scan"):
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._name):
                for item in page.get("Items", []):
                    values: dict[str, Any] = {
                        f: int(item.get(n, {}).get("N", "0")) for n, f in _NUMBERS.items()
                    }
                    values |= {f: float(item.get(n, {}).get("N", "0")) for n, f in _RATES.items()}
                    values["requested"] = frozenset(item.get("handoffRequests", {}).get("SS", ()))
                    values["leaving"] = bool(item.get("leaving", {}).get("BOOL", False))
                    found.append(Member(str(item["workerId"]["S"]), **values))
        return found


class InMemoryMembershipTable(InMemoryTable[Member], MembershipTable):
    """A membership table in a dict, for tests and simulations."""

    def __init__(self, name: str = "leases-Workers") -> None:
        super().__init__(name)
        #: Scans made so far (the benchmark counts reads).
        self.scans = 0

    def put(self, member: Member) -> None:
        with self._lock:
            self._items()[member.worker_id] = member

    def remove(self, worker_id: str, heartbeat: int | None = None) -> bool:
        with self._lock:
            current = self._items().get(worker_id)
            if current is None or heartbeat not in (None, current.heartbeat):
                return False
            del self._items()[worker_id]
            return True

    def members(self) -> list[Member]:
        with self._lock:
            self.scans += 1
            return list(self._items().values())


@dataclass(frozen=True)
class _Seen:
    member: Member
    #: Local monotonic time the heartbeat was last seen to change.
    changed_at: float


@dataclass(frozen=True)
class _Fleet:
    """What one poll concluded (or what a plan was made from)."""

    live: frozenset[str]
    suspects: frozenset[str] = frozenset()
    leaving: frozenset[str] = frozenset()
    members: tuple[tuple[str, Member], ...] = ()


class Membership:
    """This worker's heartbeat, and the live fleet as last observed. Thread-safe.

    ``suspect_after``: a live member whose heartbeat is this late is a suspect (default: never);
    ``forget_after``: a dead member's item is deleted when unchanged this long (default: never).
    ``clock`` is monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        table: MembershipTable,
        worker_id: str,
        *,
        failover_time: float,
        suspect_after: float | None = None,
        forget_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._worker_id = worker_id
        self._failover_time = failover_time
        self._suspect_after = failover_time if suspect_after is None else suspect_after
        self._forget_after = forget_after
        self._clock = clock
        self._me = Member(worker_id, 0)
        self._seen: dict[str, _Seen] = {}
        #: Workers seen before that aged out or left -> when this worker first found them gone.
        self._departed: dict[str, float] = {}
        #: Worker -> local time its heartbeat was last seen to change (kept while departed).
        self._heard: dict[str, float] = {}
        self._fleet = _Fleet(frozenset({worker_id}))
        self._planned = self._fleet
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # heartbeats are written in the order they are made
        self._left = False  # after `leave`, nothing is written (no item comes back)
        self._log = log.bind(worker_id=worker_id)

    @property
    def table(self) -> MembershipTable:
        return self._table

    def beat(self, leases: int | None = None, rates: tuple[float, float] | None = None) -> None:
        """Write this worker's heartbeat (join, or stay alive), with its load if given."""
        self._write(leases=leases, rates=rates)

    def released(self) -> None:
        """This worker freed a lease: tell the fleet now (a heartbeat with ``releases`` + 1)."""
        self._write(releases=1)

    def requesting(self, shard_ids: frozenset[str]) -> None:
        """This worker's pending hand-off requests; a heartbeat now if they changed."""
        with self._lock:
            changed = shard_ids != self._me.requested
        if changed:
            self._write(requested=shard_ids)

    def asked_for(self) -> frozenset[str]:
        """Shards other live members asked to be handed over (as their heartbeats say)."""
        with self._lock:
            return frozenset().union(*(m.requested for _, m in self._fleet.members))

    def leases_created(self) -> None:
        """This worker created leases or finished a shard: the others re-plan at their poll."""
        self._write(created=1)

    def leaving(self) -> None:
        """This worker is stopping gracefully: the others plan without it and ask for its
        leases (a heartbeat marked ``leaving`` now, and in every later one)."""
        self._write(leaving=True)

    def _write(
        self,
        *,
        leases: int | None = None,
        rates: tuple[float, float] | None = None,
        releases: int = 0,
        created: int = 0,
        requested: frozenset[str] | None = None,
        leaving: bool = False,
    ) -> None:
        with self._write_lock:
            if self._left:
                return
            with self._lock:
                me = self._me
                self._me = replace(
                    me,
                    heartbeat=me.heartbeat + 1,
                    leases=me.leases if leases is None else leases,
                    bytes_per_second=me.bytes_per_second if rates is None else rates[0],
                    records_per_second=me.records_per_second if rates is None else rates[1],
                    releases=me.releases + releases,
                    created=me.created + created,
                    requested=me.requested if requested is None else requested,
                    leaving=me.leaving or leaving,
                )
                member = self._me
            self._table.put(member)

    def leave(self) -> None:
        """Delete this worker's item: the others count it out at their next poll. No heartbeat
        is written after this one."""
        with self._write_lock:
            self._left = True
        self._table.remove(self._worker_id)

    def poll(self) -> bool:
        """Read the table; True if the plan should be made again (`needs_plan`)."""
        members = self._table.members()
        now = self._clock()
        with self._lock:
            seen: dict[str, _Seen] = {}
            for member in members:
                before = self._seen.get(member.worker_id)
                if before is not None and before.member.heartbeat == member.heartbeat:
                    seen[member.worker_id] = _Seen(member, before.changed_at)
                else:
                    seen[member.worker_id] = _Seen(member, now)
            self._seen = seen
            fresh = frozenset(
                worker_id
                for worker_id, entry in seen.items()
                if now - entry.changed_at <= self._failover_time
            ) | {self._worker_id}
            leaving = frozenset(w for w in fresh - {self._worker_id} if seen[w].member.leaving)
            live = fresh - leaving
            suspects = frozenset(
                worker_id
                for worker_id in live - {self._worker_id}
                if now - seen[worker_id].changed_at > self._suspect_after
            )
            for worker_id in (self._fleet.live | self._fleet.leaving) - fresh:
                self._departed.setdefault(worker_id, now)
            self._departed = {
                worker_id: since
                for worker_id, since in self._departed.items()
                if worker_id not in fresh
                and (self._forget_after is None or now - since <= self._forget_after)
            }
            heard = {w: at for w, at in self._heard.items() if w in self._departed}
            self._heard = heard | {w: entry.changed_at for w, entry in seen.items()}
            self._fleet = _Fleet(
                live,
                suspects,
                leaving,
                tuple(sorted((w, seen[w].member) for w in live if w != self._worker_id)),
            )
            forgotten = [
                entry.member
                for entry in seen.values()
                if self._forget_after is not None and now - entry.changed_at > self._forget_after
            ]
        for member in forgotten:
            if self._table.remove(member.worker_id, member.heartbeat):
                self._log.info("dead worker's membership item deleted", dead=member.worker_id)
        return self.needs_plan()

    def needs_plan(self) -> bool:
        """Whether the fleet changed since `planned`: joins, leaves, suspects, or a member's
        leases, releases, creations or load."""
        with self._lock:
            now, then = self._fleet, self._planned
        if (now.live, now.suspects, now.leaving) != (then.live, then.suspects, then.leaving):
            return True
        before = dict(then.members)
        return any(
            worker_id not in before or member.announces_change_since(before[worker_id])
            for worker_id, member in now.members
        )

    def planned(self) -> None:
        """A plan is being made from the fleet as last polled (call just before the scan)."""
        with self._lock:
            self._planned = self._fleet

    def live(self) -> frozenset[str]:
        """The workers alive at the last poll, this one included (leaving ones not)."""
        with self._lock:
            return self._fleet.live

    def leaving_members(self) -> frozenset[str]:
        """Other members stopping gracefully at the last poll: their leases are for the rest."""
        with self._lock:
            return self._fleet.leaving

    def lease_counts(self) -> dict[str, int]:
        """Open leases each trusted live member says it holds (this one included, suspects not)."""
        with self._lock:
            fleet, me = self._fleet, self._me
        counts = {w: m.leases for w, m in fleet.members if w not in fleet.suspects}
        counts[self._worker_id] = me.leases
        return counts

    def last_heard(self) -> dict[str, float]:
        """Departed members and suspects -> local time their heartbeat was last seen to change.

        A member beats right after each renewal round, so a dead one renewed its leases last
        before that time: the evidence `LeaseTaker` back-dates their counters with.
        """
        with self._lock:
            doubtful = frozenset(self._departed) | self._fleet.suspects
            return {w: self._heard[w] for w in sorted(doubtful) if w in self._heard}

    def departed(self) -> frozenset[str]:
        """Members whose leases may be expiring: aged out, left (recently), or suspects."""
        with self._lock:
            return frozenset(self._departed) | self._fleet.suspects
