"""Shard sync: lease planning over split/merge topologies, child leases, cleanup."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from kinesis_actors._errors import DependencyError, InvalidStateError
from kinesis_actors._leases import InMemoryLeaseTable, Lease, ShardInfo, ShardSync, plan_new_leases
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

TOP = 2**128 - 1


def sid(number: int) -> str:
    return f"shardId-{number:012d}"


def shard(number: int, *parents: int, closed: bool = False) -> dict[str, Any]:
    """One ListShards entry; hash ranges are irrelevant to sync, so every shard gets [0, TOP]."""
    entry: dict[str, Any] = {
        "ShardId": sid(number),
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(TOP)},
        "SequenceNumberRange": {"StartingSequenceNumber": "1"},
    }
    if parents:
        entry["ParentShardId"] = sid(parents[0])
    if len(parents) > 1:
        entry["AdjacentParentShardId"] = sid(parents[1])
    if closed:
        entry["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
    return entry


def lease(number: int, checkpoint: Any = Sentinel.TRIM_HORIZON, *parents: int) -> Lease:
    return Lease(sid(number), None, 0, checkpoint, parent_shard_ids=tuple(sid(p) for p in parents))


def plan(
    shards: list[dict[str, Any]], leases: list[Lease], position: Sentinel
) -> dict[int, Sentinel]:
    planned = plan_new_leases([ShardInfo.from_list_shards(s) for s in shards], leases, position)
    return {int(new.shard_id.rsplit("-", 1)[1]): new.checkpoint for new in planned}


class FakeKinesis:
    """ListShards over a fixed listing, ``page_size`` shards per page."""

    def __init__(self, shards: list[dict[str, Any]], page_size: int = 1000) -> None:
        self.shards = shards
        self.page_size = page_size
        self.calls: list[dict[str, Any]] = []
        self.failures: list[Exception] = []

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.failures:
            raise self.failures.pop(0)
        start = int(kwargs.get("NextToken", 0))
        if "NextToken" in kwargs:
            assert "StreamName" not in kwargs  # rejected by AWS and kinesalite alike
        page = self.shards[start : start + self.page_size]
        response: dict[str, Any] = {"Shards": page}
        if start + self.page_size < len(self.shards):
            response["NextToken"] = str(start + self.page_size)
        return response


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "ListShards")


# -- planning ------------------------------------------------------------------------------------

SPLIT = [shard(0, closed=True), shard(1, 0), shard(2, 0), shard(3)]
MERGE = [shard(0, closed=True), shard(1, closed=True), shard(2, 0, 1)]


def test_new_table_gets_a_lease_per_open_shard_at_latest() -> None:
    assert plan(SPLIT, [], Sentinel.LATEST) == {
        1: Sentinel.LATEST,
        2: Sentinel.LATEST,
        3: Sentinel.LATEST,
    }
    assert plan(MERGE, [], Sentinel.LATEST) == {2: Sentinel.LATEST}


@pytest.mark.parametrize("position", [Sentinel.TRIM_HORIZON, Sentinel.AT_TIMESTAMP])
def test_new_table_starts_at_the_oldest_shards(position: Sentinel) -> None:
    assert plan(SPLIT, [], position) == {0: position, 3: position}
    assert plan(MERGE, [], position) == {0: position, 1: position}


def test_children_come_later_from_their_parents() -> None:
    leases = [lease(0), lease(3)]
    assert plan(SPLIT, leases, Sentinel.TRIM_HORIZON) == {}
    assert plan(MERGE, [lease(0), lease(1)], Sentinel.LATEST) == {}


def test_split_children_of_a_finished_parent_are_repaired() -> None:
    """A crash between the parent's SHARD_END checkpoint and creating its children."""
    leases = [lease(0, Sentinel.SHARD_END), lease(3)]
    assert plan(SPLIT, leases, Sentinel.LATEST) == {
        1: Sentinel.TRIM_HORIZON,
        2: Sentinel.TRIM_HORIZON,
    }


def test_merge_child_waits_until_both_parents_have_leases() -> None:
    finished_one = [lease(0, Sentinel.SHARD_END)]
    # The other parent gets a lease first (a new lineage), and with it the child.
    assert plan(MERGE, finished_one, Sentinel.TRIM_HORIZON) == {
        1: Sentinel.TRIM_HORIZON,
        2: Sentinel.TRIM_HORIZON,
    }
    assert plan(MERGE, [lease(0), lease(1)], Sentinel.TRIM_HORIZON) == {}
    assert plan(MERGE, [lease(0, Sentinel.SHARD_END), lease(1)], Sentinel.LATEST) == {
        2: Sentinel.TRIM_HORIZON
    }


