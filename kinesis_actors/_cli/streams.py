"""``kinesis-actors create-stream`` and ``delete-stream``: a stream for a test, a demo, a run.

``create-stream`` waits until the stream is ACTIVE, so the next command can write to it;
``delete-stream`` needs ``--yes`` (its records are gone with it) and waits until it is gone.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from kinesis_actors._aws import client_config, new_client
from kinesis_actors._cli._args import positive_float, positive_int, usage_error

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import WaiterConfigTypeDef

__all__ = [
    "add_create_arguments",
    "add_delete_arguments",
    "run_create_stream",
    "run_delete_stream",
]

_POLL_SECONDS = 1


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", metavar="NAME", help="stream name")
    parser.add_argument(
        "--shards", type=positive_int, default=1, help="number of shards (default 1)"
    )
    _add_common(parser)


def add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", metavar="NAME", help="stream name")
    parser.add_argument("--yes", action="store_true", help="confirm: delete the stream")
    _add_common(parser)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=positive_float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the change to take effect (default 300)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="Kinesis endpoint, e.g. a local one")


def _client(args: argparse.Namespace) -> KinesisClient:
    client: KinesisClient = new_client(
        "kinesis", region=args.region, endpoint_url=args.endpoint_url, config=client_config(tries=3)
    )
    return client


def _waiter_config(seconds: float) -> WaiterConfigTypeDef:
    return {"Delay": _POLL_SECONDS, "MaxAttempts": max(1, math.ceil(seconds / _POLL_SECONDS))}


def run_create_stream(args: argparse.Namespace) -> int:
    """Create the stream and wait until it is ACTIVE."""
    kinesis = _client(args)
    kinesis.create_stream(StreamName=args.stream, ShardCount=args.shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=args.stream, WaiterConfig=_waiter_config(args.wait)
    )
    print(f"stream {args.stream} created with {args.shards} shard(s): ACTIVE")
    return 0


def run_delete_stream(args: argparse.Namespace) -> int:
    """Delete the stream (with ``--yes``) and wait until it is gone."""
    if not args.yes:
        return usage_error(
            "delete-stream", f"not deleting {args.stream} without --yes (its records go with it)"
        )
    kinesis = _client(args)
    kinesis.delete_stream(StreamName=args.stream)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=args.stream, WaiterConfig=_waiter_config(args.wait)
    )
    print(f"stream {args.stream} deleted")
    return 0
