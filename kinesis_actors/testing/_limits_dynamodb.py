"""DynamoDB calls under a PROVISIONED table's read and write capacity (the lease tables).

The proxy learns a table's billing mode and capacity from DescribeTable upstream (again after
CreateTable, UpdateTable or DeleteTable), asks dynalite for the capacity each call consumed
(``ReturnConsumedCapacity``, removed again from the answer when the client did not ask) and
refuses calls while a table's bucket is in debt, with DynamoDB's
``ProvisionedThroughputExceededException``. On-demand tables are not limited.
"""

from __future__ import annotations

import json
import threading
import uuid
import zlib
from typing import TYPE_CHECKING, Any, Final, Literal

from kinesis_actors.testing._limits_kinesis import ACCOUNT_ID
from kinesis_actors.testing._limits_upstream import Reply

if TYPE_CHECKING:
    from kinesis_actors.testing._limits_model import LimitModel
    from kinesis_actors.testing._limits_stats import LimitsCounters
    from kinesis_actors.testing._limits_upstream import Upstream

__all__ = ["DynamoDBLimits", "dynamodb_error"]

_READS: Final = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_WRITES: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
_TABLE_CHANGES: Final = frozenset({"CreateTable", "UpdateTable", "DeleteTable"})
_ERROR_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"
_THROTTLED_MESSAGE: Final = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)


def dynamodb_error(code: str, message: str, **extra: Any) -> Reply:
    """A 400 answer in DynamoDB's JSON shape, with the CRC32 header botocore checks."""
    body = json.dumps({"__type": _ERROR_PREFIX + code, "message": message, **extra}).encode()
    return Reply(400, _headers(body), body)


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("x-amz-crc32", str(zlib.crc32(body))),
    ]


def _tables_of(operation: str, payload: dict[str, Any]) -> list[str]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return sorted(payload.get("RequestItems", {}))
    if operation in ("TransactGetItems", "TransactWriteItems"):
        names = {
            action.get("TableName", "")
            for item in payload.get("TransactItems", [])
            for action in item.values()
            if isinstance(action, dict)
        }
        return sorted(names)
    table = payload.get("TableName")
    return [table] if isinstance(table, str) else []


class DynamoDBLimits:
    """Answers DynamoDB requests: refused locally, or forwarded upstream and charged."""

    def __init__(self, upstream: Upstream, model: LimitModel, counters: LimitsCounters) -> None:
        self._upstream = upstream
        self._model = model
        self._counters = counters
        self._lock = threading.Lock()
        self._described: set[str] = set()

    def handle(self, operation: str, body: bytes, headers: list[tuple[str, str]]) -> Reply:
        name = f"dynamodb.{operation}"
        kind: Literal["read", "write"] | None = (
            "read" if operation in _READS else "write" if operation in _WRITES else None
        )
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or kind is None:
            self._counters.add(name, calls=1)
            reply = self._upstream.forward(body, headers)
            if operation in _TABLE_CHANGES and isinstance(payload, dict):
                self._forget(str(payload.get("TableName", "")))
            return reply

        limited = [table for table in _tables_of(operation, payload) if self._provisioned(table)]
        for table in limited:
            if not self._model.admit_table(table, kind):
                self._counters.add(name, calls=1, refused=1)
                reason = f"Table{kind.capitalize()}ProvisionedThroughputExceeded"
                resource = f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/{table}"
                return dynamodb_error(
                    "ProvisionedThroughputExceededException",
                    _THROTTLED_MESSAGE,
                    ThrottlingReasons=[{"reason": reason, "resource": resource}],
                )
        self._counters.add(name, calls=1)
        if not limited:
            return self._upstream.forward(body, headers)

        injected = payload.get("ReturnConsumedCapacity", "NONE") == "NONE"
        if injected:
            body = json.dumps(dict(payload, ReturnConsumedCapacity="TOTAL")).encode()
        reply = self._upstream.forward(body, headers)
        if reply.status != 200:
            if kind == "write":  # a failed conditional write still costs a write unit
                for table in limited:
                    self._model.charge_table(table, kind, 1.0)
            return reply
        answer = reply.json()
        consumed = answer.get("ConsumedCapacity", [])
        for item in consumed if isinstance(consumed, list) else [consumed]:
            if isinstance(item, dict) and item.get("TableName") in limited:
                units = float(item.get("CapacityUnits", 1.0))
                self._model.charge_table(item["TableName"], kind, units)
        if injected:
            answer.pop("ConsumedCapacity", None)
            reply.body = json.dumps(answer).encode()
            reply.headers = [(k, v) for k, v in reply.headers if k.lower() != "x-amz-crc32"] + [
                ("x-amz-crc32", str(zlib.crc32(reply.body)))
            ]
        return reply

    def _forget(self, table: str) -> None:
        with self._lock:
            self._described.discard(table)
        self._model.forget_table(table)

    def _provisioned(self, table: str) -> bool:
        """True for a PROVISIONED table (DescribeTable upstream the first time it is seen)."""
        with self._lock:
            if table in self._described:
                return self._model.provisioned(table)
        reply = self._upstream.call("DescribeTable", {"TableName": table})
        if reply.status != 200:
            return False
        description = reply.json().get("Table", {})
        mode = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        throughput = description.get("ProvisionedThroughput", {})
        with self._lock:
            if table not in self._described:
                self._described.add(table)
                if mode == "PROVISIONED":
                    self._model.set_table_capacity(
                        table,
                        float(throughput.get("ReadCapacityUnits", 0)),
                        float(throughput.get("WriteCapacityUnits", 0)),
                    )
        return self._model.provisioned(table)
