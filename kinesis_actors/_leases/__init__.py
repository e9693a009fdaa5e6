"""Lease coordination in DynamoDB, compatible with the KCL's lease table.

Many worker processes share one stream: each shard is processed by one worker at a time, a
crashed worker's shards move to the others after ``failoverTimeMillis``, and a worker stopped
gracefully hands its shards over at once. Start with `LeaseCoordinator` (its module docstring
describes the interface the consumer uses).
"""

from __future__ import annotations

from kinesis_actors._leases.coordinator import LeaseCoordinator, Subscriber, default_worker_id
from kinesis_actors._leases.dynamodb_leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import (
    Checkpoint,
    HeldLease,
    Lease,
    LeaseEvent,
    LeasesGained,
    LeasesLost,
)
from kinesis_actors._leases.memory import InMemoryLeaseTable
from kinesis_actors._leases.renewer import LeaseRenewer
from kinesis_actors._leases.shard_sync import ShardInfo, ShardSync, plan_new_leases
from kinesis_actors._leases.table import LeaseTable
from kinesis_actors._leases.taker import LeaseTaker

__all__ = [
    "Checkpoint",
    "DynamoDBLeaseTable",
    "HeldLease",
    "InMemoryLeaseTable",
    "Lease",
    "LeaseCoordinator",
    "LeaseEvent",
    "LeaseRenewer",
    "LeaseTable",
    "LeaseTaker",
    "LeasesGained",
    "LeasesLost",
    "ShardInfo",
    "ShardSync",
    "Subscriber",
    "default_worker_id",
    "plan_new_leases",
]
