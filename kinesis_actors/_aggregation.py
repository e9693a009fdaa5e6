"""The KPL aggregated-record codec: many user records packed into one Kinesis record.

Wire format (KPL ``aggregation-format.md``): magic ``F3 89 9A C2``, a protobuf ``AggregatedRecord``,
then the MD5 of the protobuf bytes. Serialising and parsing run on protobuf's C backend (upb),
because a pure-Python varint codec is several times slower than aws-kinesis-agg. The message
classes come from a private descriptor pool built at import time: no generated ``_pb2`` module, no
protoc, and no clash with aws-kinesis-agg, which registers the same names in the default pool.

Sizes are tracked in pure Python (protobuf tags and varint lengths, counted exactly) so a producer
knows when an aggregate is full without serialising it.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = [
    "MAGIC",
    "MAX_HASH_KEY",
    "AggregateBuilder",
    "AggregatedMember",
    "DecodedMember",
    "deaggregate",
    "decode",
    "encode",
    "hash_key",
    "is_aggregated",
]

MAGIC = b"\xf3\x89\x9a\xc2"
MAX_HASH_KEY = 2**128 - 1

_DIGEST_SIZE = 16
_OVERHEAD = len(MAGIC) + _DIGEST_SIZE
_PROTO_PACKAGE = "aws.kinesis.protobuf"


def _small_md5() -> Callable[[bytes], Any]:
    """MD5 for partition keys: CPython's built-in ``_md5`` when there is one. It is twice as fast
    as OpenSSL's for a few bytes (no EVP set-up per hash), and the filter hashes every key."""
    try:
        md5: Callable[[bytes], Any] = importlib.import_module("_md5").md5
    except ImportError:  # a build without it: hashlib's (OpenSSL) MD5, the same digests
        md5 = hashlib.md5
    return md5


_md5 = _small_md5()


