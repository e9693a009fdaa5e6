"""The values that cross the library's boundary: events, sequence numbers, put results."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kinesis_actors._slots_init import slots_init

__all__ = [
    "Attempt",
    "CompoundSequenceNumber",
    "ConsumerEvent",
    "ProducerEvent",
    "Sentinel",
    "UserRecordResult",
]


#: How the private fast constructors set the fields of frozen instances. Like the dataclass
#: ``__init__``, and unlike writing to ``__dict__``, this keeps the attributes in the object
#: (no dict per instance): half the objects for the garbage collector to traverse per event.
_set = object.__setattr__


class Sentinel(enum.StrEnum):
    """Checkpoint values that are not sequence numbers (the KCL's sentinel checkpoints)."""

    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"
    AT_TIMESTAMP = "AT_TIMESTAMP"
    SHARD_END = "SHARD_END"


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class CompoundSequenceNumber:
    """A record's position: Kinesis sequence number plus its index inside a KPL aggregate.

    Ordered by ``(int(sequence_number), sub_sequence_number)``. Sequence numbers are decimal
    strings of up to 56 digits; comparing them as strings (the Scala library's bug) misorders
    numbers of different lengths.
    """

    sequence_number: str
    sub_sequence_number: int = 0
    _key: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sequence_number.isdigit():
            raise ValueError(
                f"sequence number must be decimal digits, got {self.sequence_number!r}"
            )
        if self.sub_sequence_number < 0:
            raise ValueError(f"sub-sequence number must be >= 0, got {self.sub_sequence_number}")
        object.__setattr__(self, "_key", (int(self.sequence_number), self.sub_sequence_number))

    @classmethod
    def _trusted(
        cls, sequence_number: str, sub_sequence_number: int, number: int
    ) -> CompoundSequenceNumber:
        """A position read from Kinesis, without the checks: ``number`` is
        ``int(sequence_number)``, the sequence number Kinesis sent is decimal digits and the
        sub-sequence number an aggregate index (>= 0). The reader's per-record fast path."""
        self = object.__new__(cls)
        _set(self, "sequence_number", sequence_number)
        _set(self, "sub_sequence_number", sub_sequence_number)
        _set(self, "_key", (number, sub_sequence_number))
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompoundSequenceNumber):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, CompoundSequenceNumber):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return f"{self.sequence_number}/{self.sub_sequence_number}"


@dataclass(frozen=True)
class ConsumerEvent:
    """One user record read from a shard (already deaggregated)."""

    sequence_number: CompoundSequenceNumber
    payload: bytes
    timestamp: datetime
    partition_key: str
    shard_id: str
    explicit_hash_key: str | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))

    @classmethod
    def _trusted(
        cls,
        sequence_number: CompoundSequenceNumber,
        payload: bytes,
        timestamp: datetime,
        partition_key: str,
        shard_id: str,
        explicit_hash_key: str | None,
    ) -> ConsumerEvent:
        """The same event without ``__post_init__``: ``timestamp`` must be timezone-aware
        already (the reader's per-record fast path)."""
        self = object.__new__(cls)
        _set(self, "sequence_number", sequence_number)
        _set(self, "payload", payload)
        _set(self, "timestamp", timestamp)
        _set(self, "partition_key", partition_key)
        _set(self, "shard_id", shard_id)
        _set(self, "explicit_hash_key", explicit_hash_key)
        return self

    def payload_as_string(self, encoding: str = "utf-8") -> str:
        return self.payload.decode(encoding)


@slots_init
@dataclass(frozen=True, slots=True)
class ProducerEvent:
    """A user record to put. A ``str`` payload is sent UTF-8 encoded.

    Types are checked here, at the door: ``payload`` is ``bytes``, ``bytearray``, ``memoryview``
    or ``str``; ``partition_key`` a ``str``; ``explicit_hash_key`` a ``str`` or ``None``.
    Anything else raises ``TypeError`` naming the field and the type given (an ``int`` payload
    would otherwise be sent as that many NUL bytes).
    """

    partition_key: str
    payload: bytes | bytearray | memoryview | str
    explicit_hash_key: str | None = None
    data: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        payload = self.payload
        if type(payload) is bytes:
            data = payload
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        elif isinstance(payload, bytes | bytearray | memoryview):
            data = bytes(payload)
        else:
            raise TypeError(
                "ProducerEvent.payload must be bytes, bytearray, memoryview or str, "
                f"got {type(payload).__name__}"
            )
        if not isinstance(self.partition_key, str):
            raise TypeError(
                "ProducerEvent.partition_key must be a str, "
                f"got {type(self.partition_key).__name__}"
            )
        if self.explicit_hash_key is not None and not isinstance(self.explicit_hash_key, str):
            raise TypeError(
                "ProducerEvent.explicit_hash_key must be a str or None, "
                f"got {type(self.explicit_hash_key).__name__}"
            )
        object.__setattr__(self, "data", data)


@slots_init
@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at putting a user record (the KPL's Attempt). Times are in seconds."""

    delay: float
    duration: float
    error_code: str | None = None
    error_message: str | None = None
    success: bool = False


@slots_init
@dataclass(frozen=True, slots=True)
class UserRecordResult:
    """Where a user record landed, or why it did not, with every attempt made."""

    shard_id: str | None
    sequence_number: str | None
    attempts: tuple[Attempt, ...]
    successful: bool
