"""``python -m kinesis_actors.reliability consumer|producer``: the reliability test's processes.

``reliability run`` starts its consumer processes this way (JSON status lines on stdout). People
use ``kinesis-actors reliability consumer`` / ``producer``, which run the same functions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kinesis_actors.reliability._processes import run_consumer, run_producer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kinesis_actors.reliability")
    parser.add_argument("mode", choices=("consumer", "producer"))
    parser.add_argument("--config", default=None)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--results", type=Path, default=None, help="consumer: the results file")
    args = parser.parse_args(argv)
    # The run keeps each consumer's stderr as its log: the library's INFO events, readable.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(message)s")
    logging.getLogger("kinesis_actors").setLevel(logging.INFO)
    if args.mode == "producer":
        return run_producer(args.config, messages=args.messages)
    return run_consumer(
        args.config, messages=args.messages, results=args.results, status_lines=True
    )


if __name__ == "__main__":
    sys.exit(main())
