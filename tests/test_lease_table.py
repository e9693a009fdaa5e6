"""The lease table contract, run against the in-memory table and DynamoDB (moto)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.awsrequest
import pytest
from moto import mock_aws

from kinesis_actors._errors import DependencyError, InvalidStateError, ThrottlingError
from kinesis_actors._leases import DynamoDBLeaseTable, InMemoryLeaseTable, Lease, LeaseTable
from kinesis_actors._leases.items import item_to_lease, lease_to_item
from kinesis_actors._leases.membership import (
    DynamoDBMembershipTable,
    InMemoryMembershipTable,
    Member,
    MembershipTable,
)
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

#: A realistic Kinesis sequence number: 56 digits, too long for a DynamoDB number.
SEQ_56 = "49680573334585594527311465187954266352274692041466707986"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def dynamodb_table() -> DynamoDBLeaseTable:
    table = DynamoDBLeaseTable(boto3.client("dynamodb", region_name="us-east-1"), "leases")
    table.create_if_missing()
    return table


@pytest.fixture(params=["memory", "dynamodb"])
def table(request: pytest.FixtureRequest) -> LeaseTable:
    if request.param == "memory":
        return InMemoryLeaseTable()
    request.getfixturevalue("aws_env")
    return dynamodb_table()


def free(shard_id: str = "shardId-000000000000", **fields: Any) -> Lease:
    return Lease(shard_id, None, 0, Sentinel.TRIM_HORIZON, **fields)


def test_create_lease_only_if_absent(table: LeaseTable) -> None:
    lease = free(
        parent_shard_ids=("shardId-a", "shardId-b"), starting_hash_key=0, ending_hash_key=2**128 - 1
    )
    assert table.create_lease(lease)
    assert not table.create_lease(dataclasses.replace(lease, checkpoint=Sentinel.LATEST))
    assert table.get_lease(lease.shard_id) == lease
    assert table.list_leases() == [lease]
    assert table.get_lease("shardId-missing") is None


def test_take_sets_owner_bumps_counter_and_counts_owner_switches(table: LeaseTable) -> None:
    table.create_lease(free())
    taken = table.take(free(), "worker-a")
    assert taken is not None
    assert (taken.owner, taken.counter, taken.owner_switches_since_checkpoint) == ("worker-a", 1, 1)
    assert table.take(free(), "worker-b") is None  # stale counter
    stolen = table.take(taken, "worker-b")
    assert stolen is not None
    assert (stolen.owner, stolen.counter, stolen.owner_switches_since_checkpoint) == (
        "worker-b",
        2,
        2,
    )
    retaken = table.take(stolen, "worker-b")
    assert retaken is not None
    assert retaken.owner_switches_since_checkpoint == 2  # same owner: not a switch


def test_renew_needs_the_counter_last_seen(table: LeaseTable) -> None:
    table.create_lease(free())
    held = table.take(free(), "worker-a")
    assert held is not None
    renewed = table.renew(held)
    assert renewed is not None and renewed.counter == 2
    stolen = table.take(renewed, "worker-b")
    assert stolen is not None
    assert table.renew(renewed) is None


def test_renewal_retried_after_success_counts_as_success(table: LeaseTable) -> None:
    """The KCL's spurious-failure check: the first attempt succeeded, its response was lost."""
    table.create_lease(free())
    held = table.take(free(), "worker-a")
    assert held is not None
    first_attempt = table.renew(held)
    retry = table.renew(held)  # same expected counter: fails its condition, then re-read
    assert retry == first_attempt
    assert retry is not None and retry.counter == held.counter + 1
    # But not once another write happened since.
    assert table.renew(first_attempt) is not None
    assert table.renew(held) is None


def test_checkpoint_is_conditional_and_clears_owner_switches(table: LeaseTable) -> None:
    table.create_lease(free())
    held = table.take(free(), "worker-a")
    assert held is not None
    position = CompoundSequenceNumber(SEQ_56, 3)
    written = table.checkpoint(held, position)
    assert written is not None
    assert (written.checkpoint, written.counter, written.owner_switches_since_checkpoint) == (
        position,
        2,
        0,
    )
    assert table.get_lease(held.shard_id) == written
    assert table.checkpoint(held, CompoundSequenceNumber(SEQ_56, 4)) is None  # stale counter
    other = dataclasses.replace(written, owner="worker-b")
    assert table.checkpoint(other, CompoundSequenceNumber(SEQ_56, 4)) is None  # not owner


def test_finished_lease_is_never_rolled_back(table: LeaseTable) -> None:
    table.create_lease(free())
    held = table.take(free(), "worker-a")
    assert held is not None
    finished = table.checkpoint(held, Sentinel.SHARD_END)
    assert finished is not None and finished.finished
    assert table.checkpoint(finished, CompoundSequenceNumber("5")) is None
    again = table.checkpoint(finished, Sentinel.SHARD_END)
    assert again is not None and again.finished