def _aggregated_record_class() -> Any:
    """Build the proto2 schema of KPL ``messages.proto`` (only the aggregation messages)."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="kinesis_actors/aggregation.proto", package=_PROTO_PACKAGE, syntax="proto2"
    )
    field = descriptor_pb2.FieldDescriptorProto
    required, optional, repeated = field.LABEL_REQUIRED, field.LABEL_OPTIONAL, field.LABEL_REPEATED
    schema: dict[str, list[tuple[int, Any, Any, str, str]]] = {
        "Tag": [
            (1, required, field.TYPE_STRING, "key", ""),
            (2, optional, field.TYPE_STRING, "value", ""),
        ],
        "Record": [
            (1, required, field.TYPE_UINT64, "partition_key_index", ""),
            (2, optional, field.TYPE_UINT64, "explicit_hash_key_index", ""),
            (3, required, field.TYPE_BYTES, "data", ""),
            (4, repeated, field.TYPE_MESSAGE, "tags", "Tag"),
        ],
        "AggregatedRecord": [
            (1, repeated, field.TYPE_STRING, "partition_key_table", ""),
            (2, repeated, field.TYPE_STRING, "explicit_hash_key_table", ""),
            (3, repeated, field.TYPE_MESSAGE, "records", "Record"),
        ],
    }
    for message_name, fields in schema.items():
        message = fdp.message_type.add(name=message_name)
        for number, label, type_, name, type_name in fields:
            f = message.field.add(name=name, number=number, label=label, type=type_)
            if type_name:
                f.type_name = f".{_PROTO_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PROTO_PACKAGE}.AggregatedRecord")
    )


_AggregatedRecord = _aggregated_record_class()


def hash_key(partition_key: str, explicit_hash_key: str | None = None) -> int:
    """The 128-bit key Kinesis routes by; needed for shard prediction and the resharding filter."""
    if explicit_hash_key is not None:
        return int(explicit_hash_key)
    return int.from_bytes(_md5(partition_key.encode("utf-8")).digest(), "big")


class AggregatedMember(NamedTuple):
    """A user record inside an aggregate (a tuple, so plain 3-tuples are accepted as well)."""

    partition_key: str
    explicit_hash_key: str | None
    data: bytes


class DecodedMember(NamedTuple):
    """A user record read back from a Kinesis record.

    ``aggregated`` is False for a record that was not a valid aggregate and is passed through raw
    (sub-sequence 0), which the consumer needs to form checkpoints as the KCL does.
    """

    partition_key: str
    explicit_hash_key: str | None
    data: bytes
    sub_sequence_number: int
    aggregated: bool


def _varint_len(value: int) -> int:
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def _string_field_len(text: str) -> int:
    """Bytes of one table entry: tag, length varint, UTF-8 bytes."""
    n = len(text) if text.isascii() else len(text.encode("utf-8"))
    return 1 + _varint_len(n) + n


def _wrap(pk_table: list[str], ehk_table: list[str], records: list[dict[str, Any]]) -> bytes:
    body = _AggregatedRecord(
        partition_key_table=pk_table, explicit_hash_key_table=ehk_table, records=records
    ).SerializeToString()
    return b"".join((MAGIC, body, hashlib.md5(body).digest()))


class AggregateBuilder:
    """Accumulates user records for one aggregate and knows its exact serialised size.

    Not thread-safe: one builder belongs to one producer actor. ``build()`` always wraps, even a
    single member; the KPL sends a lone record raw, and that decision is the producer's.
    """

    __slots__ = ("_ehk_index", "_first", "_pk_index", "_records", "_size")

    def __init__(self) -> None:
        self._first: tuple[str, str | None] | None = None  # the first member's keys
        self._pk_index: dict[str, int] = {}
        self._ehk_index: dict[str, int] = {}
        self._records: list[dict[str, Any]] = []
        self._size = _OVERHEAD

    def _growth(self, partition_key: str, explicit_hash_key: str | None, data_len: int) -> int:
        pk_index = self._pk_index.get(partition_key)
        if pk_index is None:
            pk_index = len(self._pk_index)
            growth = _string_field_len(partition_key)
        else:
            growth = 0
        # Record: tag + index varint, tag + data length varint + data (+ tag + EHK index varint).
        inner = 2 + _varint_len(pk_index) + _varint_len(data_len) + data_len
        if explicit_hash_key is not None:
            ehk_index = self._ehk_index.get(explicit_hash_key)
            if ehk_index is None:
                ehk_index = len(self._ehk_index)
                growth += _string_field_len(explicit_hash_key)
            inner += 1 + _varint_len(ehk_index)
        return growth + 1 + _varint_len(inner) + inner

    def size_if_added(self, partition_key: str, explicit_hash_key: str | None, data: bytes) -> int:
        """Exact ``len(build())`` after adding this record, so a producer can check
        AggregationMaxSize and the 1 MiB record limit before committing to it."""
        return self._size + self._growth(partition_key, explicit_hash_key, len(data))

    def add(self, partition_key: str, explicit_hash_key: str | None, data: bytes) -> None:
        """Append a record; keys already in the tables are reused, as the KPL does."""
        self._size += self._growth(partition_key, explicit_hash_key, len(data))
        pk_index = self._pk_index.setdefault(partition_key, len(self._pk_index))
        if explicit_hash_key is None:
            self._records.append({"partition_key_index": pk_index, "data": data})
        else:
            ehk_index = self._ehk_index.setdefault(explicit_hash_key, len(self._ehk_index))
            self._records.append(
                {
                    "partition_key_index": pk_index,
                    "explicit_hash_key_index": ehk_index,
                    "data": data,
                }
            )
        if self._first is None:
            self._first = (partition_key, explicit_hash_key)

    @property
    def count(self) -> int:
        return len(self._records)

    @property
    def size(self) -> int:
        """Exact ``len(build())`` (20 bytes when empty)."""
        return self._size

    @property
    def first_hash_key(self) -> int | None:
        """The outer record's ExplicitHashKey: the KPL routes an aggregate by its first member."""
        if self._first is None:
            return None
        return hash_key(*self._first)

    def build(self) -> bytes:
        """Serialise; an empty aggregate is refused because consumers would read it as raw data."""
        if not self._records:
            raise ValueError("cannot build an empty aggregate")
        return _wrap(list(self._pk_index), list(self._ehk_index), self._records)


def encode(members: Iterable[tuple[str, str | None, bytes]]) -> bytes:
    """One-shot ``AggregateBuilder`` for callers that already chose the members."""
    builder = AggregateBuilder()
    for partition_key, explicit_hash_key, data in members:
        builder.add(partition_key, explicit_hash_key, data)
    return builder.build()


def _parse(data: bytes) -> Any | None:
    """The checks of KCL ``AggregatorUtil``: magic, more than 16 bytes after it, MD5, protobuf."""
    if len(data) <= _OVERHEAD or not data.startswith(MAGIC):
        return None
    body = memoryview(data)[len(MAGIC) : -_DIGEST_SIZE]
    if hashlib.md5(body).digest() != data[-_DIGEST_SIZE:]:
        return None
    message = _AggregatedRecord()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return None
    # upb accepts missing required fields; Java protobuf (the KCL) rejects them.
    if not message.IsInitialized():
        return None
    return message


