"""The producer's units of work: a validated user record and the Kinesis record that carries it.

Validation runs in the caller's thread, record by record, so a bad record fails its own future
with an error naming the broken limit and never reaches the pipeline.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kinesis_actors._aggregation import MAX_HASH_KEY, hash_key
from kinesis_actors._errors import ExplicitHashKeyError, PartitionKeyError, RecordTooLargeError

if TYPE_CHECKING:
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

    from kinesis_actors._models import Attempt
    from kinesis_actors._producer.futures import RecordFuture

__all__ = [
    "MAX_PARTITION_KEY_LENGTH",
    "KinesisRecord",
    "UserRecord",
    "validate",
]

MAX_PARTITION_KEY_LENGTH = 256

#: The PutRecords pattern of ExplicitHashKey: ASCII decimal, no sign, no leading zero.
_EXPLICIT_HASH_KEY = re.compile(r"0|[1-9][0-9]{0,38}")


def validate(
    partition_key: str, explicit_hash_key: str | None, data: bytes, max_size: int
) -> tuple[int, int]:
    """The record's hash key and size (data plus UTF-8 partition key), or the limit it breaks."""
    if not isinstance(partition_key, str) or not 0 < len(partition_key) <= MAX_PARTITION_KEY_LENGTH:
        length = len(partition_key) if isinstance(partition_key, str) else type(partition_key)
        raise PartitionKeyError(
            f"partition key must be 1..{MAX_PARTITION_KEY_LENGTH} Unicode characters, got {length}"
        )
    if partition_key.isascii():
        key_bytes = len(partition_key)
    else:
        try:
            key_bytes = len(partition_key.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise PartitionKeyError(f"partition key is not valid Unicode text: {exc}") from None
    size = key_bytes + len(data)
    if size > max_size:
        raise RecordTooLargeError(
            f"payload ({len(data)} bytes) plus partition key ({key_bytes} bytes) is {size} bytes, "
            f"over MaxUserRecordSize ({max_size} bytes)"
        )
    if explicit_hash_key is not None and not (
        isinstance(explicit_hash_key, str)
        and _EXPLICIT_HASH_KEY.fullmatch(explicit_hash_key)
        and int(explicit_hash_key) <= MAX_HASH_KEY
    ):
        raise ExplicitHashKeyError(
            f"explicit hash key must be a decimal integer in [0, 2**128 - 1] without leading "
            f"zeros, got {explicit_hash_key!r}"
        )
    return hash_key(partition_key, explicit_hash_key), size


class UserRecord:
    """One user record on its way through the pipeline, with the future that reports on it.

    ``deadline`` is when it must leave the buffers, ``expiration`` when it fails as "Expired";
    ``mark`` is the arrival, then the end of the last attempt (the origin of the next delay).
    """

    __slots__ = (
        "attempts",
        "data",
        "deadline",
        "expiration",
        "explicit_hash_key",
        "future",
        "hash_key",
        "mark",
        "partition_key",
        "size",
    )

    def __init__(
        self,
        partition_key: str,
        explicit_hash_key: str | None,
        data: bytes,
        hash_key: int,
        size: int,
        future: RecordFuture,
        arrival: float,
        deadline: float,
        expiration: float,
    ) -> None:
        self.partition_key = partition_key
        self.explicit_hash_key = explicit_hash_key
        self.data = data
        self.hash_key = hash_key
        self.size = size
        self.future = future
        self.mark = arrival
        self.deadline = deadline
        self.expiration = expiration
        self.attempts: list[Attempt] | None = None


class KinesisRecord:
    """One PutRecords entry: a lone user record, or an aggregate of records for one shard.

    ``size`` is what Kinesis counts against its limits: data plus partition key bytes.
    """

    __slots__ = ("deadline", "entry", "expiration", "records", "shard_id", "size")

    def __init__(
        self,
        entry: PutRecordsRequestEntryTypeDef,
        size: int,
        records: list[UserRecord],
        shard_id: str | None,
        deadline: float,
        expiration: float,
    ) -> None:
        self.entry = entry
        self.size = size
        self.records = records
        self.shard_id = shard_id
        self.deadline = deadline
        self.expiration = expiration

    @classmethod
    def single(cls, record: UserRecord, shard_id: str | None) -> KinesisRecord:
        """A record sent alone: raw data, its own key, and always its hash key as the EHK."""
        return cls(
            {
                "Data": record.data,
                "PartitionKey": record.partition_key,
                "ExplicitHashKey": str(record.hash_key),
            },
            record.size,
            [record],
            shard_id,
            record.deadline,
            record.expiration,
        )