def test_release_needs_the_owner(table: LeaseTable) -> None:
    table.create_lease(free())
    held = table.take(free(), "worker-a")
    assert held is not None
    assert not table.release(dataclasses.replace(held, owner="worker-b"))
    renewed = table.renew(held)  # the counter moved on: release does not care
    assert renewed is not None
    assert table.release(held)
    after = table.get_lease(held.shard_id)
    assert after is not None
    assert (after.owner, after.counter) == (None, renewed.counter + 1)
    assert not table.release(held)


def test_child_ids_are_merged_without_counter_change(table: LeaseTable) -> None:
    table.create_lease(free())
    table.add_child_shard_ids(free().shard_id, ("shardId-2",))
    table.add_child_shard_ids(free().shard_id, ("shardId-1", "shardId-2"))
    table.add_child_shard_ids("shardId-missing", ("shardId-3",))  # no error, nothing created
    lease = table.get_lease(free().shard_id)
    assert lease is not None
    assert (lease.child_shard_ids, lease.counter) == (("shardId-1", "shardId-2"), 0)
    assert table.get_lease("shardId-missing") is None


def test_only_finished_leases_are_deleted(table: LeaseTable) -> None:
    table.create_lease(free())
    assert not table.delete_finished(free().shard_id)
    held = table.take(free(), "worker-a")
    assert held is not None
    table.checkpoint(held, Sentinel.SHARD_END)
    assert table.delete_finished(free().shard_id)
    assert table.list_leases() == []


def test_create_if_missing_and_delete(table: LeaseTable) -> None:
    assert not table.create_if_missing()
    table.delete_table()
    with pytest.raises(InvalidStateError):
        table.list_leases()
    assert table.create_if_missing()


# -- DynamoDB specifics ------------------------------------------------------------------------


def test_item_layout_is_the_kcl_one() -> None:
    lease = Lease(
        "shardId-000000000007",
        "worker-a",
        12,
        CompoundSequenceNumber(SEQ_56, 2),
        owner_switches_since_checkpoint=1,
        parent_shard_ids=("shardId-000000000003",),
        child_shard_ids=("shardId-000000000009",),
        pending_checkpoint=CompoundSequenceNumber(SEQ_56, 5),
        starting_hash_key=0,
        ending_hash_key=2**127,
    )
    item = lease_to_item(lease)
    assert item == {
        "leaseKey": {"S": "shardId-000000000007"},
        "leaseOwner": {"S": "worker-a"},
        "leaseCounter": {"N": "12"},
        "checkpoint": {"S": SEQ_56},
        "checkpointSubSequenceNumber": {"N": "2"},
        "ownerSwitchesSinceCheckpoint": {"N": "1"},
        "parentShardId": {"SS": ["shardId-000000000003"]},
        "childShardIds": {"SS": ["shardId-000000000009"]},
        "pendingCheckpoint": {"S": SEQ_56},
        "pendingCheckpointSubSequenceNumber": {"N": "5"},
        "startingHashKey": {"S": "0"},
        "endingHashKey": {"S": str(2**127)},
    }
    assert item_to_lease(item) == lease
    free_item = lease_to_item(free())
    assert "leaseOwner" not in free_item and "parentShardId" not in free_item


def test_kcl3_attributes_are_read_and_bad_checkpoints_refused() -> None:
    item = lease_to_item(free()) | {
        "throughputKBps": {"N": "1.5"},
        "entityType": {"S": "LEASE"},
        "checkpointOwner": {"S": "old-worker"},
    }
    lease = item_to_lease(item)
    assert (lease.checkpoint_owner, lease.bytes_per_second) == ("old-worker", 1536.0)
    assert lease.records_per_second is None
    assert dataclasses.replace(lease, checkpoint_owner=None, bytes_per_second=None) == free()
    with pytest.raises(InvalidStateError):
        item_to_lease(item | {"checkpoint": {"S": "nonsense"}})
    with pytest.raises(InvalidStateError):
        item_to_lease({"leaseKey": {"S": "x"}, "leaseCounter": {"N": "1"}})


@pytest.mark.usefixtures("aws_env")
def test_take_ends_a_kcl3_graceful_handoff() -> None:
    table = dynamodb_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.put_item(
        TableName="leases",
        Item=lease_to_item(dataclasses.replace(free(), owner="java"))
        | {"checkpointOwner": {"S": "java-old"}},
    )
    lease = table.get_lease(free().shard_id)
    assert lease is not None
    assert table.take(lease, "python") is not None
    item = client.get_item(TableName="leases", Key={"leaseKey": {"S": free().shard_id}})["Item"]
    assert "checkpointOwner" not in item


@pytest.mark.usefixtures("aws_env")
def test_checkpoint_write_removes_pending_checkpoint() -> None:
    table = dynamodb_table()
    table.create_lease(free(pending_checkpoint=CompoundSequenceNumber("7")))
    held = table.take(free(), "worker-a")
    assert held is not None and held.pending_checkpoint == CompoundSequenceNumber("7")
    written = table.checkpoint(held, CompoundSequenceNumber("8"))
    assert written is not None and written.pending_checkpoint is None


