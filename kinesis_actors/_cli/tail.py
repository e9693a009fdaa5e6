"""``kinesis-actors tail``: print a stream's records, deaggregated, for operators.

Reads every shard through the consumer's ShardReader (so expired iterators are renewed and a
reshard's children follow their parents) but takes no leases and writes no checkpoints, so it
never disturbs the consumers of the stream.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from kinesis_actors._aws import client_config, list_all_shards, new_client
from kinesis_actors._cli._args import positive_int
from kinesis_actors._config import ConsumerConf, load_config, to_seconds
from kinesis_actors._consumer.reader import ShardReader
from kinesis_actors._leases.lease import HeldLease
from kinesis_actors._models import ConsumerEvent, Sentinel

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardTypeDef

    from kinesis_actors._config import KclConf

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


def _parents(shard: ShardTypeDef) -> tuple[str, ...]:
    return tuple(
        parent
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
        if parent
    )


def _closed(shard: ShardTypeDef) -> bool:
    return "EndingSequenceNumber" in shard["SequenceNumberRange"]


def _unowned_lease(shard: ShardTypeDef, position: Sentinel) -> HeldLease:
    """The lease a ShardReader needs, from ListShards' values: tail owns no lease (the token is
    never written anywhere) and starts at ``position``."""
    hash_range = shard["HashKeyRange"]
    return HeldLease(
        shard_id=shard["ShardId"],
        concurrency_token="",
        checkpoint=position,
        parent_shard_ids=_parents(shard),
        starting_hash_key=int(hash_range["StartingHashKey"]),
        ending_hash_key=int(hash_range["EndingHashKey"]),
    )


def _reader_settings(position: str) -> KclConf:
    """The consumer's read settings (reference.conf's ``kcl`` block), at ``position``."""
    kcl = ConsumerConf.from_config(
        load_config("kinesis { tail { stream-name = tail } }"), "tail"
    ).kcl
    args = _iterator_args(position)
    return dataclasses.replace(kcl, initial_timestamp=args.get("Timestamp"))


class _StreamWalk:
    """Which shards to read: a shard starts once every parent it was listed with is read to its
    end, so a reshard's child follows its parents. Shards appear from ListShards (NextToken
    followed), again after a shard ends (emulators send no ChildShards)."""

    def __init__(self, client: KinesisClient, stream: str, position: str) -> None:
        self._client = client
        self._stream = stream
        self._kcl = _reader_settings(position)
        upper = position.upper()
        first = Sentinel(upper) if upper in {"TRIM_HORIZON", "LATEST"} else Sentinel.AT_TIMESTAMP
        #: A child starts at its beginning (LATEST would skip what arrived since its parent closed).
        self._child = Sentinel.TRIM_HORIZON if first is Sentinel.LATEST else first
        self._known: dict[str, ShardTypeDef] = {}
        self._ended: set[str] = set()
        self._waiting: list[str] = []
        self.readers: dict[str, tuple[ShardReader, bool]] = {}
        shards = list_all_shards(client, stream)
        if first is Sentinel.LATEST:  # a closed shard has nothing after LATEST: count it read
            for shard in shards:
                if _closed(shard):
                    self._known[shard["ShardId"]] = shard
                    self._ended.add(shard["ShardId"])
        self._add(shards, first)

    def _add(self, shards: list[ShardTypeDef], position: Sentinel) -> None:
        for shard in shards:
            if shard["ShardId"] not in self._known:
                self._known[shard["ShardId"]] = shard
                self._waiting.append(shard["ShardId"])
        self._start_ready(position)

    def _start_ready(self, position: Sentinel) -> None:
        for shard_id in list(self._waiting):
            shard = self._known[shard_id]
            parents = [p for p in _parents(shard) if p in self._known]
            if all(p in self._ended for p in parents):
                self._waiting.remove(shard_id)
                reader = ShardReader(
                    self._client, self._stream, _unowned_lease(shard, position), self._kcl
                )
                self.readers[shard_id] = (reader, _closed(shard))

    def stop(self, shard_id: str) -> None:
        """The shard is read as far as this run goes (not to its end: its children wait)."""
        del self.readers[shard_id]

    def ended(self, shard_id: str) -> None:
        """The shard is read to its end: start its children (listing them if none is known)."""
        del self.readers[shard_id]
        self._ended.add(shard_id)
        if not any(shard_id in _parents(shard) for shard in self._known.values()):
            self._add(list_all_shards(self._client, self._stream), self._child)
        else:
            self._start_ready(self._child)


def read_stream(
    client: KinesisClient,
    stream: str,
    position: str = "TRIM_HORIZON",
    *,
    follow: bool = False,
    idle: float = 0.5,
) -> Iterator[ConsumerEvent]:
    """Yield every user record of every shard through the consumer's ShardReader, polling the
    shards in turn (expired iterators renewed, closed shards continued into their children).

    Without ``follow`` it stops at each open shard's current tip (a closed shard is read to its
    end); with it, it polls open shards. Aggregates are unpacked as the consumer does.
    """
    walk = _StreamWalk(client, stream, position)
    while walk.readers:
        progressed = False
        for shard_id, (reader, closed) in list(walk.readers.items()):
            result = reader.read()
            progressed = progressed or bool(result.records_read)
            yield from result.events
            if result.shard_end:
                walk.ended(shard_id)
            elif (
                not follow
                and not closed
                and not result.records_read
                and not result.millis_behind_latest
            ):
                walk.stop(shard_id)
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