def test_kcl_worked_example() -> None:
    """HierarchicalShardSyncer's javadoc: 0..5 -> 6(0,1) 7(2,3) 4 5 -> 8(6,7) 4 9(5) 10(5)."""
    shards = [shard(n, closed=True) for n in (0, 1, 2, 3)]
    shards += [shard(4), shard(5, closed=True), shard(6, 0, 1, closed=True)]
    shards += [shard(7, 2, 3, closed=True), shard(8, 6, 7), shard(9, 5), shard(10, 5)]
    existing = [lease(4), lease(5), lease(7, Sentinel.TRIM_HORIZON, 2, 3)]
    assert plan(shards, existing, Sentinel.LATEST) == {6: Sentinel.LATEST}
    assert plan(shards, existing, Sentinel.TRIM_HORIZON) == {
        0: Sentinel.TRIM_HORIZON,
        1: Sentinel.TRIM_HORIZON,
    }
    assert plan(shards, existing, Sentinel.AT_TIMESTAMP) == {
        0: Sentinel.AT_TIMESTAMP,
        1: Sentinel.AT_TIMESTAMP,
    }


def test_parents_are_created_before_children() -> None:
    shards = [shard(0, closed=True), shard(1, 0, closed=True), shard(2, 1), shard(3, 1)]
    planned = plan_new_leases(
        [ShardInfo.from_list_shards(s) for s in shards],
        [lease(0, Sentinel.SHARD_END)],
        Sentinel.TRIM_HORIZON,
    )
    assert [new.shard_id for new in planned] == [sid(1)]
    with_grandchildren = plan_new_leases(
        [ShardInfo.from_list_shards(s) for s in shards], [], Sentinel.TRIM_HORIZON
    )
    assert [new.shard_id for new in with_grandchildren] == [sid(0)]


def test_expired_parent_still_leased_keeps_the_lineage() -> None:
    """The parent aged out of ListShards but its finished lease remains: no fresh start."""
    shards = [shard(1, 0), shard(2, 0)]
    assert plan(shards, [lease(0, Sentinel.SHARD_END)], Sentinel.LATEST) == {
        1: Sentinel.TRIM_HORIZON,
        2: Sentinel.TRIM_HORIZON,
    }


def test_open_child_of_an_open_parent_waits_for_it() -> None:
    """ListShards raced a split: the parent is still listed as open."""
    shards = [shard(0), shard(1, 0), shard(2, 0)]
    assert plan(shards, [], Sentinel.LATEST) == {0: Sentinel.LATEST}


def test_new_lease_carries_parents_and_hash_range() -> None:
    info = ShardInfo.from_list_shards(shard(2, 0, 1))
    new = info.new_lease(Sentinel.TRIM_HORIZON)
    assert new.parent_shard_ids == (sid(0), sid(1))
    assert (new.starting_hash_key, new.ending_hash_key) == (0, TOP)
    assert (new.owner, new.counter) == (None, 0)


# -- ShardSync against a table ---------------------------------------------------------------


def sync_for(
    shards: list[dict[str, Any]], table: InMemoryLeaseTable, **kwargs: Any
) -> tuple[ShardSync, FakeKinesis]:
    kinesis = FakeKinesis(shards, page_size=2)
    kwargs.setdefault("list_shards_backoff", 0.0)
    return ShardSync(table, kinesis, "stream", **kwargs), kinesis


def test_sync_lists_every_page_and_creates_leases() -> None:
    table = InMemoryLeaseTable()
    sync, kinesis = sync_for(SPLIT, table, initial_position=Sentinel.LATEST)
    assert sync.sync() == [sid(3), sid(1), sid(2)]  # by depth
    assert kinesis.calls == [{"StreamName": "stream"}, {"NextToken": "2"}]
    assert sync.sync() == []


def test_list_shards_retries_then_gives_up() -> None:
    sync, kinesis = sync_for(SPLIT, InMemoryLeaseTable(), list_shards_attempts=3)
    kinesis.failures = [client_error("LimitExceededException")] * 2
    assert len(sync.list_shards()) == 4
    kinesis.failures = [client_error("LimitExceededException")] * 3
    with pytest.raises(DependencyError):
        sync.list_shards()
    kinesis.failures = [client_error("ResourceNotFoundException")]
    with pytest.raises(InvalidStateError):
        sync.list_shards()


