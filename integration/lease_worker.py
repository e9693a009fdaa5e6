"""One lease-coordinating worker process, for the multi-process lease tests and the benchmark.

Runs a `LeaseCoordinator` against the endpoints in ``AWS_ENDPOINT_URL_KINESIS`` /
``AWS_ENDPOINT_URL_DYNAMODB`` and prints one JSON object per line on stdout, each with ``t``
(wall-clock seconds, comparable across processes on one host) and ``event``:

* ``started``; ``gained`` / ``lost`` with ``shards`` (as the subscriber hears them); a hand-off
  request is answered as a consumer does: ``lost`` (processing ends: the final checkpoint is
  written here) with ``handoff`` true, then the lease is released to the worker that asked;
* on SIGTERM or SIGINT, a graceful stop: ``leave`` (the stop begins), the coordinator's
  hand-over (other workers ask for the leases, answered as above, while the rest still process),
  then ``stopping`` with the ``shards`` still held (processing ends here, as a consumer's would
  after its final checkpoints), then the coordinator stops (releasing the leases unless
  ``--no-release``), then ``stopped`` with ``writes`` and ``scans`` (DynamoDB
  calls made), ``seconds`` (run time) and ``lease_seconds`` (time-integral of leases held), from
  which the write rate per lease follows;
* on SIGUSR1, ``stats`` with the same counters so far (rates over a window are differences).

Logs go to stderr. Usage::

    python integration/lease_worker.py --stream S --table T --worker-id W [--failover-ms 1500]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

import structlog

from kinesis_actors._aws import consumer_clients, direct_path_of
from kinesis_actors._config import ConsumerConf, load_config
from kinesis_actors._leases import LeaseCoordinator, LeaseEvent, LeasesGained
from kinesis_actors._leases.lease import CoordinatorFailed, LeaseHandoffRequested

#: DynamoDB calls counted: the writes, and the scans of the taker.
_COUNTED = ("PutItem", "UpdateItem", "DeleteItem", "Scan")


class EventLog:
    """Prints events as JSON lines and integrates the number of leases held over time."""

    def __init__(self) -> None:
        self.coordinator: LeaseCoordinator | None = None
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._since = time.monotonic()
        self.lease_seconds = 0.0
        self.calls: Counter[str] = Counter()

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)

    def _account(self) -> None:
        now = time.monotonic()
        self.lease_seconds += len(self._held) * (now - self._since)
        self._since = now

    def __call__(self, message: LeaseEvent) -> None:
        if isinstance(message, CoordinatorFailed):
            self.emit("failed", error=str(message.error))
            return
        if isinstance(message, LeaseHandoffRequested):
            self._hand_off(message)
            return
        shards = sorted(lease.shard_id for lease in message.leases)
        with self._lock:
            self._account()
            if isinstance(message, LeasesGained):
                self._held |= set(shards)
            else:
                self._held -= set(shards)
        self.emit("gained" if isinstance(message, LeasesGained) else "lost", shards=shards)

    def _hand_off(self, message: LeaseHandoffRequested) -> None:
        shards = sorted(lease.shard_id for lease in message.leases)
        with self._lock:
            self._account()
            self._held -= set(shards)
        self.emit("lost", shards=shards, handoff=True)
        assert self.coordinator is not None
        for lease in message.leases:
            self.coordinator.release(lease.shard_id, lease.concurrency_token)

    def stats(self, event: str, started: float) -> None:
        with self._lock:
            self._account()
            fields = {
                "writes": self.calls["writes"],
                "scans": self.calls["scans"],
                "seconds": time.monotonic() - started,
                "lease_seconds": self.lease_seconds,
            }
        self.emit(event, **fields)

    def stopping(self) -> None:
        with self._lock:
            self._account()
            shards = sorted(self._held)
            self._held.clear()
        self.emit("stopping", shards=shards)

    def count_call(self, event_name: str, **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls["scans" if operation == "Scan" else "writes"] += 1


def worker_conf(
    stream: str,
    table: str,
    worker_id: str,
    *,
    failover_ms: int,
    poll_ms: int = 1000,
    release: bool = True,
    shard_sync_ms: int = 60000,
) -> ConsumerConf:
    """The consumer config of a test worker: TRIM_HORIZON, the given lease timings."""
    return ConsumerConf.from_config(
        load_config(
            f"""kinesis {{ application-name = lease-tests, worker {{
                stream-name = "{stream}"
                kcl {{
                    tableName = "{table}", workerId = "{worker_id}"
                    initialPositionInStream = TRIM_HORIZON, failoverTimeMillis = {failover_ms}
                    shardSyncIntervalMillis = {shard_sync_ms}
                    releaseLeasesOnShutdown = {str(release).lower()}
                    releasedLeasePollMillis = {poll_ms}
                }} }} }}"""
        ),
        "worker",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--failover-ms", type=int, default=10000)
    parser.add_argument("--poll-ms", type=int, default=1000, help="releasedLeasePollMillis")
    parser.add_argument("--no-release", action="store_true", help="the KCL's shutdown")
    args = parser.parse_args()

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(30),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    conf = worker_conf(
        args.stream,
        args.table,
        args.worker_id,
        failover_ms=args.failover_ms,
        poll_ms=args.poll_ms,
        release=not args.no_release,
    )
    events = EventLog()
    kinesis, dynamodb = consumer_clients(conf.kcl)
    for operation in _COUNTED:
        dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", events.count_call)
    direct = direct_path_of(dynamodb)
    if direct is not None:  # the lease writes that skip botocore (and so its events) count too
        direct_update = direct.update_item

        def counted_update(client: Any, **params: Any) -> dict[str, Any]:
            events.count_call("before-call.dynamodb.UpdateItem")
            return direct_update(client, **params)

        direct.update_item = counted_update  # type: ignore[method-assign]
    coordinator = LeaseCoordinator.from_consumer_conf(
        conf, kinesis=kinesis, dynamodb=dynamodb, subscriber=events
    )
    events.coordinator = coordinator
    stop, stats = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGUSR1, lambda signum, frame: stats.set())
    started = time.monotonic()
    coordinator.start()
    events.emit("started", worker=args.worker_id)
    while not stop.wait(0.05):
        if stats.is_set():
            stats.clear()
            events.stats("stats", started)
    events.emit("leave")
    coordinator.hand_over()  # nothing to wait for with --no-release (the KCL's shutdown)
    coordinator.stop_taking()
    events.stopping()
    coordinator.stop()
    events.stats("stopped", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