@pytest.mark.usefixtures("aws_env")
def test_provisioned_table_gets_the_capacity_asked_for() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = DynamoDBLeaseTable(client, "provisioned")
    assert table.create_if_missing(billing_mode="PROVISIONED", read_capacity=7, write_capacity=3)
    described = client.describe_table(TableName="provisioned")["Table"]
    assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert described["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert not table.create_if_missing()


def _fail_with(code: str, status: int = 400) -> Any:
    """A botocore before-send hook answering every request with a DynamoDB error."""

    def respond(request: Any, **kwargs: Any) -> botocore.awsrequest.AWSResponse:
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})

        class Raw:
            def stream(self, **kwargs: Any) -> Iterator[bytes]:
                yield body.encode()

        return botocore.awsrequest.AWSResponse(
            request.url, status, {"Content-Type": "application/x-amz-json-1.0"}, Raw()
        )

    return respond


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ProvisionedThroughputExceededException", ThrottlingError),
        ("ResourceNotFoundException", InvalidStateError),
        ("InternalServerError", DependencyError),
    ],
)
def test_dynamodb_errors_become_library_errors(code: str, error: type[Exception]) -> None:
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    table = DynamoDBLeaseTable(client, "leases")
    table.create_if_missing()
    table.create_lease(free())
    client.meta.events.register(
        "before-send.dynamodb.*", _fail_with(code, 500 if "Internal" in code else 400)
    )
    with pytest.raises(error):
        table.renew(free())
    with pytest.raises(error):
        table.list_leases()


@pytest.mark.usefixtures("aws_env")
def test_unreachable_dynamodb_is_a_dependency_error() -> None:
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=0.5
        ),
    )
    with pytest.raises(DependencyError):
        DynamoDBLeaseTable(client, "leases").get_lease("x")


@pytest.mark.usefixtures("aws_env")
def test_kcl35_items_that_are_not_leases_are_skipped_by_every_read() -> None:
    table = dynamodb_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    table.create_lease(free())
    for key, entity in (("worker-1", "WORKER_METRIC_STATS"), ("Leader", "LEADER")):
        client.put_item(
            TableName=table.name,
            Item={"leaseKey": {"S": key}, "entityType": {"S": entity}, "lut": {"N": "1"}},
        )
    assert [lease.shard_id for lease in table.list_leases()] == [free().shard_id]
    assert table.get_lease("worker-1") is None
    assert table.get_lease(free().shard_id) == free()


def test_graceful_handoff_keeps_the_owner_checkpointing_until_it_hands_over(
    table: LeaseTable,
) -> None:
    table.create_lease(free())
    owned = table.take(free(), "old")
    assert owned is not None
    requested = table.request_handoff(owned, "new")
    assert requested is not None
    assert (requested.owner, requested.checkpoint_owner) == ("new", "old")
    assert requested.counter == owned.counter  # the owner's renewals keep succeeding
    assert table.request_handoff(owned, "third") is None  # one hand-off at a time
    renewed = table.renew(requested, (2048.0, 10.0))
    assert renewed is not None and renewed.checkpoint_owner == "old"
    assert (renewed.bytes_per_second, renewed.records_per_second) == (2048.0, 10.0)
    checkpointed = table.checkpoint(renewed, CompoundSequenceNumber(SEQ_56))
    assert checkpointed is not None  # the current owner alone may still checkpoint
    impostor = dataclasses.replace(checkpointed, checkpoint_owner=None)  # "new" checkpointing
    assert table.checkpoint(impostor, CompoundSequenceNumber(str(int(SEQ_56) + 1))) is None
    assert table.release(checkpointed)
    handed = table.get_lease(free().shard_id)
    assert handed is not None
    assert (handed.owner, handed.checkpoint_owner) == ("new", None)
    assert handed.counter == checkpointed.counter + 1
    assert handed.checkpoint == CompoundSequenceNumber(SEQ_56)


@pytest.fixture(params=["memory", "dynamodb"])
def members_table(request: pytest.FixtureRequest) -> MembershipTable:
    if request.param == "memory":
        return InMemoryMembershipTable()
    request.getfixturevalue("aws_env")
    table = DynamoDBMembershipTable(boto3.client("dynamodb", region_name="us-east-1"), "l-Workers")
    table.create_if_missing()
    return table


def test_membership_items_round_trip_and_dead_items_go_only_if_unchanged(
    members_table: MembershipTable,
) -> None:
    member = Member("w1", 7, leases=3, bytes_per_second=1.5, records_per_second=2.25,
                    releases=1, created=2, requested=frozenset({"shardId-1", "shardId-2"}))  # fmt: skip
    members_table.put(member)
    members_table.put(Member("w2", 1))
    assert sorted(members_table.members(), key=lambda m: m.worker_id) == [member, Member("w2", 1)]
    assert not members_table.remove("w1", heartbeat=6)  # it beat since: stays
    assert members_table.remove("w1", heartbeat=7)
    assert members_table.remove("w2")  # a graceful leave: unconditional
    assert members_table.members() == []
