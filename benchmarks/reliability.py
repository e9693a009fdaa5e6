"""The reliability test at scale: records/s end to end, duplicates, loss and lag, with failover.

Run ``python benchmarks/reliability.py`` (starts kinesalite and dynalite on loopback). It runs
the reliability test through the library's own API (``kinesis_actors.reliability._run``): a
``SimpleKinesisProducer`` sends the integers ``0 .. N-1`` with ``SendWithCallback`` into a fresh
stream, ``--consumers`` consumer processes read it, and every integer each consumed is checked.
By default 1 000 000 messages on 4 shards with 2 consumer processes, once plain and once with a
consumer killed by SIGKILL a third of the way in (a new one is started; the others take its
leases after ``failoverTimeMillis``). The issue's (#7) figures: records/s end to end,
duplicates, p99 lag; lost must be 0.

The producer is paced at ``--rate`` records/s (batches every ``batchDelayMillis``); the default
is far above what the consumers sustain on loopback, so that the figure is theirs: the producer's
own records/s is printed next to it. ``--rate 0`` keeps ``kinesis.test.producer.batchSize``
(20 000 records/s). Each scenario in ``--faults`` is a run: ``none``, or faults joined by ``+``
(``sigkill+throttle``). ``--keep-dir`` keeps each run's consumer logs and results files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pykka

from kinesis_actors.reliability._chaos import FAULTS
from kinesis_actors.reliability._run import RunOptions, RunReport, run_test

__all__ = ["main", "run"]

#: Records/s asked of the producer by default: well above what 2 consumers sustain on 2 cores.
DEFAULT_RATE = 100_000


def _scenario(text: str) -> tuple[str, ...]:
    faults = () if text == "none" else tuple(f for f in text.split("+") if f)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault(s) {', '.join(unknown)}; known: none, {', '.join(FAULTS)}"
        )
    return faults


def run(
    messages: int = 1_000_000,
    shards: int = 4,
    consumers: int = 2,
    rate: int | None = DEFAULT_RATE,
    scenarios: tuple[tuple[str, ...], ...] = ((), ("sigkill",)),
    timeout: float = 1800.0,
    keep_dir: Path | None = None,
    progress: bool = False,
    report_dir: Path | None = None,
) -> list[RunReport]:
    """One reliability run per scenario, one after another, each on fresh local servers."""
    reports = []
    for faults in scenarios:
        name = "+".join(faults) or "none"
        if progress:
            print(f"-- {name}", flush=True)
        options = RunOptions(
            messages=messages,
            shards=shards,
            consumers=consumers,
            faults=faults,
            local=True,
            timeout=timeout,
            rate=rate,
            progress=sys.stdout if progress else None,
            keep_dir=keep_dir / name if keep_dir is not None else None,
            report_path=report_dir / f"reliability-{name}.png" if report_dir is not None else None,
        )
        reports.append(run_test(options))
        pykka.ActorRegistry.stop_all()
    return reports


def _row(report: RunReport) -> dict[str, Any]:
    options, verdict = report.options, report.verdict
    end_to_end = options.messages / report.end_to_end_seconds if report.end_to_end_seconds else 0
    produced = report.confirmed / report.producer_seconds if report.producer_seconds else 0
    return {
        "scenario": "+".join(options.faults) or "none",
        "records/s e2e": f"{end_to_end:,.0f}" if end_to_end else "-",
        "producer rec/s": f"{produced:,.0f}" if produced else "-",
        "duplicates": f"{verdict.duplicates:,}" if verdict else "-",
        "lost": f"{verdict.lost:,}" if verdict else "-",
        "lag p50/p99 ms": f"{verdict.lag_p50_ms:,.0f} / {verdict.lag_p99_ms:,.0f}"
        if verdict
        else "-",
        "longest pause s": f"{verdict.lag_max_ms / 1000:.1f}",
        "total s": f"{report.total_seconds:.0f}",
        "verdict": "SUCCEEDED"
        if report.succeeded
        else f"FAILED{f' ({report.error})' if report.error else ''}",
    }


def _producer_bound(report: RunReport) -> bool:
    if not report.end_to_end_seconds or not report.producer_seconds:
        return False
    return report.end_to_end_seconds <= 1.1 * report.producer_seconds


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(f"{c:>{widths[c]}}" for c in columns)]
    lines += ["  ".join(f"{r[c]!s:>{widths[c]}}" for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument(
        "--rate",
        type=int,
        default=DEFAULT_RATE,
        help=f"records/s the producer sends (default {DEFAULT_RATE:,}); 0 = the batch settings",
    )
    parser.add_argument(
        "--faults",
        type=_scenario,
        nargs="+",
        default=[(), ("sigkill",)],
        metavar="SCENARIO",
        help="one run each: none, or faults joined by + (default: none sigkill)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--keep-dir", type=Path, default=None, help="keep logs and results here")
    parser.add_argument("--progress", action="store_true", help="print a status line every 2 s")
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw each run over time as DIR/reliability-<faults>.png (matplotlib)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    reports = run(
        args.messages,
        args.shards,
        args.consumers,
        args.rate or None,
        tuple(args.faults),
        args.timeout,
        args.keep_dir,
        args.progress,
        args.plots,
    )
    rate = f"{args.rate:,} records/s asked" if args.rate else "batch settings"
    print(
        f"reliability test on kinesalite + dynalite: {args.messages:,} messages, "
        f"{args.shards} shards, {args.consumers} consumer processes, producer {rate}\n"
        + _table([_row(r) for r in reports])
    )
    for report in reports:
        if _producer_bound(report):
            print(
                f"{'+'.join(report.options.faults) or 'none'}: end to end is within 10 % of the "
                "producer's rate: the consumers kept up, the producer (same cores) is the limit"
            )
    return 0 if all(r.succeeded for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
