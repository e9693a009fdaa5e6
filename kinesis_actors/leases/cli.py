"""``kinesis-actors leases <table>``: show who holds which shard, for operators.

Reads the table with one scan (no writes), so it is safe to run against a live fleet. With
``--delete --yes`` it deletes the table, e.g. to restart an application from its initial
position; stop every worker first.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import boto3

from kinesis_actors.aws import client_config
from kinesis_actors.leases.lease import Lease
from kinesis_actors.leases.table import DynamoDBLeaseTable

__all__ = ["add_arguments", "format_leases", "run_leases"]

_HEADERS = ("SHARD", "OWNER", "COUNTER", "CHECKPOINT", "PARENTS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "table",
        help="lease table name (a consumer's is <application-name>-<stream-name> "
        "unless kcl.tableName is set)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="DynamoDB endpoint, e.g. a local one")
    parser.add_argument(
        "--delete", action="store_true", help="delete the lease table (needs --yes)"
    )
    parser.add_argument("--yes", action="store_true", help="confirm --delete")


def format_leases(leases: list[Lease]) -> list[str]:
    """A table of leases, one line each, then a summary line."""
    rows = [
        (
            lease.shard_id,
            lease.owner or "-",
            str(lease.counter),
            str(lease.checkpoint),
            ",".join(lease.parent_shard_ids) or "-",
        )
        for lease in sorted(leases, key=lambda lease: lease.shard_id)
    ]
    widths = [max(len(row[i]) for row in (_HEADERS, *rows)) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (_HEADERS, *rows)
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


def run_leases(args: argparse.Namespace) -> int:
    dynamodb = boto3.client(
        "dynamodb",
        region_name=args.region,
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
    for line in format_leases(table.list_leases()):
        print(line)
    return 0
