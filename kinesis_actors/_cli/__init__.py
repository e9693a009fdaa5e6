"""The ``kinesis-actors`` command: local servers, streams, records, leases, the reliability test.

Each subcommand is a module of this package with ``add_arguments(parser)`` and a run function
that returns the exit code and raises on failure. This module wires them and owns the one error
style: a usage error is one line and exit code 2 (argparse's); an expected failure (a library
error, a configuration error, an AWS or connection error, a missing file) is one line on stderr
naming what was wrong, and exit code 1; a stop signal ends with 128 + its number.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING

import botocore.exceptions
import structlog

from kinesis_actors._aws import describe_aws_error
from kinesis_actors._cli import leases, local, put, reliability, streams, tail
from kinesis_actors._cli._args import OneLineParser
from kinesis_actors._errors import KinesisActorsError
from kinesis_actors._signals import StopRequested
from kinesis_actors._version import __version__

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["configure_logging", "error_line", "main"]

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"

#: name -> (adds its arguments, runs it and returns the exit code, one-line help)
_COMMANDS: dict[
    str,
    tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str],
] = {
    "local": (
        local.add_arguments,
        local.run_local,
        "start kinesalite + dynalite on loopback until stopped (or install them with --install)",
    ),
    "create-stream": (
        streams.add_create_arguments,
        streams.run_create_stream,
        "create a stream and wait until it is ACTIVE",
    ),
    "delete-stream": (
        streams.add_delete_arguments,
        streams.run_delete_stream,
        "delete a stream (needs --yes) and wait until it is gone",
    ),
    "put": (put.add_arguments, put.run_put, "put lines from stdin as records, one per line"),
    "tail": (tail.add_arguments, tail.run_tail, "print a stream's records, deaggregated"),
    "leases": (
        leases.add_arguments,
        leases.run_leases,
        "print a lease table (owners, counters, checkpoints), or delete it",
    ),
    "reliability": (
        reliability.add_arguments,
        reliability.run_reliability,
        "the reliability test: producer and consumers verified end to end, under faults too",
    ),
}


@contextlib.contextmanager
def configure_logging(verbose: bool = False) -> Iterator[None]:
    """Readable log lines on stderr while the command runs: the library's INFO events (DEBUG
    with ``-v``); other libraries' loggers (botocore, urllib3) are left as they are.

    Undone on exit, so that calling :func:`main` in a process (a test, a notebook) leaves that
    process's logging as it found it.
    """
    logger = logging.getLogger("kinesis_actors")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, datefmt="%H:%M:%S"))
    saved = (logger.level, logger.propagate, structlog.get_config())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    structlog.configure(processors=[structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)])
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        structlog.configure(**saved[2])


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser (the command-line reference is generated from it)."""
    parser = OneLineParser(
        prog="kinesis-actors",
        description="Produce to and consume from Amazon Kinesis with actors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging (default: INFO)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add_arguments, run, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def error_line(error: BaseException) -> str | None:
    """The one line an expected failure is reported with, or None for a bug (a traceback)."""
    if isinstance(error, KinesisActorsError):
        text = str(error)
    elif isinstance(error, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        text = describe_aws_error(error)
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with configure_logging(args.verbose):
            code: int = args.run(args)
    except StopRequested as stop:
        return stop.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = error_line(exc)
        if line is None:
            raise
        endpoint = getattr(args, "endpoint_url", None)
        answered = (exc, exc.__cause__)  # a library error raised from the service's answer
        if endpoint and any(isinstance(e, botocore.exceptions.ClientError) for e in answered):
            line += f" (from {endpoint})"
        print(f"kinesis-actors {args.command}: {line}", file=sys.stderr)
        return 1
    return code
