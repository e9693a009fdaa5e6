"""Failover time: from a worker's exit to another worker holding its shards, ours vs. KCL-style.

Run ``python benchmarks/failover.py`` (kinesalite + dynalite must be installed, see
``kinesis-actors local --install``); ``--tuned-only`` skips the slow KCL-default timings.

Each scenario runs two worker processes (``integration/lease_worker.py``) on a fresh 4-shard
stream: the leaving worker holds every lease, the survivor has done its first taker run; half a
taker interval later (the average phase) the leaving worker exits, gracefully (SIGTERM: stop
taking, then stop) or by SIGKILL, and the clock runs until the survivor's own log shows it holds
every shard the leaver held. "Holding" stands
for "processing": a consumer starts its shard workers on the LeasesGained message.

"KCL-style" is the same code with ``releaseLeasesOnShutdown = false``: leases are not released on
shutdown, so they must expire, as with the KCL 2.x (its graceful shutdown too waits for lease
expiry). Since the scans follow the membership heartbeats, this variant too finds a departed
worker's leases at their expiry, faster than the KCL's own taker (up to two taker intervals):
it measures release on shutdown, not the KCL's taker. Both are measured in the same run, with the
KCL-default timings (failover 10 s, taker every 20.05 s) and with tuned ones. The write rate per
lease (and the survivor's scans per second) is measured over five renewal intervals after each
takeover, against the KCL's renewal rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.lease_fleet import LeaseFleet, wait_until
from kinesis_actors.testing._local import LocalKinesis

__all__ = ["Result", "main", "run"]

SHARDS = 4
EPSILON = 0.025
#: The steady-state call rates are measured over this many renewal intervals after a takeover.
RATE_WINDOW_RENEWALS = 5


@dataclass(frozen=True)
class Result:
    """One measured failover."""

    timings: str
    exit: str
    style: str
    seconds: float
    writes_per_lease_second: float
    scans_per_second: float


def _measure(
    local: LocalKinesis, *, failover_ms: int, poll_ms: int, release: bool, kill: bool
) -> tuple[float, dict[str, float]]:
    """One scenario; returns the failover time and the survivor's call rates afterwards."""
    kinesis = local.kinesis_client()
    stream = f"failover-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    fleet = LeaseFleet(
        stream, f"{stream}-leases", failover_ms=failover_ms, poll_ms=poll_ms, no_release=not release
    )
    try:
        leaver = fleet.start("leaver")
        wait_until(lambda: len(leaver.held()) == SHARDS, timeout=60, what="leaver holds all")
        survivor = fleet.start("survivor")
        wait_until(
            lambda: (
                len(survivor.held()) >= 1 and len(leaver.held()) + len(survivor.held()) == SHARDS
            ),
            timeout=60,
            what="survivor's first leases",
        )
        # Exit half a taker interval after the survivor's full taker run: the average phase.
        first_gain = survivor.first("gained")
        assert first_gain is not None
        taker_interval = (failover_ms / 1000 + EPSILON) * 2
        time.sleep(max(first_gain["t"] + taker_interval / 2 - time.time(), 0.0))
        orphans = leaver.held()
        if kill:
            exited = leaver.kill()
        else:
            leaver.request_stop()
            wait_until(lambda: leaver.first("leave") is not None, timeout=30, what="stopping")
            leave = leaver.first("leave")  # the stop begins: hand-over, then release
            assert leave is not None
            exited = leave["t"]
        timeout = 4 * (failover_ms / 1000 + EPSILON) * 2 + 10
        taken = wait_until(lambda: orphans <= survivor.held(), timeout=timeout, what="takeover")
        before = survivor.stats()
        time.sleep(RATE_WINDOW_RENEWALS * (failover_ms / 1000 / 3 - EPSILON))
        after = survivor.stats()
        rates = {
            "writes_per_lease_second": (after["writes"] - before["writes"])
            / (after["lease_seconds"] - before["lease_seconds"]),
            "scans_per_second": (after["scans"] - before["scans"])
            / (after["seconds"] - before["seconds"]),
        }
        return taken - exited, rates
    finally:
        fleet.close()
        kinesis.delete_stream(StreamName=stream)
        local.dynamodb_client().delete_table(TableName=fleet.table)


