"""A fleet of consumer processes on kinesalite + dynalite: fair share, hand-offs, load (issue 16).

Real `KinesisConsumer` processes (`consumer_worker.py`) with failover 1.5 s, whose own logs say
which shards each believed it held when (`LeaseFleet.overlaps`) and every record it processed.
The first three tests share one 12-shard stream: six workers started a second apart, then a
seventh joining while records flow, then one leaving gracefully while records flow.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from integration.lease_fleet import CONSUMER_WORKER, LeaseFleet, WorkerProcess, wait_until
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._models import Sentinel

if TYPE_CHECKING:
    from kinesis_actors.testing._local import LocalKinesis

FAILOVER = 1.5
TAKER_INTERVAL = (FAILOVER + 0.025) * 2
SHARDS = 12


def union(held: dict[str, set[str]]) -> set[str]:
    return set().union(*held.values()) if held else set()


def records(worker: WorkerProcess) -> list[dict[str, Any]]:
    return [event for event in worker.snapshot() if event["event"] == "record"]


def make_fleet(local: LocalKinesis, shards: int) -> tuple[LeaseFleet, list[str]]:
    kinesis = local.kinesis_client()
    stream = f"fleet-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    hash_keys = [
        s["HashKeyRange"]["StartingHashKey"]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
    ]
    fleet = LeaseFleet(
        stream,
        f"{stream}-leases",
        failover_ms=int(FAILOVER * 1000),
        script=CONSUMER_WORKER,
        application="fleet-tests",
    )
    return fleet, hash_keys


def close_fleet(local: LocalKinesis, fleet: LeaseFleet) -> None:
    fleet.close()
    local.kinesis_client().delete_stream(StreamName=fleet.stream)
    for table in (fleet.table, f"{fleet.table}-Workers"):
        local.dynamodb_client().delete_table(TableName=table)


class Writer:
    """Puts numbered records to chosen shards (by explicit hash key) until stopped."""

    def __init__(self, local: LocalKinesis, stream: str, per_round: dict[str, int]) -> None:
        self._kinesis = local.kinesis_client()
        self._stream = stream
        self._per_round = per_round
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(0.1) and rounds < 3000:
            rounds += 1
            batch = [
                {"Data": f"{self.sent + i}".encode(), "PartitionKey": "k", "ExplicitHashKey": key}
                for i, key in enumerate(k for k, n in self._per_round.items() for _ in range(n))
            ]
            self._kinesis.put_records(StreamName=self._stream, Records=batch)
            self.sent += len(batch)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.sent

    def stop_after(self, seconds: float) -> int:
        time.sleep(seconds)
        return self.stop()


@pytest.fixture(scope="module")
def fleet12(local_kinesis: LocalKinesis) -> Iterator[tuple[LeaseFleet, list[str]]]:
    fleet, hash_keys = make_fleet(local_kinesis, SHARDS)
    try:
        yield fleet, hash_keys
    finally:
        close_fleet(local_kinesis, fleet)


def test_six_workers_started_a_second_apart_hold_two_leases_each(
    fleet12: tuple[LeaseFleet, list[str]],
) -> None:
    fleet, _ = fleet12
    for n in range(1, 7):
        worker = fleet.start(f"w{n}")
        wait_until(lambda w=worker: w.first("started") is not None, 30, f"w{n} started")
        if n < 6:
            time.sleep(1.0)
    last_start = fleet.workers["w6"].first("started")
    assert last_start is not None

    def balanced() -> bool:
        held = fleet.held()
        return sorted(map(len, held.values())) == [2] * 6 and len(union(held)) == SHARDS

    balanced_at = wait_until(balanced, 60, "2 leases each")
    assert balanced_at - last_start["t"] <= 2 * TAKER_INTERVAL
    assert fleet.overlaps() == []  # no shard was ever held by two workers


def test_seventh_worker_gets_leases_by_hand_off_and_nothing_is_processed_twice(
    fleet12: tuple[LeaseFleet, list[str]], local_kinesis: LocalKinesis
) -> None:
    fleet, hash_keys = fleet12
    writer = Writer(local_kinesis, fleet.stream, dict.fromkeys(hash_keys, 1))
    before = {w.worker_id: w.held() for w in fleet.live()}
    newcomer = fleet.start("w7")
    wait_until(lambda: len(newcomer.held()) >= 1, 60, "w7 holds its share")
    time.sleep(1.0)  # records keep flowing after the move
    sent = writer.stop()
    seen = lambda: sum(len(records(w)) for w in fleet.live())  # noqa: E731
    wait_until(lambda: seen() >= sent, 60, "every record processed")
    after = {w.worker_id: w.held() for w in fleet.live()}
    moves = {
        shard: (old, new)
        for old, shards in before.items()
        for shard in shards
        for new, now_held in after.items()
        if shard in now_held and new != old
    }
    assert any(new == "w7" for _, new in moves.values())
    table = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), fleet.table)
    for shard, (old, new) in moves.items():
        handoffs = [
            event
            for event in fleet.workers[old].snapshot()
            if event["event"] == "lost" and event.get("handoff") and event["shards"] == [shard]
        ]
        assert len(handoffs) == 1, (shard, old)  # moved by a hand-off, once
        old_records = [e for e in records(fleet.workers[old]) if e["shard"] == shard]
        new_records = [e for e in records(fleet.workers[new]) if e["shard"] == shard]
        assert old_records and new_records
        assert int(new_records[0]["seq"]) > int(old_records[-1]["seq"])  # resumed after the last
        lease = table.get_lease(shard)
        assert lease is not None and lease.owner == new and lease.checkpoint_owner is None
    processed = Counter(
        (event["shard"], event["seq"], event["sub"]) for w in fleet.live() for event in records(w)
    )
    assert [key for key, count in processed.items() if count > 1] == []  # no duplicates
    assert fleet.overlaps() == []


def test_a_graceful_leave_hands_its_leases_over_and_nothing_is_processed_twice(
    fleet12: tuple[LeaseFleet, list[str]], local_kinesis: LocalKinesis
) -> None:
    fleet, hash_keys = fleet12
    table = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), fleet.table)

    def settled() -> bool:  # no hand-off under way, and every worker's log agrees with the table
        leases = table.list_leases()
        owners = Counter(lease.owner for lease in leases)
        return all(lease.checkpoint_owner is None for lease in leases) and all(
            len(w.held()) == owners[w.worker_id] for w in fleet.live()
        )

    wait_until(settled, 60, "the fleet settled")
    leaving = fleet.workers["w1"]
    shards = leaving.held()
    assert shards
    total = lambda: sum(len(records(w)) for w in fleet.workers.values())  # noqa: E731
    before = total()
    started = time.time()
    # Records flow to every shard, and processing keeps up when the stop begins (a batch in
    # flight would be aborted: its unacknowledged records are for the next owner).
    sent = Writer(local_kinesis, fleet.stream, dict.fromkeys(hash_keys, 1)).stop_after(1.0)
    wait_until(lambda: total() - before >= sent, 60, "every record processed")
    requested = time.time()
    leaving.request_stop()  # the others ask for its leases while it still processes
    others = [w for w in fleet.live() if w is not leaving]
    wait_until(lambda: shards <= set().union(*(w.held() for w in others)), 30, "handed over")
    sent += Writer(local_kinesis, fleet.stream, dict.fromkeys(hash_keys, 1)).stop_after(1.0)
    wait_until(lambda: total() - before >= sent, 60, "every record processed")
    leaving.terminate()
    for shard in shards:
        (new,) = [w for w in others if shard in w.held()]
        handoffs = [
            event
            for event in leaving.snapshot()
            if event["event"] == "lost" and event.get("handoff") and event["shards"] == [shard]
            and event["t"] >= requested
        ]  # fmt: skip
        assert len(handoffs) == 1, shard  # moved by a hand-off: final checkpoint, then release
        old_records = [e for e in records(leaving) if e["shard"] == shard]
        new_records = [e for e in records(new) if e["shard"] == shard and e["t"] >= requested]
        assert old_records and new_records
        assert int(new_records[0]["seq"]) > int(old_records[-1]["seq"])  # resumed after the last
        lease = table.get_lease(shard)
        assert lease is not None and lease.owner == new.worker_id and lease.checkpoint_owner is None
    everything = [event for w in fleet.workers.values() for event in records(w)]
    processed = Counter((event["shard"], event["seq"], event["sub"]) for event in everything)
    during = {(e["shard"], e["seq"], e["sub"]) for e in everything if e["t"] >= started}
    assert [key for key in during if processed[key] > 1] == []  # no duplicates


def test_hot_shard_owner_holds_fewer_leases(local_kinesis: LocalKinesis) -> None:
    fleet, hash_keys = make_fleet(local_kinesis, 8)
    writer: Writer | None = None
    try:
        for n in range(4):
            fleet.start(f"h{n}")
        wait_until(
            lambda: sorted(map(len, fleet.held().values())) == [2, 2, 2, 2], 60, "2 leases each"
        )
        hot = hash_keys[0]
        writer = Writer(
            local_kinesis, fleet.stream, {key: 10 if key == hot else 1 for key in hash_keys}
        )
        hot_shard = "shardId-000000000000"

        def hot_owner_has_fewer() -> bool:
            held = fleet.held()
            owner = [w for w, shards in held.items() if hot_shard in shards]
            others = [len(s) for w, s in held.items() if w not in owner]
            return (
                len(owner) == 1
                and len(union(held)) == 8
                and all(len(held[owner[0]]) < count for count in others)
            )

        wait_until(hot_owner_has_fewer, 90, "the hot shard's owner holds fewer leases")
    finally:
        if writer is not None:
            writer.stop()
        close_fleet(local_kinesis, fleet)


def test_finished_leases_after_a_split_count_for_nobody(local_kinesis: LocalKinesis) -> None:
    fleet, _ = make_fleet(local_kinesis, 3)
    kinesis = local_kinesis.kinesis_client()
    table = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), fleet.table)
    try:
        fleet.start("s1")
        fleet.start("s2")
        wait_until(lambda: len(union(fleet.held())) == 3, 60, "3 leases held")
        kinesis.split_shard(
            StreamName=fleet.stream,
            ShardToSplit="shardId-000000000000",
            NewStartingHashKey=str(2**126),
        )

        def open_counts() -> list[int]:
            leases = table.list_leases()
            finished = {lease.shard_id for lease in leases if lease.finished}
            if len(leases) != 5 or len(finished) != 1:
                return []
            return sorted(len(s - finished) for s in fleet.held().values())

        # 4 open leases (2 children + 2 untouched) over 2 workers: 2 each, whoever holds the
        # finished parent (had it counted, 5 leases would make 3 + 2 look balanced).
        wait_until(lambda: open_counts() == [2, 2], 90, "2 open leases each")
        parent = table.get_lease("shardId-000000000000")
        assert parent is not None and parent.checkpoint == Sentinel.SHARD_END
    finally:
        close_fleet(local_kinesis, fleet)
