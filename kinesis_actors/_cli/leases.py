"""``kinesis-actors leases <table>``: show who holds which shard, for operators.

Reads the table with one scan (no writes), so it is safe to run against a live fleet. With
``--stream`` it also shows each lease's lag: how far its checkpoint is behind the shard's tip, as
the ``MillisBehindLatest`` of one GetRecords call (one record) just after the checkpoint. With
``--delete --yes`` it deletes the table, e.g. to restart an application from its initial
position; stop every worker first.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from kinesis_actors._aws import client_config, new_client
from kinesis_actors._leases.dynamodb_leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import Lease
from kinesis_actors._models import CompoundSequenceNumber, Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = [
    "add_arguments",
    "format_billing",
    "format_lag",
    "format_leases",
    "lease_lags",
    "run_leases",
]

_HEADERS = ("SHARD", "OWNER", "COUNTER", "CHECKPOINT", "PARENTS")
_LAG_HEADERS = ("SHARD", "OWNER", "COUNTER", "CHECKPOINT", "LAG", "PARENTS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "table",
        help="lease table name (a consumer's is <application-name>-<stream-name> "
        "unless kcl.tableName is set)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="DynamoDB endpoint, e.g. a local one")
    parser.add_argument(
        "--stream",
        default=None,
        metavar="NAME",
        help="the leases' stream: adds a LAG column, how far each checkpoint is behind its "
        "shard's tip (MillisBehindLatest; '-' for a finished shard, '?' if unknown)",
    )
    parser.add_argument(
        "--kinesis-endpoint-url",
        default=None,
        help="Kinesis endpoint for --stream, e.g. a local one",
    )
    parser.add_argument(
        "--delete", action="store_true", help="delete the lease table (needs --yes)"
    )
    parser.add_argument("--yes", action="store_true", help="confirm --delete")


def format_lag(millis: int) -> str:
    """A lag without spaces: ``0ms``, ``850ms``, ``12.3s``, ``4.5min``, ``2.0h``."""
    if millis < 1000:
        return f"{millis}ms"
    if millis < 120_000:
        return f"{millis / 1000:.1f}s"
    if millis < 7_200_000:
        return f"{millis / 60_000:.1f}min"
    return f"{millis / 3_600_000:.1f}h"


def _iterator_request(lease: Lease) -> dict[str, Any] | None:
    checkpoint = lease.checkpoint
    if isinstance(checkpoint, CompoundSequenceNumber):
        return {
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": checkpoint.sequence_number,
        }
    if checkpoint in {Sentinel.TRIM_HORIZON, Sentinel.LATEST}:
        return {"ShardIteratorType": str(checkpoint)}
    return None  # AT_TIMESTAMP: the timestamp is in the consumer's config, not in the lease


def lease_lags(kinesis: KinesisClient, stream: str, leases: list[Lease]) -> dict[str, str]:
    """shard id -> lag of its lease's checkpoint, formatted; one GetRecords call per lease.

    ``-`` for a finished shard (SHARD_END), ``?`` where Kinesis cannot tell (an AT_TIMESTAMP
    checkpoint, a shard or sequence number past retention). A missing stream, missing
    credentials or an unreachable endpoint raise, as everywhere in the command line.
    """
    kinesis.describe_stream_summary(**StreamRef.of(stream).request_args())
    lags: dict[str, str] = {}
    for lease in leases:
        if lease.checkpoint == Sentinel.SHARD_END:
            lags[lease.shard_id] = "-"
            continue
        request = _iterator_request(lease)
        if request is None:
            lags[lease.shard_id] = "?"
            continue
        try:
            iterator = kinesis.get_shard_iterator(
                **StreamRef.of(stream).request_args(), ShardId=lease.shard_id, **request
            ).get("ShardIterator")
            if iterator is None:
                lags[lease.shard_id] = "-"
                continue
            page = kinesis.get_records(ShardIterator=iterator, Limit=1)
        except botocore.exceptions.ClientError:
            lags[lease.shard_id] = "?"
            continue
        millis = page.get("MillisBehindLatest")
        lags[lease.shard_id] = "?" if millis is None else format_lag(millis)
    return lags


def format_leases(leases: list[Lease], lags: Mapping[str, str] | None = None) -> list[str]:
    """A table of leases, one line each, then a summary line; a LAG column if ``lags``."""
    headers = _HEADERS if lags is None else _LAG_HEADERS
    rows = []
    for lease in sorted(leases, key=lambda lease: lease.shard_id):
        row = [lease.shard_id, lease.owner or "-", str(lease.counter), str(lease.checkpoint)]
        if lags is not None:
            row.append(lags.get(lease.shard_id, "?"))
        row.append(",".join(lease.parent_shard_ids) or "-")
        rows.append(tuple(row))
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    owners = Counter(lease.owner for lease in leases if lease.owner)
    held = ", ".join(f"{owner}: {count}" for owner, count in sorted(owners.items()))
    free = sum(lease.owner is None for lease in leases)
    finished = sum(lease.finished for lease in leases)
    lines.append(
        f"{len(leases)} leases, {free} free, {finished} finished; "
        f"{len(owners)} owners{': ' + held if held else ''}"
    )
    return lines


def format_billing(table: str, mode: str, read: int | None, write: int | None) -> str:
    """The table's billing: what its capacity (and so its cost and throttling) is."""
    if mode != "PROVISIONED":
        return f"lease table {table}: {mode}"
    return f"lease table {table}: PROVISIONED, {read} read / {write} write capacity units"


def run_leases(args: argparse.Namespace) -> int:
    dynamodb = new_client(
        "dynamodb",
        region=args.region,
        endpoint_url=args.endpoint_url,
        config=client_config(tries=3),
    )
    table = DynamoDBLeaseTable(dynamodb, args.table)
    if args.delete:
        if not args.yes:
            print(
                f"kinesis-actors leases: not deleting {args.table} without --yes "
                "(stop every worker first: they would recreate it)",
                file=sys.stderr,
            )
            return 2
        table.delete_table()
        print(f"lease table {args.table} deleted")
        return 0
    print(format_billing(args.table, *table.billing()))
    leases = table.list_leases()
    lags = None
    if args.stream:
        kinesis: KinesisClient = new_client(
            "kinesis",
            region=args.region,
            endpoint_url=args.kinesis_endpoint_url,
            config=client_config(tries=3),
        )
        lags = lease_lags(kinesis, args.stream, leases)
    for line in format_leases(leases, lags):
        print(line)
    return 0