def run(
    *, tuned_failover_ms: int = 2000, tuned_poll_ms: int = 250, defaults: bool = True
) -> list[Result]:
    """Every scenario, on emulators started for the run."""
    timings = [(f"tuned ({tuned_failover_ms / 1000:g} s)", tuned_failover_ms, tuned_poll_ms)]
    if defaults:
        timings.insert(0, ("KCL defaults (10 s)", 10000, 1000))
    results: list[Result] = []
    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())
        for label, failover_ms, poll_ms in timings:
            for kill in (False, True):
                for release in (True, False):
                    seconds, rates = _measure(
                        local, failover_ms=failover_ms, poll_ms=poll_ms, release=release, kill=kill
                    )
                    results.append(
                        Result(
                            timings=label,
                            exit="SIGKILL" if kill else "graceful",
                            style="ours" if release else "KCL-style",
                            seconds=seconds,
                            writes_per_lease_second=rates["writes_per_lease_second"],
                            scans_per_second=rates["scans_per_second"],
                        )
                    )
                    print(f"  {results[-1]}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=os.environ.get("KINESIS_ACTORS_LOG_LEVEL", "WARNING")
    )  # tables, not log lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned-failover-ms", type=int, default=2000)
    parser.add_argument("--tuned-poll-ms", type=int, default=250)
    parser.add_argument("--tuned-only", action="store_true", help="skip the KCL-default timings")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="also draw the failover timeline, ours vs KCL-style (matplotlib: the docs extra)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(
        tuned_failover_ms=args.tuned_failover_ms,
        tuned_poll_ms=args.tuned_poll_ms,
        defaults=not args.tuned_only,
    )
    print(f"\nfailover, 2 worker processes, {SHARDS} shards, kinesalite + dynalite")
    print(f"{'timings':22}{'exit':10}{'ours':>10}{'KCL-style':>12}{'ours/KCL':>10}")
    for ours in (r for r in results if r.style == "ours"):
        kcl = next(
            r
            for r in results
            if r.style != "ours" and (r.timings, r.exit) == (ours.timings, ours.exit)
        )
        print(
            f"{ours.timings:22}{ours.exit:10}{ours.seconds:>9.2f}s{kcl.seconds:>11.2f}s"
            f"{ours.seconds / kcl.seconds:>10.3f}"
        )
    print("\nDynamoDB calls of the survivor")
    print(f"{'timings':22}{'style':12}{'writes/lease/s':>16}{'KCL renewals':>14}{'scans/s':>9}")
    for result in results:
        if result.exit != "graceful":
            continue
        failover = 10.0 if "defaults" in result.timings else args.tuned_failover_ms / 1000
        renewals = 1 / (failover / 3 - EPSILON)
        print(
            f"{result.timings:22}{result.style:12}{result.writes_per_lease_second:>16.2f}"
            f"{renewals:>14.2f}{result.scans_per_second:>9.2f}"
        )
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.plot:
        plot_timeline(results, args.plot)
        print(f"timeline drawn: {args.plot}")


def plot_timeline(results: list[Result], path: Path) -> None:
    """Horizontal bars: seconds from a worker's exit to the survivor holding its shards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [(r.timings, r.exit) for r in results if r.style == "ours"]
    figure, axis = plt.subplots(figsize=(9, 0.9 + 0.7 * len(scenarios)))
    for row, scenario in enumerate(scenarios):
        for offset, style, color in ((-0.18, "ours", "tab:blue"), (0.18, "KCL-style", "tab:gray")):
            seconds = next(
                r.seconds for r in results if (r.timings, r.exit, r.style) == (*scenario, style)
            )
            axis.barh(
                row + offset, seconds, height=0.34, color=color, label=style if row == 0 else None
            )
            axis.text(seconds + 0.2, row + offset, f"{seconds:.2f} s", va="center", fontsize=8)
    axis.set_yticks(range(len(scenarios)), [f"{timings}, {exit_}" for timings, exit_ in scenarios])
    axis.invert_yaxis()
    axis.set_xlabel("seconds from the worker's exit until the survivor holds its shards")
    axis.set_title("Failover: ours vs KCL-style (2 workers, 4 shards, kinesalite + dynalite)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
