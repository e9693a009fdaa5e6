"""The ``kinesis-actors`` command: local emulators, lease inspection, the reliability test.

Each subcommand lives beside the code it drives and exposes ``add_arguments(parser)`` and a run
function; this module only wires them and turns expected failures into one line and a non-zero
exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

import botocore.exceptions
import structlog

from kinesis_actors._errors import KinesisActorsError
from kinesis_actors._version import __version__

__all__ = ["main"]

#: name -> (module, run function, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "local": (
        "kinesis_actors.testing._local",
        "run_local",
        "start kinesalite + dynalite on loopback (or install them with --install)",
    ),
    "leases": (
        "kinesis_actors._cli.leases",
        "run_leases",
        "print a lease table (owners, counters, checkpoints), or delete it",
    ),
    "put": ("kinesis_actors._cli.put", "run_put", "put lines from stdin as records, one per line"),
    "reliability": (
        "kinesis_actors.reliability._run",
        "run_reliability",
        "the reliability test: producer and consumers verified end to end, under faults too",
    ),
    "tail": ("kinesis_actors._cli.tail", "run_tail", "print a stream's records, deaggregated"),
}


def configure_logging(verbose: bool = False) -> None:
    """Human-readable structlog output for the command line (never done on import)."""
    level = logging.DEBUG if verbose else logging.INFO
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="kinesis-actors",
        description="Produce to and consume from Amazon Kinesis with actors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, (module_name, run_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        runners[name] = getattr(module, run_name)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return runners[args.command](args)
    except KeyboardInterrupt:
        return 130
    except (KinesisActorsError, botocore.exceptions.BotoCoreError) as exc:
        print(f"kinesis-actors {args.command}: {exc}", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            f"kinesis-actors {args.command}: {error.get('Code')}: {error.get('Message')}",
            file=sys.stderr,
        )
        return 1
