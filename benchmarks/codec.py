"""Aggregation codec throughput, ours against aws-kinesis-agg, in one process on the same records.

Run ``python benchmarks/codec.py``; ``run()`` returns the numbers for other benchmark scripts.
Encoding includes the per-record "is the aggregate full?" decision, as a producer makes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kinesis_actors._aggregation import MAX_HASH_KEY, AggregateBuilder, deaggregate

__all__ = ["main", "run"]

Record = tuple[str, str | None, bytes]


def _records(count: int, payload_size: int, seed: int) -> list[Record]:
    rnd = random.Random(seed)
    return [(f"partition-{i:08d}", None, rnd.randbytes(payload_size)) for i in range(count)]


def _encode_ours(records: list[Record], max_size: int) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    builder = AggregateBuilder()
    for pk, ehk, data in records:
        if builder.count and builder.size_if_added(pk, ehk, data) > max_size:
            out.append(("a", str(builder.first_hash_key), builder.build()))
            builder = AggregateBuilder()
        builder.add(pk, ehk, data)
    if builder.count:
        out.append(("a", str(builder.first_hash_key), builder.build()))
    return out


def _encode_theirs(records: list[Record], max_size: int) -> list[tuple[Any, Any, bytes]]:
    from aws_kinesis_agg.aggregator import RecordAggregator

    out: list[tuple[Any, Any, bytes]] = []
    aggregator = RecordAggregator(max_size=max_size)
    for pk, ehk, data in records:
        full = aggregator.add_user_record(pk, data, ehk)
        if full is not None:
            out.append(full.get_contents())
    last = aggregator.clear_and_get()
    if last is not None:
        out.append(last.get_contents())
    return out


def _decode_ours(blobs: list[bytes], hash_range: tuple[int, int] | None) -> int:
    return sum(len(deaggregate(blob, "a", None, hash_range)) for blob in blobs)


def _decode_theirs(boto_records: list[dict[str, Any]]) -> int:
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    return sum(1 for _ in iter_deaggregate_records(boto_records, data_format="Boto3"))


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(
    records: int = 200_000, payload_size: int = 100, max_size: int = 51_200, repeat: int = 5
) -> dict[str, Any]:
    """Best-of-``repeat`` records/s for encode and decode, ours and aws-kinesis-agg's.

    Returns ``{"records", "payload_size", "max_size", "aggregates", "encode", "decode",
    "decode_filtered"}``; the codec entries hold ``ours``, ``theirs`` (records/s) and ``ratio``.
    """
    data = _records(records, payload_size, seed=1)
    t_ours, ours = _best(lambda: _encode_ours(data, max_size), repeat)
    t_theirs, theirs = _best(lambda: _encode_theirs(data, max_size), repeat)
    # Same records, same limit, exact sizes on both sides: the aggregates must be byte-identical.
    if [blob for _, _, blob in ours] != [blob for _, _, blob in theirs]:
        raise AssertionError("aggregates differ from aws-kinesis-agg's")

    blobs = [blob for _, _, blob in ours]
    now = dt.datetime.now(dt.UTC)
    boto_records = [
        {
            "SequenceNumber": str(i),
            "PartitionKey": "a",
            "ApproximateArrivalTimestamp": now,
            "Data": b,
        }
        for i, b in enumerate(blobs)
    ]
    d_ours, n_ours = _best(lambda: _decode_ours(blobs, None), repeat)
    d_filtered, n_filtered = _best(lambda: _decode_ours(blobs, (0, MAX_HASH_KEY)), repeat)
    d_theirs, n_theirs = _best(lambda: _decode_theirs(boto_records), repeat)
    if not n_ours == n_filtered == n_theirs == records:
        raise AssertionError(f"decoded {n_ours}/{n_filtered}/{n_theirs} of {records} records")

    def entry(ours_s: float, theirs_s: float | None) -> dict[str, float | None]:
        theirs_rate = records / theirs_s if theirs_s else None
        return {
            "ours": records / ours_s,
            "theirs": theirs_rate,
            "ratio": (records / ours_s) / theirs_rate if theirs_rate else None,
        }

    return {
        "records": records,
        "payload_size": payload_size,
        "max_size": max_size,
        "aggregates": len(blobs),
        "encode": entry(t_ours, t_theirs),
        "decode": entry(d_ours, d_theirs),
        "decode_filtered": entry(d_filtered, None),
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--max-size", type=int, default=51_200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(args.records, args.payload_size, args.max_size, args.repeat)
    print(
        f"{result['records']} records of {result['payload_size']} B "
        f"in {result['aggregates']} aggregates of <= {result['max_size']} B, "
        f"best of {args.repeat}"
    )
    print(f"{'':22}{'ours rec/s':>14}{'aws-kinesis-agg':>17}{'ours/theirs':>13}")
    labels = {
        "encode": "encode",
        "decode": "decode",
        "decode_filtered": "decode + hash filter",
    }
    for key, label in labels.items():
        e = result[key]
        theirs = f"{e['theirs']:>17,.0f}" if e["theirs"] else f"{'-':>17}"
        ratio = f"{e['ratio']:>13.2f}" if e["ratio"] else f"{'-':>13}"
        print(f"{label:22}{e['ours']:>14,.0f}{theirs}{ratio}")


if __name__ == "__main__":
    main()
