"""A fleet of `lease_worker.py` processes sharing one stream and lease table, and their logs.

Used by the multi-process lease tests and by ``benchmarks/failover.py``. Each worker's own
gained/lost log (wall-clock times, one host) tells who believed it held which shard when, so
double ownership can be checked after the fact (`LeaseFleet.overlaps`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CONSUMER_WORKER", "LeaseFleet", "Overlap", "WorkerProcess", "wait_until"]

LEASE_WORKER = Path(__file__).resolve().parent / "lease_worker.py"
#: A real consumer (`consumer_worker.py`) that also prints its gained / lost leases.
CONSUMER_WORKER = Path(__file__).resolve().parent / "consumer_worker.py"


def wait_until(condition: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    """Poll ``condition`` every 20 ms; returns the wall-clock time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(0.02)
    return time.time()


class WorkerProcess:
    """One worker process and the events it printed so far."""

    def __init__(self, worker_id: str, argv: list[str], stderr_path: Path) -> None:
        self.worker_id = worker_id
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=dict(os.environ)
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        #: Wall-clock time of a SIGKILL sent by `kill`, ending every lease it believed it held.
        self.killed_at: float | None = None
        self._stop_requested = False
        self._reader = threading.Thread(target=self._read, name=f"read-{worker_id}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                with self._lock:
                    self.events.append(json.loads(line))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.snapshot() if e["event"] == event), None)

    def held(self) -> set[str]:
        """The shards this worker believes it holds, by its own log."""
        held: set[str] = set()
        for event in self.snapshot():
            if event["event"] == "gained":
                held |= set(event["shards"])
            elif event["event"] == "lost":
                held -= set(event["shards"])
            elif event["event"] == "stopping":
                held.clear()
        return set() if self.killed_at is not None else held

    def kill(self) -> float:
        """SIGKILL, as a crash; returns the wall-clock time."""
        self.killed_at = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._reader.join()
        return self.killed_at

    def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The worker's call counters now (SIGUSR1, then its ``stats`` event)."""
        count = sum(1 for event in self.snapshot() if event["event"] == "stats")
        self.process.send_signal(signal.SIGUSR1)
        wait_until(
            lambda: sum(1 for event in self.snapshot() if event["event"] == "stats") > count,
            timeout,
            what=f"{self.worker_id} stats",
        )
        return [event for event in self.snapshot() if event["event"] == "stats"][-1]

    def request_stop(self) -> None:
        """SIGTERM, once: a graceful stop. (A second one could hit the exiting interpreter.)"""
        if not self._stop_requested and self.process.poll() is None:
            self._stop_requested = True
            self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 30.0) -> None:
        """Stop gracefully (`request_stop`) and wait for the process to exit."""
        self.request_stop()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reader.join()
        self._stderr.close()

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Overlap:
    """Two live workers both believed they held ``shard_id`` for ``seconds``."""

    shard_id: str
    workers: tuple[str, str]
    seconds: float


class LeaseFleet:
    """Starts workers on one stream and table; `close` stops every one still running."""

    def __init__(
        self,
        stream: str,
        table: str,
        *,
        failover_ms: int,
        script: Path = LEASE_WORKER,
        **options: Any,
    ) -> None:
        self.script = script
        self.stream = stream
        self.table = table
        self.failover_ms = failover_ms
        self.options = options
        self.workers: dict[str, WorkerProcess] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="lease-fleet-")

    def start(self, worker_id: str) -> WorkerProcess:
        argv = [sys.executable, str(self.script), "--stream", self.stream, "--table", self.table]
        argv += ["--worker-id", worker_id, "--failover-ms", str(self.failover_ms)]
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not False:
                argv += [flag, str(value)]
        worker = WorkerProcess(worker_id, argv, Path(self._tmp.name) / f"{worker_id}.stderr")
        self.workers[worker_id] = worker
        return worker

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.process.poll() is None]

    def held(self) -> dict[str, set[str]]:
        return {worker.worker_id: worker.held() for worker in self.live()}

    def intervals(self) -> dict[str, list[tuple[str, float, float]]]:
        """shard -> (worker, from, to) for every time a worker believed it held the shard."""
        now = time.time()
        found: dict[str, list[tuple[str, float, float]]] = {}
        for worker in self.workers.values():
            since: dict[str, float] = {}
            for event in worker.snapshot():
                ended = []
                if event["event"] == "gained":
                    for shard in event["shards"]:
                        since.setdefault(shard, event["t"])
                elif event["event"] in {"lost", "stopping"}:
                    ended = event["shards"]
                for shard in ended:
                    if shard in since:
                        found.setdefault(shard, []).append(
                            (worker.worker_id, since.pop(shard), event["t"])
                        )
            end = worker.killed_at or now
            for shard, start in since.items():
                found.setdefault(shard, []).append((worker.worker_id, start, end))
        return found

    def overlaps(self) -> list[Overlap]:
        """Every time two workers' beliefs about holding one shard overlapped."""
        result: list[Overlap] = []
        for shard, spans in self.intervals().items():
            for i, (worker_a, start_a, end_a) in enumerate(spans):
                for worker_b, start_b, end_b in spans[i + 1 :]:
                    seconds = min(end_a, end_b) - max(start_a, start_b)
                    if worker_a != worker_b and seconds > 0:
                        result.append(Overlap(shard, (worker_a, worker_b), seconds))
        return result

    def close(self) -> None:
        for worker in self.workers.values():
            worker.terminate()
        self._tmp.cleanup()
