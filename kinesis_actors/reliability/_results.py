"""What consumers consumed, on disk before it is acknowledged, and the verdict over all of it.

A consumer process appends each integer it consumed, with the record's lag and the time it was
consumed, to its own results file and acknowledges only after the write is flushed: a consumer
killed with SIGKILL has lost nothing it acknowledged, and what it had not acknowledged is
delivered again (a duplicate, never a loss). The run command reads every file to decide.
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ResultsLog", "Verdict", "judge", "read_results", "read_timeline"]

_ENTRY = struct.Struct("<qIQ")  # the integer, its lag in milliseconds, consumed at (epoch ms)


class ResultsLog:
    """Append-only (integer, lag ms, consumed at) entries, written by one consumer process."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("ab")
        self._pending: list[bytes] = []

    def add(self, value: int, lag_ms: int) -> None:
        consumed_at_ms = int(time.time() * 1000)
        self._pending.append(_ENTRY.pack(value, max(0, min(lag_ms, 2**32 - 1)), consumed_at_ms))

    def flush(self) -> int:
        """Write what was added; returns how many entries reached the file."""
        count = len(self._pending)
        if count:
            self._file.write(b"".join(self._pending))
            self._file.flush()
            self._pending.clear()
        return count

    def close(self) -> None:
        self.flush()
        self._file.close()


def read_timeline(path: Path) -> Iterator[tuple[int, int, int]]:
    """Every complete (integer, lag ms, consumed at epoch ms) entry of a results file.

    A torn last entry of a killed writer is skipped.
    """
    data = path.read_bytes() if path.exists() else b""
    usable = len(data) - len(data) % _ENTRY.size
    yield from _ENTRY.iter_unpack(data[:usable])


def read_results(path: Path) -> Iterator[tuple[int, int]]:
    """Every complete (integer, lag ms) entry of a results file."""
    for value, lag_ms, _ in read_timeline(path):
        yield value, lag_ms


@dataclass(frozen=True)
class Verdict:
    """A run's outcome: loss is failure; duplicates are reported (delivery is at-least-once)."""

    expected: int
    consumed: int
    unique: int
    duplicates: int
    lost: int
    unexpected: int
    lag_p50_ms: float
    lag_p99_ms: float
    #: The longest a record waited between its arrival in Kinesis and its consumption: the
    #: longest pause a shard's consumption made (a failover, a reshard, a throttle).
    lag_max_ms: float

    @property
    def succeeded(self) -> bool:
        return self.lost == 0 and self.unexpected == 0


def _percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return float(sorted_values[index])


def judge(expected: int, entries: Iterable[tuple[int, int]]) -> Verdict:
    counts: Counter[int] = Counter()
    lags: list[int] = []
    for value, lag in entries:
        counts[value] += 1
        lags.append(lag)
    consumed = sum(counts.values())
    in_range = sum(1 for value in counts if 0 <= value < expected)
    lags.sort()
    return Verdict(
        expected=expected,
        consumed=consumed,
        unique=len(counts),
        duplicates=consumed - len(counts),
        lost=expected - in_range,
        unexpected=len(counts) - in_range,
        lag_p50_ms=_percentile(lags, 0.50),
        lag_p99_ms=_percentile(lags, 0.99),
        lag_max_ms=float(lags[-1]) if lags else 0.0,
    )
