"""Shard prediction: lookups, ListShards pagination, closed shards, refresh and backoff rules."""

from __future__ import annotations

from typing import Any

import pytest

from kinesis_actors._aggregation import MAX_HASH_KEY
from kinesis_actors._producer.shard_map import ShardMap, ShardMapState, list_shards, shard_number
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis


def shard(shard_id: str, start: int, end: int, *, closed: bool = False) -> dict[str, Any]:
    numbers: dict[str, str] = {"StartingSequenceNumber": "1"}
    if closed:
        numbers["EndingSequenceNumber"] = "9"
    return {
        "ShardId": shard_id,
        "HashKeyRange": {"StartingHashKey": str(start), "EndingHashKey": str(end)},
        "SequenceNumberRange": numbers,
    }


HALF = MAX_HASH_KEY // 2


def ready_map(*shards: dict[str, Any], now: float = 0.0) -> ShardMap:
    shard_map = ShardMap()
    shard_map.begin_update()
    shard_map.update(shards, now)
    return shard_map


def test_lookup_finds_the_shard_holding_a_hash_key_at_every_boundary() -> None:
    shard_map = ready_map(shard("shardId-2", HALF + 1, MAX_HASH_KEY), shard("shardId-1", 0, HALF))
    assert shard_map.shard_for(0) == "shardId-1"
    assert shard_map.shard_for(HALF) == "shardId-1"
    assert shard_map.shard_for(HALF + 1) == "shardId-2"
    assert shard_map.shard_for(MAX_HASH_KEY) == "shardId-2"
    assert shard_map.state is ShardMapState.READY


def test_there_is_no_prediction_before_the_first_map() -> None:
    shard_map = ShardMap()
    assert shard_map.shard_for(5) is None
    assert not shard_map.settled
    assert shard_map.refresh_due(0.0)


def test_closed_shards_are_not_predicted_but_their_ranges_are_known() -> None:
    shard_map = ready_map(
        shard("shardId-000000000000", 0, MAX_HASH_KEY, closed=True),
        shard("shardId-000000000001", 0, HALF),
        shard("shardId-000000000002", HALF + 1, MAX_HASH_KEY),
    )
    assert shard_map.shard_for(1) == "shardId-000000000001"
    assert shard_map.hash_range("shardId-000000000000", 1.0) == (0, MAX_HASH_KEY)
    assert shard_map.hash_range("shardId-000000000009", 1.0) is None


def test_shards_that_closed_keep_their_range_for_the_closed_shard_ttl() -> None:
    shard_map = ready_map(shard("shardId-000000000000", 0, MAX_HASH_KEY))
    shard_map.begin_update()
    shard_map.update([shard("shardId-000000000001", 0, MAX_HASH_KEY)], 10.0)
    assert shard_map.hash_range("shardId-000000000000", 69.0) == (0, MAX_HASH_KEY)
    assert shard_map.hash_range("shardId-000000000000", 71.0) is None
    assert shard_map.hash_range("shardId-000000000001", 1000.0) == (0, MAX_HASH_KEY)


def test_list_shards_follows_next_token_without_repeating_the_stream_name() -> None:
    kinesis = InMemoryKinesis(7, page_size=3)
    calls: list[dict[str, Any]] = []

    class Recording:
        def list_shards(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return kinesis.list_shards(**kwargs)

    shards = list_shards(Recording(), "stream")
    assert [s["ShardId"] for s in shards] == [f"shardId-{n:012d}" for n in range(7)]
    assert calls[0] == {
        "StreamName": "stream",
        "ShardFilter": {"Type": "AT_LATEST"},
        "MaxResults": 1000,
    }
    assert calls[1:] == [
        {"NextToken": "3", "MaxResults": 1000},
        {"NextToken": "6", "MaxResults": 1000},
    ]


def test_failed_updates_back_off_from_1_s_by_1_5x_up_to_30_s() -> None:
    shard_map = ShardMap()
    backoffs = []
    now = 0.0
    for _ in range(12):
        assert shard_map.refresh_due(now)
        shard_map.begin_update()
        assert not shard_map.refresh_due(now)  # one update at a time
        backoffs.append(shard_map.update_failed(now))
        assert shard_map.state is ShardMapState.INVALID and shard_map.settled
        assert not shard_map.refresh_due(now + backoffs[-1] - 0.01)
        assert shard_map.next_refresh() == now + backoffs[-1]
        now += backoffs[-1]
    assert backoffs[:4] == [1.0, 1.5, 2.25, 3.375]
    assert backoffs[-1] == 30.0
    shard_map.begin_update()
    shard_map.update([shard("shardId-1", 0, MAX_HASH_KEY)], now)
    shard_map.begin_update()
    assert shard_map.update_failed(now) == 1.0  # success resets the backoff


def test_a_failed_update_drops_the_prediction() -> None:
    shard_map = ready_map(shard("shardId-1", 0, MAX_HASH_KEY))
    shard_map.begin_update()
    assert shard_map.shard_for(7) == "shardId-1"  # the old map serves during an update
    shard_map.update_failed(5.0)
    assert shard_map.shard_for(7) is None


@pytest.mark.parametrize(
    ("seen_at", "predicted", "refresh"),
    [
        (11.0, "shardId-1", True),  # seen after the update, predicted shard still open
        (11.0, None, True),
        (9.0, "shardId-1", False),  # the map is newer than the observation
        (11.0, "shardId-7", False),  # the predicted shard already left the map
    ],
)
def test_invalidate_asks_for_a_refresh_only_when_it_can_help(
    seen_at: float, predicted: str | None, refresh: bool
) -> None:
    shard_map = ready_map(shard("shardId-1", 0, MAX_HASH_KEY), now=10.0)
    assert not shard_map.refresh_due(20.0)
    assert shard_map.invalidate(seen_at, predicted) is refresh
    assert shard_map.refresh_due(20.0) is refresh


def test_invalidate_is_ignored_while_an_update_runs() -> None:
    shard_map = ready_map(shard("shardId-1", 0, MAX_HASH_KEY), now=10.0)
    shard_map.invalidate(11.0, "shardId-1")
    shard_map.begin_update()
    assert not shard_map.invalidate(12.0, "shardId-1")
    assert not shard_map.refresh_due(12.0)


def test_shard_number_orders_children_after_parents() -> None:
    assert shard_number("shardId-000000000010") > shard_number("shardId-000000000009")
