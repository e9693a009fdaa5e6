"""``kinesis-actors tail``: print a stream's records, deaggregated, for operators.

Reads every shard with plain GetRecords (no leases, no checkpoints), so it never disturbs the
consumers of the stream.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from kinesis_actors._aggregation import deaggregate
from kinesis_actors._aws import client_config, new_client
from kinesis_actors._cli._args import positive_int
from kinesis_actors._config import to_seconds
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["add_arguments", "read_stream", "run_tail"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", help="stream name or ARN")
    parser.add_argument(
        "--from",
        dest="position",
        type=_position,
        default="TRIM_HORIZON",
        help="TRIM_HORIZON (default), LATEST, or an ISO-8601 timestamp",
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep polling for new records")
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="stop after this many records"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per record")
    parser.add_argument(
        "--idle",
        type=_duration,
        default=0.5,
        help="wait between empty polls with --follow: a duration such as '2 s', or "
        "milliseconds (default 500 ms)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="Kinesis endpoint, e.g. a local one")


def _iterator_args(position: str) -> dict[str, Any]:
    upper = position.upper()
    if upper in {"TRIM_HORIZON", "LATEST"}:
        return {"ShardIteratorType": upper}
    try:
        timestamp = datetime.fromisoformat(position.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{position!r} is not TRIM_HORIZON, LATEST or a timestamp") from None
    return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": timestamp}


def _position(text: str) -> str:
    try:
        _iterator_args(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _duration(text: str) -> float:
    try:
        seconds = to_seconds(text, 1e-3)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration >= 0, got {text!r}")
    return seconds


def _hash_range(shard: Any) -> tuple[int, int]:
    hash_range = shard["HashKeyRange"]
    return int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"])


def read_stream(
    client: KinesisClient,
    stream: str,
    position: str = "TRIM_HORIZON",
    *,
    follow: bool = False,
    idle: float = 0.5,
) -> Iterator[ConsumerEvent]:
    """Yield every user record of every shard, polling the shards in turn.

    Without ``follow`` it stops at each shard's current tip; with it, it polls open shards.
    Aggregates with a member outside the shard's hash range are dropped whole, as the KCL does.
    """
    shards = client.list_shards(**StreamRef.of(stream).request_args())["Shards"]
    if position.upper() == "LATEST":
        shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    iterators: dict[str, tuple[str, tuple[int, int]]] = {}
    for shard in shards:
        iterator = client.get_shard_iterator(
            **StreamRef.of(stream).request_args(),
            ShardId=shard["ShardId"],
            **_iterator_args(position),
        ).get("ShardIterator")
        if iterator:
            iterators[shard["ShardId"]] = (iterator, _hash_range(shard))
    while iterators:
        progressed = False
        for shard_id, (iterator, hash_range) in list(iterators.items()):
            page = client.get_records(ShardIterator=iterator, Limit=10000)
            for record in page["Records"]:
                progressed = True
                members = deaggregate(record["Data"], record["PartitionKey"], None, hash_range)
                for member in members:
                    yield ConsumerEvent(
                        CompoundSequenceNumber(
                            record["SequenceNumber"], member.sub_sequence_number
                        ),
                        member.data,
                        record["ApproximateArrivalTimestamp"],
                        member.partition_key,
                        shard_id,
                        member.explicit_hash_key,
                    )
            next_iterator = page.get("NextShardIterator")
            if not next_iterator or (
                not page["Records"] and not follow and not page.get("MillisBehindLatest")
            ):
                del iterators[shard_id]
            else:
                iterators[shard_id] = (next_iterator, hash_range)
        if follow and not progressed:
            time.sleep(idle)


def _render(event: ConsumerEvent, as_json: bool, out: TextIO) -> None:
    try:
        text = event.payload_as_string()
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(event.payload).decode()
        encoding = "base64"
    if as_json:
        out.write(
            json.dumps(
                {
                    "shard_id": event.shard_id,
                    "sequence_number": event.sequence_number.sequence_number,
                    "sub_sequence_number": event.sequence_number.sub_sequence_number,
                    "partition_key": event.partition_key,
                    "arrival": event.timestamp.isoformat(),
                    "data": text,
                    "encoding": encoding,
                }
            )
            + "\n"
        )
    else:
        out.write(f"{event.shard_id} {event.sequence_number} {event.partition_key}\t{text}\n")


def run_tail(args: argparse.Namespace) -> int:
    client: KinesisClient = new_client(
        "kinesis", region=args.region, endpoint_url=args.endpoint_url, config=client_config(tries=3)
    )
    for count, event in enumerate(
        read_stream(client, args.stream, args.position, follow=args.follow, idle=args.idle), start=1
    ):
        _render(event, args.json, sys.stdout)
        if args.limit is not None and count >= args.limit:
            break
    sys.stdout.flush()
    return 0
