"""AWS's documented Kinesis and DynamoDB limits as token buckets: what the limits proxy enforces.

Pure state, no I/O: the proxy asks whether a call (or a PutRecords entry) is admitted and charges
what an answered call consumed. Every limit is a bucket refilled at its per-second rate and
holding one second of it (AWS counts per second; a bucket lets a full second's allowance arrive
at once, as AWS does). Byte and capacity limits that are only known after the answer (GetRecords
bytes, DynamoDB consumed capacity) are charged afterwards and may drive their bucket below zero:
calls are refused until it is positive again. That is AWS's rule after a large read ("after a
10 MiB response, calls in the next 5 seconds get ProvisionedThroughputExceededException").

Sources: ``/work/shared/reference/aws-limits-and-efo.md`` sections 1.1, 1.2 and 1.4 (the AWS API
reference pages of PutRecords, GetRecords, GetShardIterator, ListShards, DescribeStream, ...).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "CONTROL_PLANE_LIMITS",
    "MIB",
    "AwsLimits",
    "ControlLimit",
    "LimitModel",
    "TokenBucket",
]

MIB: Final = 1024 * 1024

#: A control-plane limit: calls per second, counted per account or per stream.
ControlLimit = tuple[float, Literal["account", "stream"]]

#: Kinesis control-plane and enhanced fan-out APIs with a documented rate (LimitExceededException).
CONTROL_PLANE_LIMITS: Final[Mapping[str, ControlLimit]] = MappingProxyType(
    {
        "ListShards": (1000.0, "stream"),
        "DescribeStream": (10.0, "account"),
        "DescribeStreamSummary": (20.0, "account"),
        "ListStreams": (5.0, "account"),
        "DescribeLimits": (1.0, "account"),
        "CreateStream": (5.0, "account"),
        "DeleteStream": (5.0, "account"),
        "SplitShard": (5.0, "account"),
        "MergeShards": (5.0, "account"),
        "UpdateShardCount": (10.0, "account"),
        "RegisterStreamConsumer": (5.0, "account"),
        "DescribeStreamConsumer": (20.0, "stream"),
        "ListStreamConsumers": (5.0, "stream"),
        "DeregisterStreamConsumer": (5.0, "stream"),
    }
)


@dataclass(frozen=True)
class AwsLimits:
    """The numbers the model enforces; the defaults are AWS's documented limits.

    ``dynamodb_burst_seconds``: a PROVISIONED table keeps up to this many seconds of unused
    capacity (AWS: up to 300 s, best effort); a table starts with one second's worth.
    """

    shard_write_records_per_second: float = 1000.0
    shard_write_bytes_per_second: float = 1.0 * MIB
    shard_reads_per_second: float = 5.0
    shard_read_bytes_per_second: float = 2.0 * MIB
    shard_iterators_per_second: float = 5.0
    control_plane: Mapping[str, ControlLimit] = field(default_factory=lambda: CONTROL_PLANE_LIMITS)
    dynamodb_burst_seconds: float = 300.0


class TokenBucket:
    """Refills at ``rate`` per second up to ``capacity``; may be charged below zero."""

    __slots__ = ("_clock", "_level", "_updated", "capacity", "rate")

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float], level: float | None = None
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = capacity if level is None else level
        self._updated = clock()

    @property
    def level(self) -> float:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now
        return self._level

    def take(self, amount: float) -> bool:
        """Take ``amount`` if the bucket holds it (all or nothing)."""
        if self.level >= amount:
            self._level -= amount
            return True
        return False

    def positive(self) -> bool:
        """True when a call whose cost is only known afterwards may go ahead."""
        return self.level > 0.0

    def charge(self, amount: float) -> None:
        """Subtract ``amount``, possibly going below zero (a debt repaid by the refill)."""
        _ = self.level
        self._level -= amount


@dataclass
class _TableCapacity:
    read: TokenBucket
    write: TokenBucket


class LimitModel:
    """Per shard, per stream, per account and per table buckets; thread-safe.

    Keys are stream and shard names as the client sent them; the proxy resolves ARNs first.
    """

    def __init__(
        self, limits: AwsLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or AwsLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._tables: dict[str, _TableCapacity] = {}

    def _bucket(self, key: tuple[str, ...], rate: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, rate, self._clock)
        return bucket

    # -- Kinesis data plane ----------------------------------------------------------------------

    def admit_writes(self, stream: str, entries: Sequence[tuple[str, int]]) -> list[bool]:
        """For each (shard, size in bytes) entry in order: stored (True) or throttled (False).

        An entry passes when its shard still has a record and its size left this second; a
        throttled entry does not stop later, smaller ones (AWS's PutRecords semantics).
        """
        limits = self.limits
        admitted: list[bool] = []
        with self._lock:
            for shard, size in entries:
                records = self._bucket(
                    ("write-records", stream, shard), limits.shard_write_records_per_second
                )
                data = self._bucket(
                    ("write-bytes", stream, shard), limits.shard_write_bytes_per_second
                )
                ok = records.level >= 1.0 and data.level >= size
                if ok:
                    records.charge(1.0)
                    data.charge(size)
                admitted.append(ok)
        return admitted

    def admit_read(self, stream: str, shard: str) -> bool:
        """One GetRecords call: a call left this second and no byte debt from earlier reads."""
        limits = self.limits
        with self._lock:
            data = self._bucket(("read-bytes", stream, shard), limits.shard_read_bytes_per_second)
            if not data.positive():
                return False
            return self._bucket(("reads", stream, shard), limits.shard_reads_per_second).take(1.0)

    def charge_read(self, stream: str, shard: str, size: int) -> None:
        """The bytes a GetRecords answer returned."""
        with self._lock:
            key = ("read-bytes", stream, shard)
            self._bucket(key, self.limits.shard_read_bytes_per_second).charge(size)

    def admit_shard_iterator(self, stream: str, shard: str) -> bool:
        with self._lock:
            key = ("iterators", stream, shard)
            return self._bucket(key, self.limits.shard_iterators_per_second).take(1.0)

    # -- Kinesis control plane -------------------------------------------------------------------

    def admit_control(self, api: str, stream: str) -> bool:
        """A control-plane call; APIs without a documented rate always pass."""
        limit = self.limits.control_plane.get(api)
        if limit is None:
            return True
        rate, scope = limit
        key = ("control", api, stream if scope == "stream" else "")
        with self._lock:
            return self._bucket(key, rate).take(1.0)

    # -- DynamoDB provisioned capacity -----------------------------------------------------------

    def set_table_capacity(self, table: str, read_units: float, write_units: float) -> None:
        """Declare ``table`` PROVISIONED with these units (or forget it when both are 0)."""
        with self._lock:
            if read_units <= 0 and write_units <= 0:
                self._tables.pop(table, None)
                return
            burst = max(1.0, self.limits.dynamodb_burst_seconds)
            self._tables[table] = _TableCapacity(
                read=TokenBucket(read_units, read_units * burst, self._clock, read_units),
                write=TokenBucket(write_units, write_units * burst, self._clock, write_units),
            )

    def forget_table(self, table: str) -> None:
        with self._lock:
            self._tables.pop(table, None)

    def provisioned(self, table: str) -> bool:
        with self._lock:
            return table in self._tables

    def admit_table(self, table: str, kind: Literal["read", "write"]) -> bool:
        """A call on ``table``: on-demand (unknown) tables always pass; provisioned ones while
        the capacity bucket is positive."""
        with self._lock:
            capacity = self._tables.get(table)
            if capacity is None:
                return True
            return (capacity.read if kind == "read" else capacity.write).positive()

    def charge_table(self, table: str, kind: Literal["read", "write"], units: float) -> None:
        with self._lock:
            capacity = self._tables.get(table)
            if capacity is not None:
                (capacity.read if kind == "read" else capacity.write).charge(units)
