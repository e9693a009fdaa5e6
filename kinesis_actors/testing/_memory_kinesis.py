"""An in-memory Kinesis stream for tests and benchmarks of code that produces.

``InMemoryKinesis`` answers ListShards and PutRecords at once, routing records by explicit hash
key or MD5 of the partition key as Kinesis does, and keeps what it received. Use it directly as
the producer's client (no botocore at all: the "instant transport" of the benchmark), or attach
it to a real boto3 client so requests go through botocore's serialisation and event hooks (where
tests inject faults) but never reach the network.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from kinesis_actors._aggregation import MAX_HASH_KEY, hash_key
from kinesis_actors._aws import client_config
from kinesis_actors.testing._processes import local_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_kinesis import KinesisClient

__all__ = ["InMemoryKinesis", "StoredRecord"]

_TARGET_PREFIX = "Kinesis_20131202."


@dataclass(frozen=True)
class StoredRecord:
    """A Kinesis record as the stream received it."""

    partition_key: str
    explicit_hash_key: str | None
    data: bytes
    sequence_number: str


@dataclass
class _Shard:
    shard_id: str
    start: int
    end: int
    closed: bool = False
    records: list[StoredRecord] = field(default_factory=list)


class _Body:
    """The raw-body shape botocore reads a response from."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._payload


class InMemoryKinesis:
    """One stream of ``shard_count`` shards splitting the hash key space evenly.

    Thread-safe. ``page_size`` makes ListShards paginate. ``reshard`` closes every open shard
    and opens new, higher-numbered ones, as a split or UpdateShardCount would.
    """

    def __init__(self, shard_count: int = 1, *, page_size: int = 1000, keep: bool = True) -> None:
        self._lock = threading.Lock()
        self._shards: list[_Shard] = []
        self._numbers = itertools.count()
        self._sequence = itertools.count(1)
        self._page_size = page_size
        self._keep = keep
        self.put_records_calls = 0
        self.list_shards_calls = 0
        self._open(shard_count)

    def _open(self, shard_count: int) -> None:
        width = (MAX_HASH_KEY + 1) // shard_count
        for index in range(shard_count):
            end = MAX_HASH_KEY if index == shard_count - 1 else (index + 1) * width - 1
            self._shards.append(_Shard(f"shardId-{next(self._numbers):012d}", index * width, end))

    def reshard(self, shard_count: int) -> None:
        """Close all open shards and spread the key space over ``shard_count`` new ones."""
        with self._lock:
            for shard in self._shards:
                shard.closed = True
            self._open(shard_count)

    @property
    def open_shards(self) -> list[str]:
        return [shard.shard_id for shard in self._shards if not shard.closed]

    def records(self, shard_id: str | None = None) -> list[StoredRecord]:
        """What one shard (or every shard, in shard order) received."""
        with self._lock:
            return [
                record
                for shard in self._shards
                if shard_id is None or shard.shard_id == shard_id
                for record in shard.records
            ]

    # -- the client methods the producer calls ---------------------------------------------------

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.list_shards_calls += 1
            offset = int(kwargs.get("NextToken") or 0)
            page = self._shards[offset : offset + self._page_size]
            shards = [
                {
                    "ShardId": shard.shard_id,
                    "HashKeyRange": {
                        "StartingHashKey": str(shard.start),
                        "EndingHashKey": str(shard.end),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "0"}
                    | ({"EndingSequenceNumber": "99"} if shard.closed else {}),
                }
                for shard in page
            ]
            answer: dict[str, Any] = {"Shards": shards}
            if offset + self._page_size < len(self._shards):
                answer["NextToken"] = str(offset + self._page_size)
            return answer

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            self.put_records_calls += 1
            open_shards = [shard for shard in self._shards if not shard.closed]
            ends = [shard.end for shard in open_shards]
            results = []
            for entry in Records:
                key = hash_key(entry["PartitionKey"], entry.get("ExplicitHashKey"))
                shard = open_shards[bisect.bisect_left(ends, key)]
                sequence_number = f"{next(self._sequence):056d}"
                if self._keep:
                    shard.records.append(
                        StoredRecord(
                            entry["PartitionKey"],
                            entry.get("ExplicitHashKey"),
                            bytes(entry["Data"]),
                            sequence_number,
                        )
                    )
                results.append({"ShardId": shard.shard_id, "SequenceNumber": sequence_number})
            return {"FailedRecordCount": 0, "Records": results}

    # -- behind botocore -------------------------------------------------------------------------

    def attach(self, client: KinesisClient) -> None:
        """Answer ``client``'s ListShards and PutRecords calls from this stream."""
        client.meta.events.register("before-send.kinesis", self._answer)

    def client(self) -> KinesisClient:
        """A real boto3 client (one try per call) answered by this stream, never the network."""
        client: KinesisClient = local_client(
            "kinesis", "http://kinesis.in-memory.invalid", "us-east-1", client_config(tries=1)
        )
        self.attach(client)
        return client

    def _answer(self, request: Any, **_: Any) -> Any:
        operation = request.headers["X-Amz-Target"].decode().removeprefix(_TARGET_PREFIX)
        body = json.loads(request.body or b"{}")
        if operation == "ListShards":
            payload = self.list_shards(**body)
        elif operation == "PutRecords":
            for entry in body["Records"]:
                entry["Data"] = base64.b64decode(entry["Data"])
            payload = self.put_records(**body)
        else:
            payload = {"__type": "UnknownOperationException", "message": operation}
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        status = 400 if "__type" in payload else 200
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))
