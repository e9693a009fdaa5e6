"""Throttling that no emulator produces, injected through botocore event hooks.

A share of PutRecords entries fails with ``ProvisionedThroughputExceededException`` (a partial
failure, as Kinesis reports it: those entries are never sent, so they are not stored), a share of
GetRecords calls and of lease-table writes fail whole (the request never leaves the client).
The library must absorb all of it: retries by the producer engine, backoff by the shard workers
and the lease coordinator.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from kinesis_actors._aws import add_client_hook, remove_client_hook

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
