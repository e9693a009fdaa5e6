"""``kinesis-actors reliability run|consumer|producer``: the reliability test from the shell.

``run`` checks its flags and ``--config`` before anything starts, then runs the whole test and
prints its table; SIGINT, SIGTERM and SIGHUP interrupt it with the same cleanup (the stream, the
lease table and the temporary folder it created). ``consumer`` and ``producer`` run one side
alone, against the stream named in the config (``kinesis.testProducer.stream-name``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pykka

from kinesis_actors._cli._args import positive_float, positive_int
from kinesis_actors._signals import StopSignals
from kinesis_actors.reliability._chaos import FAULTS, parse_faults
from kinesis_actors.reliability._processes import run_consumer, run_producer
from kinesis_actors.reliability._run import RunOptions, check_config, run_test
from kinesis_actors.reliability._timeline import report_path

__all__ = ["add_arguments", "run_reliability"]

_CONFIG_HELP = (
    "HOCON file merged over the sample config (kinesis_actors/reliability/reliability.conf)"
)


def _faults(text: str) -> tuple[str, ...]:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    run = modes.add_parser(
        "run",
        help="create a stream, run producer and consumers, judge, clean up",
        description="Create a stream, start consumer processes, send the integers 0..N-1, "
        "inject the chosen faults, judge (nothing lost, duplicates counted) and delete what "
        "the run created. Exit code 0 when the verdict is SUCCEEDED, 1 otherwise, 128 + the "
        "signal number when interrupted.",
    )
    run.add_argument(
        "--messages", type=positive_int, default=20000, help="integers to send (default 20000)"
    )
    run.add_argument(
        "--shards", type=positive_int, default=2, help="shards of the test stream (default 2)"
    )
    run.add_argument(
        "--consumers", type=positive_int, default=2, help="consumer processes (default 2)"
    )
    run.add_argument(
        "--local",
        action="store_true",
        help="start kinesalite + dynalite on loopback for the run (default: the endpoints "
        "and credentials of the environment)",
    )
    run.add_argument("--config", default=None, metavar="PATH", help=_CONFIG_HELP)
    run.add_argument(
        "--chaos",
        type=_faults,
        default=(),
        metavar="FAULTS",
        help=f"comma-separated faults: {', '.join(FAULTS)}, or all (default: none)",
    )
    run.add_argument(
        "--rate",
        type=positive_int,
        default=2000,
        help="records/s the producer sends (default 2000)",
    )
    run.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="give up after this many seconds of sending and consuming (default: "
        "60 + 3 x messages / rate + 60 per fault)",
    )
    run.add_argument(
        "--keep-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the consumers' logs and results files here (default: a temporary folder, "
        "deleted at the end)",
    )
    run.add_argument(
        "--report",
        type=report_path,
        default=None,
        metavar="PATH",
        help="also write the run over time (throughput, lag, duplicates, the faults injected and "
        "when) as a self-contained .html page or a .png picture (matplotlib)",
    )
    consumer = modes.add_parser(
        "consumer",
        help="run one SimpleKinesisConsumer until SIGINT/SIGTERM, then print a summary",
        description="Consume the config's stream with one SimpleKinesisConsumer, verifying "
        "the integers at pit stops, until Ctrl-C, SIGTERM or SIGHUP; then print what it "
        "consumed and its verdict. Exit code 3 if the consumer failed or the verdict did.",
    )
    _add_one_side_arguments(consumer, "integers expected")
    producer = modes.add_parser(
        "producer",
        help="send the integers with the SimpleKinesisProducer, then the end marker",
        description="Send the integers 0..N-1 and the end marker to the config's stream, "
        "printing progress every second. Exit code 0 when every send was confirmed.",
    )
    _add_one_side_arguments(producer, "integers to send")


def _add_one_side_arguments(side: argparse.ArgumentParser, messages_help: str) -> None:
    """The flags of ``consumer`` and ``producer``: one side alone, against the config's stream."""
    side.add_argument("--config", default=None, metavar="PATH", help=_CONFIG_HELP)
    side.add_argument(
        "--messages",
        type=positive_int,
        default=None,
        help=f"{messages_help} (default: kinesis.test.expectedNumberOfMessages)",
    )


def run_reliability(args: argparse.Namespace) -> int:
    """Run the chosen mode; the exit code."""
    if args.mode == "consumer":
        return run_consumer(args.config, messages=args.messages)
    if args.mode == "producer":
        return run_producer(args.config, messages=args.messages)
    check_config(args.config)
    options = RunOptions(
        messages=args.messages,
        shards=args.shards,
        consumers=args.consumers,
        faults=args.chaos,
        local=args.local,
        config=args.config,
        timeout=args.timeout,
        rate=args.rate,
        progress=sys.stdout,
        keep_dir=args.keep_dir,
        report_path=args.report,
    )
    try:
        with StopSignals(interrupt=True):
            report = run_test(options)
    finally:
        pykka.ActorRegistry.stop_all()
    print(report.table())
    if args.report is not None:
        print(f"report written: {args.report}")
    return 0 if report.succeeded else 1
