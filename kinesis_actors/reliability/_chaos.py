"""The faults of ``reliability run --chaos``: the scenarios, resharding, and injected throttling.

Throttling that no emulator produces is injected through botocore event hooks: a share of
PutRecords entries fails with ``ProvisionedThroughputExceededException`` (a partial
failure, as Kinesis reports it: those entries are never sent, so they are not stored), a share of
GetRecords calls and of lease-table writes fail whole (the request never leaves the client).
The library must absorb all of it: retries by the producer engine, backoff by the shard workers
and the lease coordinator.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.awsrequest import AWSResponse, HTTPHeaders

from kinesis_actors._aws import add_client_hook, list_all_shards, remove_client_hook
from kinesis_actors._logging import get_logger

__all__ = [
    "FAULTS",
    "THROTTLE_ENV",
    "THROTTLE_RATES",
    "ThrottleInjector",
    "injector_from_env",
    "merge_shards",
    "parse_faults",
    "split_shard",
]

log = get_logger(__name__)

#: Fault scenarios of ``--chaos``.
FAULTS: Final = ("sigkill", "graceful", "reshard", "throttle")
#: Injected throttling rates: PutRecords entries, GetRecords calls, lease-table writes.
THROTTLE_RATES: Final = (0.10, 0.05, 0.10)
#: How the run passes the throttling rates to its consumer processes.
THROTTLE_ENV: Final = "KINESIS_ACTORS_INJECT_THROTTLING"

_LEASE_WRITES = ("PutItem", "UpdateItem", "DeleteItem")


class _Body:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Any:
        yield self._payload


def _error_response(url: str, code: str, message: str, content_type: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    return AWSResponse(url, 400, headers, _Body(body))


@dataclass
class ThrottleInjector:
    """Fail ``put_entries`` of PutRecords entries, ``get_calls`` of GetRecords calls and
    ``lease_writes`` of DynamoDB writes (fractions), in every client created while installed."""

    put_entries: float = 0.0
    get_calls: float = 0.0
    lease_writes: float = 0.0
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=lambda: {"put": 0, "get": 0, "lease": 0})
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def install(self) -> None:
        add_client_hook(self._hook)

    def uninstall(self) -> None:
        remove_client_hook(self._hook)

    def _hook(self, service: str, client: Any) -> None:
        events = client.meta.events
        if service == "kinesis":
            events.register("provide-client-params.kinesis.PutRecords", self._withhold_entries)
            events.register("after-call.kinesis.PutRecords", self._report_withheld)
            events.register("before-send.kinesis.GetRecords", self._throttle_get)
        elif service == "dynamodb":
            for operation in _LEASE_WRITES:
                events.register(f"before-send.dynamodb.{operation}", self._throttle_write)

    def _withhold_entries(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Take some entries out of the request: Kinesis never stores a throttled entry."""
        records = params.get("Records") or []
        withheld = [i for i in range(len(records)) if self._random.random() < self.put_entries]
        if len(withheld) == len(records):
            withheld = withheld[:-1]  # PutRecords needs at least one entry
        if withheld:
            skip = set(withheld)
            params["Records"] = [r for i, r in enumerate(records) if i not in skip]
            context["withheld_entries"] = withheld

    def _report_withheld(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Put the withheld entries back into the response, failed, at their positions."""
        withheld = context.get("withheld_entries")
        records = parsed.get("Records")
        if not withheld or records is None:
            return
        for index in withheld:
            records.insert(
                index,
                {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard (injected)",
                },
            )
        parsed["FailedRecordCount"] = parsed.get("FailedRecordCount", 0) + len(withheld)
        self.injected["put"] += len(withheld)

    def _throttle_get(self, request: Any, **_: Any) -> AWSResponse | None:
        if self._random.random() >= self.get_calls:
            return None
        self.injected["get"] += 1
        return _error_response(
            request.url,
            "ProvisionedThroughputExceededException",
            "Rate exceeded for shard (injected)",
            "application/x-amz-json-1.1",
        )

    def _throttle_write(self, request: Any, **_: Any) -> AWSResponse | None:
        if self._random.random() >= self.lease_writes:
            return None
        self.injected["lease"] += 1
        return _error_response(
            request.url,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected)",
            "application/x-amz-json-1.0",
        )


def parse_faults(text: str) -> tuple[str, ...]:
    """``--chaos``: comma-separated names of :data:`FAULTS`, or "all".

    Raises:
        ValueError: an unknown fault name.
    """
    if text.strip() == "all":
        return FAULTS
    faults = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return faults


def injector_from_env() -> ThrottleInjector | None:
    """The throttling a consumer process was asked for (:data:`THROTTLE_ENV`), installed."""
    rates = os.environ.get(THROTTLE_ENV)
    if not rates:
        return None
    put, get, lease = (float(part) for part in rates.split(","))
    injector = ThrottleInjector(put_entries=put, get_calls=get, lease_writes=lease)
    injector.install()
    return injector


def _open_shards(kinesis: Any, stream: str) -> list[Any]:
    shards = list_all_shards(kinesis, stream)
    return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def split_shard(kinesis: Any, stream: str) -> None:
    """Split the first open shard in the middle of its hash range."""
    shard = _open_shards(kinesis, stream)[0]
    start, end = (
        int(shard["HashKeyRange"]["StartingHashKey"]),
        int(shard["HashKeyRange"]["EndingHashKey"]),
    )
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=shard["ShardId"],
        NewStartingHashKey=str((start + end) // 2 + 1),
    )
    log.info("chaos: split shard", shard_id=shard["ShardId"])


def merge_shards(kinesis: Any, stream: str) -> None:
    """Merge the first two adjacent open shards."""
    open_shards = sorted(
        _open_shards(kinesis, stream), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"])
    )
    for left, right in itertools.pairwise(open_shards):
        if int(left["HashKeyRange"]["EndingHashKey"]) + 1 == int(
            right["HashKeyRange"]["StartingHashKey"]
        ):
            kinesis.merge_shards(
                StreamName=stream,
                ShardToMerge=left["ShardId"],
                AdjacentShardToMerge=right["ShardId"],
            )
            log.info("chaos: merged shards", shards=[left["ShardId"], right["ShardId"]])
            return
