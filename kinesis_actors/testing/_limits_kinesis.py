"""Kinesis calls under AWS's limits: the limits proxy's decisions for each Kinesis API.

Writes are routed to shards by MD5 of the partition key against the open shards' hash ranges,
and a PutRecords over a shard's limit answers the over-limit entries with a per-entry
``ProvisionedThroughputExceededException`` (the rest are stored), as AWS does. GetRecords are
mapped to their shard through the iterators the proxy has seen returned.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, Final

from kinesis_actors.testing._limits_upstream import IteratorShards, Reply, ShardRoutes, hash_key

if TYPE_CHECKING:
    from kinesis_actors.testing._limits_model import LimitModel
    from kinesis_actors.testing._limits_stats import LimitsCounters
    from kinesis_actors.testing._limits_upstream import Upstream

__all__ = ["ACCOUNT_ID", "KinesisLimits", "kinesis_error"]

#: The account id the emulators and the error messages use.
ACCOUNT_ID: Final = "000000000000"
_THROTTLED: Final = "ProvisionedThroughputExceededException"
_LIMIT_EXCEEDED: Final = "LimitExceededException"
#: Calls after which a stream's shards (hash ranges) may have changed.
_RESHAPING: Final = frozenset(
    {"CreateStream", "DeleteStream", "SplitShard", "MergeShards", "UpdateShardCount"}
)
_MAX_PUT_RECORDS: Final = 500


def kinesis_error(code: str, message: str, status: int = 400) -> Reply:
    """An error answer in Kinesis's JSON shape (``__type`` and ``message``)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return Reply(status, headers, body)


def _shard_throttled(stream: str, shard: str) -> str:
    return f"Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT_ID}."


def stream_of(payload: dict[str, Any]) -> str:
    """The stream a request names by StreamName, StreamARN or ConsumerARN ("" if none)."""
    name = payload.get("StreamName")
    if isinstance(name, str):
        return name
    for key in ("StreamARN", "ConsumerARN"):
        arn = payload.get(key)
        if isinstance(arn, str) and ":stream/" in arn:
            return arn.split(":stream/", 1)[1].split("/", 1)[0]
    return ""


def _data_size(encoded: str) -> int:
    """Bytes of a base64 ``Data`` field, without decoding it."""
    return len(encoded) * 3 // 4 - (encoded[-2:].count("=") if encoded else 0)


def _entry_size(entry: dict[str, Any]) -> int:
    """What a record counts against a shard's bytes: data plus partition key."""
    return _data_size(entry.get("Data", "")) + len(str(entry.get("PartitionKey", "")).encode())


