"""``kinesis-actors local``: run kinesalite + dynalite (or moto) on loopback until stopped.

Prints the endpoints and the ``export`` lines that point boto3 at them (``--env-file`` also
writes those lines to a file for ``source``), then waits for Ctrl-C, SIGTERM or SIGHUP.
``--install`` only installs the pinned npm packages. ``--aws-limits`` puts the limits proxy
(AWS's per-shard and per-API limits, ``--latency-ms`` per call) in front of the servers and
prints its counters at exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinesis_actors._cli._args import non_negative_float, port_number, positive_float
from kinesis_actors._errors import LocalBackendError
from kinesis_actors._signals import StopSignals
from kinesis_actors.testing._backends import BACKEND_MOTO, BACKEND_OPTIONS, MOTO_WARNING
from kinesis_actors.testing._emulators import (
    EMULATOR_PACKAGES,
    EMULATORS_ENV_VAR,
    install_emulators,
)
from kinesis_actors.testing._local import LocalKinesis

__all__ = ["add_arguments", "run_local"]

_EXIT_CHECK_INTERVAL = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``kinesis-actors local`` options to ``parser``."""
    parser.add_argument(
        "--backend",
        choices=BACKEND_OPTIONS,
        default="auto",
        help="auto: kinesalite+dynalite, else moto server (default); emulators; moto",
    )
    parser.add_argument(
        "--kinesis-port",
        type=port_number,
        default=0,
        help="Kinesis port (moto: its only port); 0 = a free one (default). A port in use "
        "is an error",
    )
    parser.add_argument(
        "--dynamodb-port",
        type=port_number,
        default=0,
        help="DynamoDB port (emulators); 0 = a free one (default)",
    )
    parser.add_argument("--region", default="us-east-1", help="region (default: us-east-1)")
    parser.add_argument(
        "--emulators-dir",
        type=Path,
        default=None,
        help=f"folder with node_modules (default: ${EMULATORS_ENV_VAR}, ./.emulators, ...)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="keep the servers' logs in this folder"
    )
    parser.add_argument(
        "--env-file",
        type=_env_file,
        default=None,
        metavar="PATH",
        help="also write the export lines to PATH, for `source PATH` in another shell",
    )
    parser.add_argument(
        "--startup-timeout",
        type=positive_float,
        default=30.0,
        help="seconds to wait for the servers to answer (default: 30)",
    )
    parser.add_argument(
        "--aws-limits",
        action="store_true",
        help="enforce AWS's Kinesis and DynamoDB limits through a proxy (the limits mode)",
    )
    parser.add_argument(
        "--latency-ms",
        type=non_negative_float,
        default=0.0,
        help="with --aws-limits: milliseconds added to every call (default: 0)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="only install kinesalite and dynalite with npm, then exit",
    )


def run_local(args: argparse.Namespace) -> int:
    """Start the servers, print how to use them, wait for a stop signal; the exit code.

    Raises:
        LocalBackendError: the servers could not be installed or started (a port in use too),
            or the env file could not be written.
    """
    if args.install:
        folder = install_emulators(args.emulators_dir)
        versions = ", ".join(f"{name} {version}" for name, version in EMULATOR_PACKAGES.items())
        print(f"{versions} installed in {folder}", flush=True)
        return 0

    if args.latency_ms and not args.aws_limits:
        raise LocalBackendError("--latency-ms needs --aws-limits")
    local = LocalKinesis(
        backend=args.backend,
        kinesis_port=args.kinesis_port,
        dynamodb_port=args.dynamodb_port,
        region=args.region,
        emulators_dir=args.emulators_dir,
        log_dir=args.log_dir,
        startup_timeout=args.startup_timeout,
        aws_limits=args.aws_limits,
        latency_ms=args.latency_ms,
    )
    with StopSignals() as stop, local:
        if args.env_file is not None:
            _write_env_file(args.env_file, local.shell_exports())
        if local.backend == BACKEND_MOTO:
            print(f"WARNING: {MOTO_WARNING}", file=sys.stderr)
        print(f"Local backend: {local.backend} (pids {local.pids})")
        print(f"  Kinesis:  {local.kinesis_endpoint}")
        print(f"  DynamoDB: {local.dynamodb_endpoint}")
        print(f"  Logs:     {local.log_dir}")
        if local.limits is not None:
            upstream = local.upstream_endpoints
            print(
                f"  AWS limits: on, {args.latency_ms:g} ms per call (in front of Kinesis "
                f"{upstream['kinesis']}, DynamoDB {upstream['dynamodb']})"
            )
        print("Point boto3 at it with:")
        for line in local.shell_exports():
            print(f"  {line}")
        if args.env_file is not None:
            print(f"or: source {args.env_file}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(_EXIT_CHECK_INTERVAL):
            if local.exited():
                raise LocalBackendError(local.describe_exits())
    if local.limits_report:
        print(local.limits_report)
    print("Stopped.", flush=True)
    return 0


def _env_file(text: str) -> Path:
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} does not exist")
    return path


def _write_env_file(path: Path, exports: list[str]) -> None:
    try:
        path.write_text("\n".join(exports) + "\n", encoding="utf-8")
    except OSError as exc:
        raise LocalBackendError(f"cannot write the env file {path}: {exc.strerror}") from None
