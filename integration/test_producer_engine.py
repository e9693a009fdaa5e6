"""KinesisProducer against kinesalite: 100 000 records of mixed sizes on a 4-shard stream.

Every shard is read back with plain boto3 and deaggregated with aws-kinesis-agg (AWS's own
library); every record must arrive exactly once, on the shard whose range holds its hash key,
and, for records put at the first attempt, in the order they were added for their key.
Concurrent PutRecords calls are not ordered against each other (a KPL caveat), so the ordering
runs use one connection; a second run checks exactly-once with many connections.
"""

from __future__ import annotations

import base64
import runpy
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from kinesis_actors._aggregation import hash_key
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer import KinesisProducer

KEYS = 1000
#: Payload sizes cycled through; every 10 000th record is a 300 KB one.
SIZES = (0, 10, 100, 300, 1000, 50)
BIG = 300_000
#: kinesalite never throttles; the per-shard limiter would stretch the run to ~16 s for nothing.
NO_LIMIT = 100_000


def payload(n: int) -> bytes:
    size = BIG if n % 10_000 == 9_999 else SIZES[n % len(SIZES)]
    head = f"{n}:".encode()
    return head + b"." * max(0, size - len(head))


def read_stream(kinesis: Any, stream: str) -> dict[str, list[tuple[int, int, str, bytes]]]:
    """Per shard: (sequence number, sub-sequence number, partition key, data) of every user record."""
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    found: dict[str, list[tuple[int, int, str, bytes]]] = {}
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[tuple[int, int, str, bytes]] = []
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for user in iter_deaggregate_records(page["Records"], data_format="Boto3"):
                k = user["kinesis"]
                data = base64.b64decode(k["data"]) if k.get("aggregated") else k["data"]
                records.append(
                    (
                        int(k["sequenceNumber"]),
                        k.get("subSequenceNumber", 0),
                        k["partitionKey"],
                        data,
                    )
                )
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
        found[shard["ShardId"]] = records
    return found


def produce(stream: str, count: int, **kpl: Any) -> tuple[list[UserRecordResult], float]:
    with KinesisProducer({"RateLimit": NO_LIMIT, **kpl}, stream) as producer:
        started = time.monotonic()
        futures = [
            producer.add_user_record(ProducerEvent(f"key-{n % KEYS}", payload(n)))
            for n in range(count)
        ]
        results = [future.result(120) for future in futures]
        return results, time.monotonic() - started


def check(kinesis: Any, stream: str, results: list[UserRecordResult], *, ordered: bool) -> None:
    ranges = {
        s["ShardId"]: (
            int(s["HashKeyRange"]["StartingHashKey"]),
            int(s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
    }
    seen: dict[int, tuple[str, int, int]] = {}
    for shard_id, records in read_stream(kinesis, stream).items():
        low, high = ranges[shard_id]
        for sequence_number, sub_sequence_number, key, data in records:
            n = int(data.split(b":", 1)[0])
            assert n not in seen, f"record {n} arrived twice"
            assert data == payload(n) and key == f"key-{n % KEYS}"
            assert low <= hash_key(key) <= high, f"record {n} on {shard_id}, outside its range"
            seen[n] = (shard_id, sequence_number, sub_sequence_number)
    assert sorted(seen) == list(range(len(results))), "records lost"
    by_key: dict[int, list[int]] = defaultdict(list)
    for n, result in enumerate(results):
        shard_id, sequence_number, _ = seen[n]
        assert (result.shard_id, int(result.sequence_number or -1)) == (shard_id, sequence_number)
        if len(result.attempts) == 1:
            by_key[n % KEYS].append(n)
    if ordered:
        for numbers in by_key.values():
            positions = [seen[n][1:] for n in numbers]
            assert positions == sorted(positions), "per-key order broken without a retry"


@pytest.mark.parametrize("aggregation", [True, False], ids=["aggregated", "plain"])
def test_100k_records_arrive_once_on_their_shard_in_key_order(
    make_stream: Callable[[int], str], kinesis: Any, aggregation: bool
) -> None:
    stream = make_stream(4)
    results, elapsed = produce(stream, 100_000, AggregationEnabled=aggregation, MaxConnections=1)
    assert all(r.successful for r in results)
    check(kinesis, stream, results, ordered=True)
    print(f"100 000 records, aggregation={aggregation}: {elapsed:.1f} s")


def test_many_connections_still_put_every_record_exactly_once(
    make_stream: Callable[[int], str], kinesis: Any
) -> None:
    stream = make_stream(4)
    results, _ = produce(stream, 30_000, AggregationEnabled=False, MaxConnections=8)
    check(kinesis, stream, results, ordered=False)


def test_the_example_runs_on_kinesalite(
    local_kinesis: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "produce_with_engine.py"
    assert runpy.run_path(str(example))["main"]([]) == 0
    assert "put 20001 user records" in capsys.readouterr().out
