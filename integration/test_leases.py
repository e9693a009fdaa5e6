"""Leases on kinesalite + dynalite: worker processes sharing a stream, Java tables, resharding.

The fleet tests run in order on one 12-shard stream: three workers converge, a fourth steals its
share, one is killed, one stops gracefully, and the workers' own logs show that no two live
workers ever believed they held one shard for longer than the self-fencing window.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import pytest

from integration.lease_fleet import LeaseFleet, wait_until
from integration.lease_worker import worker_conf
from kinesis_actors._leases import (
    DynamoDBLeaseTable,
    HeldLease,
    LeaseCoordinator,
    LeaseEvent,
    LeasesGained,
)
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing._local import LocalKinesis

FAILOVER = 1.5
POLL = 0.25
#: The KCL's taker interval for FAILOVER: (failover + epsilon) * 2.
TAKER_INTERVAL = (FAILOVER + 0.025) * 2
SHARDS = 12
#: Every attribute a KCL 2.x / 3.x lease item may have (kcl-leases.md 1.2), and this library's
#: documented extra (docs/fleet.rst).
KCL_ATTRIBUTES = {
    "leaseKey", "leaseOwner", "leaseCounter", "checkpoint", "checkpointSubSequenceNumber",
    "ownerSwitchesSinceCheckpoint", "parentShardId", "childShardIds", "pendingCheckpoint",
    "pendingCheckpointSubSequenceNumber", "pendingCheckpointState", "startingHashKey",
    "endingHashKey", "throughputKBps", "checkpointOwner", "entityType",
}  # fmt: skip
DOCUMENTED_EXTRAS = {"throughputRecordsPerSec"}


def union(held: dict[str, set[str]]) -> set[str]:
    return set().union(*held.values()) if held else set()


@pytest.fixture(scope="module")
def fleet(local_kinesis: LocalKinesis) -> Iterator[LeaseFleet]:
    kinesis = local_kinesis.kinesis_client()
    stream = f"lease-fleet-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    fleet = LeaseFleet(
        stream, f"{stream}-leases", failover_ms=int(FAILOVER * 1000), poll_ms=int(POLL * 1000)
    )
    try:
        yield fleet
    finally:
        fleet.close()
        kinesis.delete_stream(StreamName=stream)
        local_kinesis.dynamodb_client().delete_table(TableName=fleet.table)
        local_kinesis.dynamodb_client().delete_table(TableName=f"{fleet.table}-Workers")


def table_owners(local_kinesis: LocalKinesis, table: str) -> Counter[str | None]:
    leases = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), table).list_leases()
    return Counter(lease.owner for lease in leases)


def test_three_workers_converge_to_four_leases_each(
    fleet: LeaseFleet, local_kinesis: LocalKinesis
) -> None:
    for worker_id in ("a", "b", "c"):
        fleet.start(worker_id)

    def balanced() -> bool:
        held = fleet.held()
        return sorted(map(len, held.values())) == [4, 4, 4] and len(union(held)) == SHARDS

    wait_until(balanced, timeout=60, what="4/4/4")
    wait_until(
        lambda: table_owners(local_kinesis, fleet.table) == {"a": 4, "b": 4, "c": 4},
        timeout=10,
        what="table agrees",
    )


def test_fourth_worker_gets_its_share_by_stealing(fleet: LeaseFleet) -> None:
    losses_before = sum(1 for w in fleet.live() for e in w.snapshot() if e["event"] == "lost")
    fleet.start("d")
    wait_until(
        lambda: (
            sorted(map(len, fleet.held().values())) == [3, 3, 3, 3]
            and len(union(fleet.held())) == SHARDS
        ),
        timeout=60,
        what="3/3/3/3",
    )
    losses = sum(1 for w in fleet.live() for e in w.snapshot() if e["event"] == "lost")
    assert losses - losses_before >= 3  # no lease was free: each of d's came from a steal


def test_killed_worker_loses_its_leases_within_failover_plus_a_taker_interval(
    fleet: LeaseFleet,
) -> None:
    victim = fleet.workers["d"]
    orphans = victim.held()
    assert orphans
    killed_at = victim.kill()
    taken_at = wait_until(
        lambda: orphans <= union(fleet.held()),
        timeout=FAILOVER + TAKER_INTERVAL + 10,
        what="orphans taken",
    )
    # A late heartbeat makes the others scan; the victim's new counters are back-dated to its last
    # heartbeat (written right after its last renewal), so its leases are taken about failover
    # time after that heartbeat.
    assert taken_at - killed_at <= FAILOVER + TAKER_INTERVAL
    # They had to expire: counted from the victim's last renewal, up to failover / 3 before.
    assert taken_at - killed_at > FAILOVER - FAILOVER / 3
    wait_until(
        lambda: sorted(map(len, fleet.held().values())) == [4, 4, 4], timeout=60, what="4/4/4"
    )


def test_graceful_stop_hands_leases_over_within_two_seconds(fleet: LeaseFleet) -> None:
    leaving = fleet.workers["c"]
    handed = leaving.held()
    assert len(handed) == 4
    leaving.request_stop()
    wait_until(lambda: leaving.first("leave") is not None, timeout=10, what="stopping")
    leave = leaving.first("leave")
    assert leave is not None
    others = [w for w in fleet.live() if w is not leaving]
    taken_at = wait_until(
        lambda: handed <= set().union(*(w.held() for w in others)), timeout=10, what="hand-over"
    )
    assert taken_at - leave["t"] < 2.0
    # The others asked for every lease while c still held them: each was handed over.
    answered = {
        shard
        for event in leaving.snapshot()
        if event["event"] == "lost" and event.get("handoff") and event["t"] >= leave["t"]
        for shard in event["shards"]
    }
    assert answered == handed
    leaving.terminate()
    assert leaving.process.returncode == 0


def test_no_two_live_workers_held_a_lease_beyond_the_fencing_window(fleet: LeaseFleet) -> None:
    # Only steals overlap: the victim learns at its next renewal, failover / 3 later at most.
    # A killed worker's leases expire first; a stopping worker ends before it releases.
    overlaps = fleet.overlaps()
    assert all(overlap.seconds < FAILOVER for overlap in overlaps), overlaps


# -- in-process coordinators -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[LeaseEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: LeaseEvent) -> None:
        with self.lock:
            self.events.append(event)

    def gained(self) -> dict[str, HeldLease]:
        with self.lock:
            return {
                lease.shard_id: lease
                for event in self.events
                if isinstance(event, LeasesGained)
                for lease in event.leases
            }


@pytest.fixture
def coordinator_factory(
    kinesis: KinesisClient, dynamodb: DynamoDBClient
) -> Iterator[Callable[..., tuple[LeaseCoordinator, Recorder]]]:
    started: list[LeaseCoordinator] = []

    def start(stream: str, table: str, **options: Any) -> tuple[LeaseCoordinator, Recorder]:
        conf = worker_conf(stream, table, "python-worker", failover_ms=1000, poll_ms=100, **options)
        recorder = Recorder()
        coordinator = LeaseCoordinator.from_consumer_conf(
            conf, kinesis=kinesis, dynamodb=dynamodb, subscriber=recorder
        )
        coordinator.start()
        started.append(coordinator)
        return coordinator, recorder

    yield start
    for coordinator in started:
        coordinator.stop()


def test_table_written_by_a_java_kcl_application_is_taken_over(
    make_stream: Callable[..., str],
    kinesis: KinesisClient,
    dynamodb: DynamoDBClient,
    coordinator_factory: Callable[..., tuple[LeaseCoordinator, Recorder]],
) -> None:
    stream = make_stream(2)
    table = f"{stream}-java"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    checkpoints: dict[str, str] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        put = kinesis.put_record(
            StreamName=stream,
            Data=b"x",
            PartitionKey="k",
            ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"],
        )
        assert len(put["SequenceNumber"]) == 56
        checkpoints[shard["ShardId"]] = put["SequenceNumber"]
        # The item exactly as the Java KCL 2.x/3.x writes it (its worker has since died).
        dynamodb.put_item(
            TableName=table,
            Item={
                "leaseKey": {"S": shard["ShardId"]},
                "leaseOwner": {"S": "ip-10-0-0-1.ec2.internal:3c1b"},
                "leaseCounter": {"N": "1234"},
                "checkpoint": {"S": put["SequenceNumber"]},
                "checkpointSubSequenceNumber": {"N": "2"},
                "ownerSwitchesSinceCheckpoint": {"N": "0"},
                "startingHashKey": {"S": shard["HashKeyRange"]["StartingHashKey"]},
                "endingHashKey": {"S": shard["HashKeyRange"]["EndingHashKey"]},
                "throughputKBps": {"N": "0.5"},
            },
        )
    # KCL 3.5's single-table format keeps worker metrics in the lease table: not a lease.
    metrics_item = {
        "leaseKey": {"S": "ip-10-0-0-1.ec2.internal:3c1b"},
        "entityType": {"S": "WORKER_METRIC_STATS"},
        "lut": {"N": "1700000000"},
    }
    dynamodb.put_item(TableName=table, Item=metrics_item)
    with pytest.raises(botocore.exceptions.ClientError, match="38 significant digits"):
        dynamodb.put_item(
            TableName=table, Item={"leaseKey": {"S": "n"}, "checkpoint": {"N": "9" * 56}}
        )

    coordinator, recorder = coordinator_factory(stream, table)
    wait_until(lambda: len(recorder.gained()) == 2, timeout=15, what="Java leases taken")
    for shard_id, held in recorder.gained().items():
        assert held.checkpoint == CompoundSequenceNumber(checkpoints[shard_id], 2)

    shard_id, held = next(iter(recorder.gained().items()))
    later = kinesis.put_record(
        StreamName=stream, Data=b"y", PartitionKey="k", ExplicitHashKey=str(held.starting_hash_key)
    )
    coordinator.checkpoint(
        shard_id, CompoundSequenceNumber(later["SequenceNumber"]), held.concurrency_token
    )
    item = dynamodb.get_item(TableName=table, Key={"leaseKey": {"S": shard_id}})["Item"]
    assert item["checkpoint"] == {"S": later["SequenceNumber"]}
    assert item["checkpointSubSequenceNumber"] == {"N": "0"}
    assert item["leaseOwner"] == {"S": "python-worker"}
    assert "throughputKBps" in item  # the KCL 3.x attribute (this worker writes its own rate)
    assert int(item["leaseCounter"]["N"]) > 1234

    time.sleep(1.0)  # renewals, heartbeats and taker runs go on
    coordinator.stop()
    items = dynamodb.scan(TableName=table)["Items"]
    assert metrics_item in items  # never taken, never changed
    for lease_item in items:
        if lease_item != metrics_item:
            assert set(lease_item) <= KCL_ATTRIBUTES | DOCUMENTED_EXTRAS, set(lease_item)
    assert len(items) == 3  # no membership item in the lease table: it has its own
    members = dynamodb.scan(TableName=f"{table}-Workers")["Items"]
    assert members == []  # the worker left when it stopped


def test_split_and_merge_give_children_leases_after_their_parents(
    make_stream: Callable[..., str],
    kinesis: KinesisClient,
    coordinator_factory: Callable[..., tuple[LeaseCoordinator, Recorder]],
) -> None:
    stream = make_stream(1)
    coordinator, recorder = coordinator_factory(stream, f"{stream}-leases", shard_sync_ms=300)
    table = coordinator.table

    def held(shard_id: str) -> HeldLease:
        wait_until(
            lambda: shard_id in {h.shard_id for h in coordinator.held_leases()},
            timeout=10,
            what=f"{shard_id} held",
        )
        return next(h for h in coordinator.held_leases() if h.shard_id == shard_id)

    def shard_ids() -> list[str]:
        return sorted(s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"])

    (root,) = shard_ids()
    parent = held(root)
    kinesis.split_shard(StreamName=stream, ShardToSplit=root, NewStartingHashKey=str(2**127))
    wait_until(lambda: len(shard_ids()) == 3, timeout=10, what="split done")
    left, right = sorted(set(shard_ids()) - {root})
    assert coordinator.shard_ended(root, parent.concurrency_token) == (left, right)
    root_lease = table.get_lease(root)
    assert root_lease is not None and root_lease.child_shard_ids == (left, right)
    for child in (left, right):
        lease = table.get_lease(child)
        assert lease is not None
        assert (lease.checkpoint, lease.parent_shard_ids) == (Sentinel.TRIM_HORIZON, (root,))
        assert coordinator.parents_finished(child)

    left_held, right_held = held(left), held(right)
    kinesis.merge_shards(StreamName=stream, ShardToMerge=left, AdjacentShardToMerge=right)
    wait_until(lambda: len(shard_ids()) == 4, timeout=10, what="merge done")
    (merged,) = set(shard_ids()) - {root, left, right}
    assert coordinator.shard_ended(left, left_held.concurrency_token) == (merged,)
    merged_lease = table.get_lease(merged)
    assert merged_lease is not None and merged_lease.parent_shard_ids == (left, right)
    assert not coordinator.parents_finished(merged)  # the right parent is not finished
    coordinator.shard_ended(right, right_held.concurrency_token)
    assert coordinator.parents_finished(merged)

    # Cleanup: the root goes once both children finished; the children once the merge child
    # checkpointed past TRIM_HORIZON.
    wait_until(lambda: table.get_lease(root) is None, timeout=10, what="root cleaned up")
    assert table.get_lease(left) is not None
    merged_held = held(merged)
    put = kinesis.put_record(StreamName=stream, Data=b"z", PartitionKey="k")
    coordinator.checkpoint(
        merged, CompoundSequenceNumber(put["SequenceNumber"]), merged_held.concurrency_token
    )
    wait_until(
        lambda: {lease.shard_id for lease in table.list_leases()} == {merged},
        timeout=10,
        what="parents cleaned up",
    )
    assert {root, left, right, merged} <= set(recorder.gained())


def test_worker_restarted_with_the_same_id_resumes_at_once(
    make_stream: Callable[..., str],
    coordinator_factory: Callable[..., tuple[LeaseCoordinator, Recorder]],
) -> None:
    stream = make_stream(3)
    first, _ = coordinator_factory(stream, f"{stream}-leases")
    wait_until(lambda: len(first.held_leases()) == 3, timeout=10, what="all held")
    first.stop(release=False)  # as after a crash: the table still names this worker
    second, recorder = coordinator_factory(stream, f"{stream}-leases")
    assert len(recorder.gained()) == 3  # during start(), without waiting for expiry
    assert len(second.held_leases()) == 3
