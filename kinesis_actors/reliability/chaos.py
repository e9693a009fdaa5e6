"""Throttling that no emulator produces, injected through botocore event hooks.

A share of PutRecords entries fails with ``ProvisionedThroughputExceededException`` (a partial
failure, as Kinesis reports it), a share of GetRecords calls and of lease-table writes fail whole.
The library must absorb all of it: retries by the producer engine, backoff by the shard workers
and the lease coordinator.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from kinesis_actors.aws import add_client_hook, remove_client_hook

__all__ = ["ThrottleInjector"]

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
            events.register("after-call.kinesis.PutRecords", self._fail_some_entries)
            events.register("before-send.kinesis.GetRecords", self._throttle_get)
        elif service == "dynamodb":
            for operation in _LEASE_WRITES:
                events.register(f"before-send.dynamodb.{operation}", self._throttle_write)

    def _fail_some_entries(self, parsed: dict[str, Any], **_: Any) -> None:
        records = parsed.get("Records") or []
        failed = 0
        for index, entry in enumerate(records):
            if "ErrorCode" not in entry and self._random.random() < self.put_entries:
                records[index] = {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard (injected)",
                }
                failed += 1
        if failed:
            parsed["FailedRecordCount"] = parsed.get("FailedRecordCount", 0) + failed
            self.injected["put"] += failed

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
