"""What the limits proxy counted: calls and refusals per API, throttled PutRecords entries.

The proxy keeps a :class:`LimitsCounters`; tests and benchmarks read a :class:`LimitsStats`
snapshot (from the proxy object in-process, or as JSON from ``GET /_limits/stats`` on a proxy in
another process) and subtract two snapshots to look at one phase of a run.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["STATS_PATH", "ApiCounts", "LimitsCounters", "LimitsStats", "fetch_stats"]

#: Path of the proxy's statistics document (GET, JSON).
STATS_PATH: Final = "/_limits/stats"


@dataclass(frozen=True)
class ApiCounts:
    """Counts for one API, named ``service.Operation`` (``kinesis.GetRecords``).

    ``refused``: calls answered with a throttling error by the proxy. ``entries`` and
    ``throttled_entries``: PutRecords entries sent and answered with a per-entry
    ``ProvisionedThroughputExceededException``. ``records`` and ``bytes``: what answered
    GetRecords calls returned (or answered put calls stored).
    """

    calls: int = 0
    refused: int = 0
    entries: int = 0
    throttled_entries: int = 0
    records: int = 0
    bytes: int = 0

    def __add__(self, other: ApiCounts) -> ApiCounts:
        return ApiCounts(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))

    def __sub__(self, other: ApiCounts) -> ApiCounts:
        return ApiCounts(*(a - b for a, b in zip(_values(self), _values(other), strict=True)))


def _values(counts: ApiCounts) -> tuple[int, ...]:
    return dataclasses.astuple(counts)


@dataclass(frozen=True)
class LimitsStats:
    """A snapshot of the proxy's counters; ``later - earlier`` is what happened in between."""

    apis: dict[str, ApiCounts]

    def api(self, name: str) -> ApiCounts:
        """Counts of ``name`` (``kinesis.GetRecords``); zeros if it was never called."""
        return self.apis.get(name, ApiCounts())

    @property
    def refused(self) -> int:
        return sum(counts.refused for counts in self.apis.values())

    @property
    def throttled_entries(self) -> int:
        return sum(counts.throttled_entries for counts in self.apis.values())

    def __sub__(self, other: LimitsStats) -> LimitsStats:
        names = self.apis.keys() | other.apis.keys()
        return LimitsStats({name: self.api(name) - other.api(name) for name in sorted(names)})

    def to_json(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(counts) for name, counts in self.apis.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LimitsStats:
        return cls({name: ApiCounts(**counts) for name, counts in data.items()})

    def table(self) -> str:
        """A fixed-width table, one API per line, for the exit report."""
        headers = ("api", "calls", "refused", "entries", "throttled", "records", "bytes")
        rows = [
            (name, *(str(value) for value in _values(counts)))
            for name, counts in sorted(self.apis.items())
        ]
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        lines = [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            for row in [headers, *rows]
        ]
        return "\n".join(lines)


class LimitsCounters:
    """The proxy's live counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apis: dict[str, ApiCounts] = {}

    def add(self, name: str, **counts: int) -> None:
        """Add ``counts`` (fields of :class:`ApiCounts`) to API ``name``."""
        with self._lock:
            self._apis[name] = self._apis.get(name, ApiCounts()) + ApiCounts(**counts)

    def snapshot(self) -> LimitsStats:
        with self._lock:
            return LimitsStats(dict(self._apis))


def fetch_stats(endpoint: str, timeout: float = 5.0) -> LimitsStats:
    """The statistics of the limits proxy at ``endpoint`` (``http://127.0.0.1:PORT``)."""
    with urllib.request.urlopen(endpoint.rstrip("/") + STATS_PATH, timeout=timeout) as response:
        return LimitsStats.from_json(json.loads(response.read()))
