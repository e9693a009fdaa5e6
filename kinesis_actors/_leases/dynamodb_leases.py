"""The lease table in DynamoDB (or dynalite): each `LeaseTable` write as a conditional
UpdateItem, PutItem or DeleteItem with the KCL's conditions, through a shared boto3 client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinesis_actors._aws import direct_path_of
from kinesis_actors._leases.dynamodb import DynamoDBTable
from kinesis_actors._leases.items import (
    checkpoint_attributes,
    is_lease_item,
    item_to_lease,
    lease_to_item,
    rate_attributes,
)
from kinesis_actors._leases.lease import Checkpoint, Lease
from kinesis_actors._leases.table import LeaseTable, Rates
from kinesis_actors._logging import get_logger
from kinesis_actors._models import Sentinel

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["DynamoDBLeaseTable"]

log = get_logger(__name__)

_SHARD_END = {"S": Sentinel.SHARD_END.value}
_PENDING_ATTRIBUTES = (
    "pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState"
)


class DynamoDBLeaseTable(DynamoDBTable, LeaseTable):
    """A lease table in DynamoDB (or dynalite), through a shared, thread-safe boto3 client.

    Its UpdateItems (renewals above all: one per lease per ``failover / 3``) take the client's
    direct path when the consumer's client factory built one (`kinesis_actors._aws.direct`).
    """

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        super().__init__(dynamodb, table_name, hash_key="leaseKey", kind="lease table")
        self._direct = direct_path_of(dynamodb)

    def list_leases(self) -> list[Lease]:
        leases: list[Lease] = []
        with self._errors("Scan"):
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._name):
                items = page.get("Items", [])
                leases.extend(item_to_lease(item) for item in items if is_lease_item(item))
        return leases

    def get_lease(self, shard_id: str) -> Lease | None:
        with self._errors("GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._name, Key={"leaseKey": {"S": shard_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return item_to_lease(item) if item and is_lease_item(item) else None

    def create_lease(self, lease: Lease) -> bool:
        done = self._conditional(
            "PutItem",
            lambda: self._dynamodb.put_item(
                TableName=self._name,
                Item=lease_to_item(lease),
                ConditionExpression="attribute_not_exists(leaseKey)",
            ),
        )
        return done is not None

    def _update(self, operation: str, shard_id: str, **kwargs: Any) -> Lease | None:
        params = {
            "TableName": self._name,
            "Key": {"leaseKey": {"S": shard_id}},
            "ReturnValues": "ALL_NEW",
            **kwargs,
        }
        direct = self._direct
        response = self._conditional(
            operation,
            lambda: (
                self._dynamodb.update_item(**params)
                if direct is None
                else direct.update_item(self._dynamodb, **params)
            ),
        )
        if response is None:
            return None
        return item_to_lease(response["Attributes"])

    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None:
        update = "SET leaseCounter = :next"
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
        }
        if rates is not None:
            update += ", throughputKBps = :kbps, throughputRecordsPerSec = :rps"
            attributes = rate_attributes(rates)
            values[":kbps"] = attributes["throughputKBps"]
            values[":rps"] = attributes["throughputRecordsPerSec"]
        return self._update(
            "UpdateItem(renew)",
            lease.shard_id,
            UpdateExpression=update,
            ConditionExpression="leaseCounter = :expected",
            ExpressionAttributeValues=values,
        )

    def request_handoff(self, lease: Lease, next_owner: str) -> Lease | None:
        if lease.owner is None:
            return None
        return self._update(
            "UpdateItem(handoff)",
            lease.shard_id,
            UpdateExpression="SET leaseOwner = :next, checkpointOwner = :current",
            ConditionExpression=(
                "leaseOwner = :current AND attribute_not_exists(checkpointOwner)"
                " AND attribute_exists(leaseKey)"
            ),
            ExpressionAttributeValues={
                ":next": {"S": next_owner},
                ":current": {"S": lease.owner},
            },
        )

    def _take_once(self, lease: Lease, owner: str) -> Lease | None:
        update = "SET leaseCounter = :next, leaseOwner = :owner"
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
            ":owner": {"S": owner},
        }
        if lease.owner != owner:
            update += " ADD ownerSwitchesSinceCheckpoint :one"
            values[":one"] = {"N": "1"}
        return self._update(
            "UpdateItem(take)",
            lease.shard_id,
            # checkpointOwner: a KCL 3.x hand-off in progress is void once the lease is taken.
            UpdateExpression=update + " REMOVE checkpointOwner",
            ConditionExpression="leaseCounter = :expected",
            ExpressionAttributeValues=values,
        )

    def cancel_handoff(self, lease: Lease) -> bool:
        if lease.owner is None or lease.checkpoint_owner is None:
            return False
        done = self._update(
            "UpdateItem(handoff cancel)",
            lease.shard_id,
            UpdateExpression="SET leaseOwner = :current REMOVE checkpointOwner",
            ConditionExpression="leaseOwner = :next AND checkpointOwner = :current",
            ExpressionAttributeValues={
                ":next": {"S": lease.owner},
                ":current": {"S": lease.checkpoint_owner},
            },
        )
        return done is not None

    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        if lease.actual_owner is None:
            return None
        sequence, sub = checkpoint_attributes(checkpoint)
        # During a hand-off the current owner is checkpointOwner, and it alone checkpoints.
        condition = (
            "leaseCounter = :expected AND (checkpointOwner = :owner"
            " OR (leaseOwner = :owner AND attribute_not_exists(checkpointOwner)))"
        )
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
            ":owner": {"S": lease.actual_owner},
            ":checkpoint": {"S": sequence},
            ":sub": {"N": str(sub)},
            ":zero": {"N": "0"},
        }
        if checkpoint != Sentinel.SHARD_END:
            condition += " AND checkpoint <> :shard_end"
            values[":shard_end"] = _SHARD_END
        return self._update(
            "UpdateItem(checkpoint)",
            lease.shard_id,
            UpdateExpression=(
                "SET leaseCounter = :next, checkpoint = :checkpoint,"
                " checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero"
                f" REMOVE {_PENDING_ATTRIBUTES}"
            ),
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    def release(self, lease: Lease) -> bool:
        if lease.checkpoint_owner is not None:
            done = self._update(
                "UpdateItem(handoff complete)",
                lease.shard_id,
                UpdateExpression=(
                    "SET leaseCounter = leaseCounter + :one REMOVE checkpointOwner"
                    " ADD ownerSwitchesSinceCheckpoint :one"
                ),
                ConditionExpression="checkpointOwner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": lease.checkpoint_owner},
                    ":one": {"N": "1"},
                },
            )
            return done is not None
        if lease.owner is None:
            return False
        done = self._update(
            "UpdateItem(release)",
            lease.shard_id,
            UpdateExpression="SET leaseCounter = leaseCounter + :one REMOVE leaseOwner",
            ConditionExpression="leaseOwner = :owner",
            ExpressionAttributeValues={":owner": {"S": lease.owner}, ":one": {"N": "1"}},
        )
        return done is not None

    def add_child_shard_ids(self, shard_id: str, child_shard_ids: tuple[str, ...]) -> None:
        if not child_shard_ids:
            return
        done = self._conditional(
            "UpdateItem(children)",
            lambda: self._dynamodb.update_item(
                TableName=self._name,
                Key={"leaseKey": {"S": shard_id}},
                UpdateExpression="ADD childShardIds :children",
                ConditionExpression="attribute_exists(leaseKey)",
                ExpressionAttributeValues={":children": {"SS": list(child_shard_ids)}},
            ),
        )
        if done is None:
            log.warning("lease gone before its children were recorded", shard_id=shard_id)

    def delete_finished(self, shard_id: str) -> bool:
        done = self._conditional(
            "DeleteItem",
            lambda: self._dynamodb.delete_item(
                TableName=self._name,
                Key={"leaseKey": {"S": shard_id}},
                ConditionExpression="checkpoint = :shard_end",
                ExpressionAttributeValues={":shard_end": _SHARD_END},
            ),
        )
        return done is not None