class KinesisLimits:
    """Answers Kinesis requests: refused locally, or forwarded upstream and accounted."""

    def __init__(self, upstream: Upstream, model: LimitModel, counters: LimitsCounters) -> None:
        self._upstream = upstream
        self._model = model
        self._counters = counters
        self.routes = ShardRoutes(upstream)
        self._iterators = IteratorShards()

    def handle(self, operation: str, body: bytes, headers: list[tuple[str, str]]) -> Reply:
        name = f"kinesis.{operation}"
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._counters.add(name, calls=1)
            return self._upstream.forward(body, headers)
        if operation == "PutRecords":
            return self._put_records(name, payload, body, headers)
        if operation == "PutRecord":
            return self._put_record(name, payload, body, headers)
        if operation == "GetRecords":
            return self._get_records(name, payload, body, headers)
        if operation == "GetShardIterator":
            return self._get_shard_iterator(name, payload, body, headers)
        return self._control(name, operation, payload, body, headers)

    # -- writes ----------------------------------------------------------------------------------

    def _route(self, stream: str, entry: dict[str, Any]) -> str | None:
        key = hash_key(str(entry.get("PartitionKey", "")), entry.get("ExplicitHashKey"))
        return self.routes.shard_for(stream, key)

    def _check_routes(self, stream: str, predicted: list[str], answered: list[Any]) -> None:
        """Kinesis put a record elsewhere than predicted: the shards changed, reload them."""
        for shard, result in zip(predicted, answered, strict=False):
            landed = result.get("ShardId") if isinstance(result, dict) else None
            if landed is not None and landed != shard:
                self.routes.invalidate(stream)
                return

    def _put_records(
        self, name: str, payload: dict[str, Any], body: bytes, headers: list[tuple[str, str]]
    ) -> Reply:
        stream = stream_of(payload)
        entries = payload.get("Records")
        shards: list[str] = []
        if isinstance(entries, list) and 0 < len(entries) <= _MAX_PUT_RECORDS:
            for entry in entries:
                shard = self._route(stream, entry) if isinstance(entry, dict) else None
                if shard is None:
                    break
                shards.append(shard)
        if not isinstance(entries, list) or len(shards) != len(entries):
            # unknown stream or a malformed request: the server gives the error
            self._counters.add(name, calls=1)
            return self._upstream.forward(body, headers)

        sizes = [_entry_size(entry) for entry in entries]
        admitted = self._model.admit_writes(stream, list(zip(shards, sizes, strict=True)))
        throttled = admitted.count(False)
        stored = [entry for entry, ok in zip(entries, admitted, strict=True) if ok]
        if not stored:
            reply = Reply(200, [("Content-Type", "application/x-amz-json-1.1")], b"")
            results: list[Any] = []
            failed = 0
        else:
            sent = body if not throttled else json.dumps(dict(payload, Records=stored)).encode()
            reply = self._upstream.forward(sent, headers)
            if reply.status != 200:
                self._counters.add(name, calls=1, entries=len(entries))
                return reply
            answer = reply.json()
            results = answer.get("Records", [])
            failed = int(answer.get("FailedRecordCount", 0))
            kept = [shard for shard, ok in zip(shards, admitted, strict=True) if ok]
            self._check_routes(stream, kept, results)
            if not throttled:
                self._count_put(name, len(entries), 0, results, sizes)
                return reply
        merged: list[Any] = []
        answered = iter(results)
        for shard, ok in zip(shards, admitted, strict=True):
            if ok:
                merged.append(next(answered))
            else:
                merged.append(
                    {"ErrorCode": _THROTTLED, "ErrorMessage": _shard_throttled(stream, shard)}
                )
        self._count_put(name, len(entries), throttled, merged, sizes)
        document = {"FailedRecordCount": failed + throttled, "Records": merged}
        reply.body = json.dumps(document).encode()
        return reply

    def _count_put(
        self, name: str, entries: int, throttled: int, results: list[Any], sizes: list[int]
    ) -> None:
        stored = [size for size, r in zip(sizes, results, strict=False) if "SequenceNumber" in r]
        self._counters.add(
            name,
            calls=1,
            entries=entries,
            throttled_entries=throttled,
            records=len(stored),
            bytes=sum(stored),
        )

    def _put_record(
        self, name: str, payload: dict[str, Any], body: bytes, headers: list[tuple[str, str]]
    ) -> Reply:
        stream = stream_of(payload)
        shard = self._route(stream, payload)
        if shard is None:
            self._counters.add(name, calls=1)
            return self._upstream.forward(body, headers)
        size = _entry_size(payload)
        if not self._model.admit_writes(stream, [(shard, size)])[0]:
            self._counters.add(name, calls=1, refused=1, entries=1, throttled_entries=1)
            return kinesis_error(_THROTTLED, _shard_throttled(stream, shard))
        reply = self._upstream.forward(body, headers)
        stored = reply.status == 200
        if stored:
            self._check_routes(stream, [shard], [reply.json()])
        self._counters.add(
            name, calls=1, entries=1, records=int(stored), bytes=size if stored else 0
        )
        return reply

    # -- reads -----------------------------------------------------------------------------------

    def _get_shard_iterator(
        self, name: str, payload: dict[str, Any], body: bytes, headers: list[tuple[str, str]]
    ) -> Reply:
        stream = stream_of(payload)
        shard = str(payload.get("ShardId", ""))
        if not self._model.admit_shard_iterator(stream, shard):
            self._counters.add(name, calls=1, refused=1)
            return kinesis_error(_THROTTLED, _shard_throttled(stream, shard))
        self._counters.add(name, calls=1)
        reply = self._upstream.forward(body, headers)
        if reply.status == 200:
            iterator = reply.json().get("ShardIterator")
            if isinstance(iterator, str):
                self._iterators.remember(iterator, stream, shard)
        return reply

    def _get_records(
        self, name: str, payload: dict[str, Any], body: bytes, headers: list[tuple[str, str]]
    ) -> Reply:
        where = self._iterators.lookup(str(payload.get("ShardIterator", "")))
        if where is None:
            # an iterator the proxy never handed out: the server judges it (expired, invalid)
            self._counters.add(f"{name}(unmapped)", calls=1)
            return self._upstream.forward(body, headers)
        stream, shard = where
        if not self._model.admit_read(stream, shard):
            self._counters.add(name, calls=1, refused=1)
            return kinesis_error(_THROTTLED, _shard_throttled(stream, shard))
        reply = self._upstream.forward(body, headers)
        if reply.status != 200:
            self._counters.add(name, calls=1)
            return reply
        answer = reply.json()
        records = answer.get("Records", [])
        size = sum(_entry_size(record) for record in records)
        self._model.charge_read(stream, shard, size)
        self._counters.add(name, calls=1, records=len(records), bytes=size)
        following = answer.get("NextShardIterator")
        if isinstance(following, str):
            self._iterators.remember(following, stream, shard)
        return reply

    # -- control plane ---------------------------------------------------------------------------

    def _control(
        self,
        name: str,
        operation: str,
        payload: dict[str, Any],
        body: bytes,
        headers: list[tuple[str, str]],
    ) -> Reply:
        stream = stream_of(payload)
        if not self._model.admit_control(operation, stream):
            self._counters.add(name, calls=1, refused=1)
            where = f"stream {stream} under account" if stream else "account"
            return kinesis_error(_LIMIT_EXCEEDED, f"Rate exceeded for {where} {ACCOUNT_ID}.")
        self._counters.add(name, calls=1)
        reply = self._upstream.forward(body, headers)
        if operation in _RESHAPING:
            self.routes.invalidate(stream)
        return reply
