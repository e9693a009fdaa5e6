"""``kinesis-actors put <stream>``: put lines from stdin as records, through the producer engine.

Each line, without its line ending, is one user record. Records are batched, aggregated (unless
``--no-aggregation``) and retried by ``KinesisProducer``, with a short ``RecordTtl`` so that a
stream that cannot be written to fails within seconds instead of after the library's default.
The stream is described first, so a missing stream, missing credentials or an unreachable
endpoint fail at once with the one-line error of the ``kinesis-actors`` command.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO
from urllib.parse import urlsplit

from kinesis_actors._aws import producer_client
from kinesis_actors._config import KplConf, to_seconds
from kinesis_actors._errors import InvalidStateError, UserRecordFailedError
from kinesis_actors._models import ProducerEvent, UserRecordResult
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["PutSummary", "add_arguments", "put_lines", "run_put"]

#: RecordTtl of the command (ms): a record not put by then fails with error code "Expired".
DEFAULT_TTL = "10 s"
#: Records buffered before reading more of stdin waits for the producer (back-pressure).
MAX_OUTSTANDING = 20_000
_WRITABLE = {"ACTIVE", "UPDATING"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", help="stream name or ARN (it must exist)")
    parser.add_argument(
        "--partition-key",
        default=None,
        metavar="KEY",
        help="partition key of every record (default: a random key per line, "
        "spreading the lines over the shards)",
    )
    parser.add_argument(
        "--no-aggregation",
        action="store_true",
        help="one Kinesis record per line (default: KPL aggregation, as the library does)",
    )
    parser.add_argument(
        "--ttl",
        default=DEFAULT_TTL,
        help=f"give up on a record not put by then (RecordTtl: a duration such as '30 s', or "
        f"milliseconds; default {DEFAULT_TTL})",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="Kinesis endpoint, e.g. a local one")


def kpl_settings(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    aggregation: bool = True,
    ttl: float = 10.0,
) -> dict[str, Any]:
    """The ``kpl`` block of the command: region, endpoint, aggregation and RecordTtl (seconds)."""
    kpl: dict[str, Any] = {
        "AggregationEnabled": aggregation,
        "RecordTtl": max(1, round(ttl * 1000)),
    }
    if region:
        kpl["Region"] = region
    if endpoint_url:
        parts = urlsplit(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        if not parts.hostname or parts.path.strip("/"):
            raise InvalidStateError(f"--endpoint-url {endpoint_url!r} is not scheme://host[:port]")
        scheme = parts.scheme or "https"
        kpl["KinesisEndpoint"] = parts.hostname
        kpl["KinesisPort"] = parts.port or (443 if scheme == "https" else 80)
        kpl["KinesisScheme"] = scheme
    return kpl


def check_stream(client: KinesisClient, stream: str) -> None:
    """Fail at once (botocore's error, or InvalidStateError) if the stream cannot be written."""
    summary = client.describe_stream_summary(**StreamRef.of(stream).request_args())[
        "StreamDescriptionSummary"
    ]
    status = summary["StreamStatus"]
    if status not in _WRITABLE:
        raise InvalidStateError(f"stream {stream!r} is {status}; records cannot be put")


class PutSummary:
    """Counts of one run, filled from the futures' callbacks (on the engine thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.put = 0
        self.failed: list[tuple[int, str]] = []

    def record_done(self, line_number: int, future: Future[UserRecordResult]) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self.put += 1
            else:
                self.failed.append((line_number, describe_failure(error)))


def describe_failure(error: BaseException) -> str:
    """``<error code>: <message>`` of a failed record, with the last service error if it expired."""
    if isinstance(error, UserRecordFailedError) and error.result.attempts:
        attempts = error.result.attempts
        last = attempts[-1]
        text = f"{last.error_code}: {last.error_message}"
        earlier = [a.error_code for a in attempts[:-1] if a.error_code != last.error_code]
        if earlier:
            text += f" (after {len(attempts) - 1} failed attempt(s), last {earlier[-1]})"
        return text
    return f"{type(error).__name__}: {error}"


def _lines(stream: BinaryIO) -> Iterable[bytes]:
    for line in stream:
        if line.endswith(b"\r\n"):
            yield line[:-2]
        elif line.endswith(b"\n"):
            yield line[:-1]
        else:
            yield line


def put_lines(
    producer: KinesisProducer,
    lines: Iterable[bytes],
    partition_key: str | None = None,
    *,
    max_outstanding: int = MAX_OUTSTANDING,
) -> PutSummary:
    """Add every line as a record and wait for all of them; the caller stops the producer."""
    summary = PutSummary()
    for number, line in enumerate(lines, start=1):
        while producer.outstanding_records_count() >= max_outstanding:
            producer.flush()
            time.sleep(0.01)
        key = partition_key if partition_key is not None else uuid.uuid4().hex
        future = producer.add_user_record(ProducerEvent(key, line))
        future.add_done_callback(functools.partial(summary.record_done, number))
    producer.flush_sync()
    return summary


def report(summary: PutSummary, stream: str, out: TextIO) -> int:
    for number, text in sorted(summary.failed):
        out.write(f"line {number}: {text}\n")
    out.write(f"{summary.put} records put to {stream}, {len(summary.failed)} failed\n")
    out.flush()
    return 1 if summary.failed else 0


def run_put(args: argparse.Namespace, stdin: BinaryIO | None = None) -> int:
    if args.partition_key is not None and not args.partition_key:
        raise InvalidStateError("--partition-key must not be empty")
    try:
        ttl = to_seconds(args.ttl, 1e-3)
    except ValueError as exc:
        raise InvalidStateError(f"--ttl: {exc}") from None
    kpl = KplConf.from_config(
        kpl_settings(
            region=args.region,
            endpoint_url=args.endpoint_url,
            aggregation=not args.no_aggregation,
            ttl=ttl,
        )
    )
    client = producer_client(kpl)
    check_stream(client, args.stream)
    source = stdin if stdin is not None else sys.stdin.buffer
    producer = KinesisProducer(kpl, args.stream, client=client)
    try:
        summary = put_lines(producer, _lines(source), args.partition_key)
    finally:
        producer.stop()
    return report(summary, args.stream, sys.stderr)