def _texts(table: Iterable[str | bytes]) -> list[str]:
    """Table entries as text. upb hands out invalid UTF-8 of a proto2 string as bytes; Java
    protobuf (the KCL) substitutes U+FFFD, and so do we."""
    entries = list(table)
    if bytes not in set(map(type, entries)):
        return entries  # type: ignore[return-value]
    return [e.decode("utf-8", "replace") if isinstance(e, bytes) else e for e in entries]


#: A member as decoded: partition key, explicit hash key, data (its index is its sub-sequence).
_Row = tuple[str, str | None, bytes]


def _rows(data: bytes) -> list[_Row] | None:
    """``decode`` without the named tuples (the consumer's per-record path)."""
    message = _parse(data)
    if message is None:
        return None
    pks = _texts(message.partition_key_table)
    ehks = _texts(message.explicit_hash_key_table)
    try:
        return [
            (
                pks[r.partition_key_index],
                ehks[r.explicit_hash_key_index] if r.HasField("explicit_hash_key_index") else None,
                r.data,
            )
            for r in message.records
        ]
    except IndexError:
        return None


def decode(data: bytes) -> list[DecodedMember] | None:
    """The members of an aggregate, or None if ``data`` is not one (the caller passes it raw).

    A table index out of range also yields None. The KCL would instead keep the members before
    the bad one and drop the rest; passing the record through raw loses nothing.
    """
    rows = _rows(data)
    if rows is None:
        return None
    return [DecodedMember(pk, ehk, payload, i, True) for i, (pk, ehk, payload) in enumerate(rows)]


def is_aggregated(data: bytes) -> bool:
    """Whether ``decode`` would unpack ``data`` rather than pass it through."""
    return decode(data) is not None


def _all_within(rows: Sequence[_Row], start: int, end: int) -> bool:
    """Whether every member's hash key is in ``[start, end]``: the KCL's resharding filter.

    Each distinct key is hashed once (aggregates repeat partition keys), and MD5 digests are
    compared as 16-byte big-endian strings, which orders them as the 128-bit keys they are.
    """
    md5_keys: set[str] = set()
    explicit_keys: set[str] = set()
    for partition_key, explicit_hash_key, _ in rows:
        if explicit_hash_key is None:
            md5_keys.add(partition_key)
        else:
            explicit_keys.add(explicit_hash_key)
    if md5_keys:
        if start > MAX_HASH_KEY or end < 0 or start > end:
            return False
        digests = [_md5(key.encode("utf-8")).digest() for key in md5_keys]
        if start > 0 and min(digests) < start.to_bytes(_DIGEST_SIZE, "big"):
            return False
        if end < MAX_HASH_KEY and max(digests) > end.to_bytes(_DIGEST_SIZE, "big"):
            return False
    for text in explicit_keys:
        try:
            key = int(text)
        except ValueError:  # an EHK that is no number cannot be shown to belong here
            return False
        if not start <= key <= end:
            return False
    return True


def _unpack(data: bytes, hash_range: tuple[int, int] | None) -> list[_Row] | None:
    """``deaggregate`` without the named tuples: None if ``data`` is no aggregate (passed
    through raw), empty if the hash-range filter dropped it; a row's index is its sub-sequence."""
    rows = _rows(data)
    if rows is None or hash_range is None or _all_within(rows, *hash_range):
        return rows
    return []


def deaggregate(
    data: bytes,
    partition_key: str,
    explicit_hash_key: str | None = None,
    hash_range: tuple[int, int] | None = None,
) -> list[DecodedMember]:
    """The user records of one Kinesis record, with the KCL's resharding filter.

    If any member hashes outside ``hash_range`` (the shard's inclusive start and end), the
    aggregate was written before a split and re-sent by the KPL to the right child shard, so the
    whole aggregate is dropped: the result is empty and the caller logs it. ``None`` means the
    range is unknown: no filter. A record that is not an aggregate passes through unfiltered,
    as in the KCL.
    """
    rows = _unpack(data, hash_range)
    if rows is None:
        return [DecodedMember(partition_key, explicit_hash_key, data, 0, False)]
    return [DecodedMember(pk, ehk, payload, i, True) for i, (pk, ehk, payload) in enumerate(rows)]