def test_children_from_list_shards() -> None:
    table = InMemoryLeaseTable()
    sync, _ = sync_for(SPLIT, table)
    table.put(lease(0, Sentinel.SHARD_END))
    parent = table.get_lease(sid(0))
    assert parent is not None
    assert sync.create_children(parent) == (sid(1), sid(2))
    child = table.get_lease(sid(1))
    assert child is not None
    assert (child.checkpoint, child.parent_shard_ids) == (Sentinel.TRIM_HORIZON, (sid(0),))
    assert table.get_lease(sid(0)).child_shard_ids == (sid(1), sid(2))
    assert sync.create_children(parent) == (sid(1), sid(2))  # idempotent


def test_children_from_child_shards_need_no_listing() -> None:
    table = InMemoryLeaseTable()
    sync, kinesis = sync_for(SPLIT, table)
    table.put(lease(0, Sentinel.SHARD_END))
    child_shards = [
        {
            "ShardId": sid(7),
            "ParentShards": [sid(0)],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "5"},
        },
    ]
    assert sync.create_children(lease(0, Sentinel.SHARD_END), child_shards) == (sid(7),)
    assert kinesis.calls == []
    child = table.get_lease(sid(7))
    assert child is not None and child.ending_hash_key == 5


def test_merge_child_is_created_once_both_parents_have_leases() -> None:
    table = InMemoryLeaseTable()
    sync, _ = sync_for(MERGE, table, initial_position=Sentinel.LATEST)
    table.put(lease(0, Sentinel.SHARD_END))
    table.put(lease(1))
    assert sync.create_children(lease(0, Sentinel.SHARD_END)) == (sid(2),)
    assert table.get_lease(sid(2)) is not None


def test_merge_child_with_an_unleased_parent_leases_that_parent_first() -> None:
    table = InMemoryLeaseTable()
    sync, _ = sync_for(MERGE, table, initial_position=Sentinel.TRIM_HORIZON)
    table.put(lease(0, Sentinel.SHARD_END))
    sync.create_children(lease(0, Sentinel.SHARD_END))
    other_parent = table.get_lease(sid(1))
    assert other_parent is not None and other_parent.checkpoint == Sentinel.TRIM_HORIZON
    child = table.get_lease(sid(2))
    assert child is not None and child.parent_shard_ids == (sid(0), sid(1))


# -- cleanup ---------------------------------------------------------------------------------


def test_finished_parent_is_deleted_once_children_checkpointed() -> None:
    table = InMemoryLeaseTable()
    sync, _ = sync_for(SPLIT, table)
    table.put(lease(0, Sentinel.SHARD_END))
    table.put(lease(1, CompoundSequenceNumber("5"), 0))
    table.put(lease(2, Sentinel.TRIM_HORIZON, 0))
    table.put(lease(3))
    sync.sync()
    parent = table.get_lease(sid(0))
    assert parent is not None and parent.child_shard_ids == (sid(1), sid(2))  # written back
    table.put(lease(2, Sentinel.SHARD_END, 0))
    sync.sync()
    assert table.get_lease(sid(0)) is None


def test_parent_stays_while_its_own_parent_lease_exists() -> None:
    table = InMemoryLeaseTable()
    shards = [shard(0, closed=True), shard(1, 0, closed=True), shard(2, 1)]
    sync, _ = sync_for(shards, table)
    table.put(lease(0, Sentinel.SHARD_END))
    table.put(lease(1, Sentinel.SHARD_END, 0))
    table.put(lease(2, CompoundSequenceNumber("5"), 1))
    sync.sync()
    assert table.get_lease(sid(1)) is not None  # 0 still there
    assert table.get_lease(sid(0)) is None
    sync.sync()
    assert table.get_lease(sid(1)) is None


def test_cleanup_can_be_turned_off() -> None:
    table = InMemoryLeaseTable()
    sync, _ = sync_for(SPLIT, table, cleanup=False)
    table.put(lease(0, Sentinel.SHARD_END))
    table.put(lease(1, CompoundSequenceNumber("5"), 0))
    table.put(lease(2, CompoundSequenceNumber("5"), 0))
    sync.sync()
    assert table.get_lease(sid(0)) is not None
