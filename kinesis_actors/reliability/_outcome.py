"""The outcome of one reliability run, and its table for a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinesis_actors.reliability._results import Verdict
    from kinesis_actors.reliability._run import RunOptions

__all__ = ["RunReport"]


@dataclass
class RunReport:
    options: RunOptions
    verdict: Verdict | None = None
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    unconfirmed: int = 0
    producer_seconds: float = 0.0
    end_to_end_seconds: float = 0.0
    total_seconds: float = 0.0
    consumer_exits: list[int] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return (
            self.error is None
            and self.verdict is not None
            and self.verdict.succeeded
            and self.failed == 0
            and self.unconfirmed == 0
        )

    def table(self) -> str:
        verdict = self.verdict
        rows = [
            ("messages", self.options.messages),
            ("shards / consumers", f"{self.options.shards} / {self.options.consumers}"),
            ("faults", ", ".join(self.options.faults) or "none"),
            ("sent / confirmed", f"{self.sent} / {self.confirmed}"),
            ("failed sends", self.failed),
            ("unconfirmed sends", self.unconfirmed),
            ("consumed (with duplicates)", verdict.consumed if verdict else "-"),
            ("unique", verdict.unique if verdict else "-"),
            ("duplicates", verdict.duplicates if verdict else "-"),
            ("lost", verdict.lost if verdict else "-"),
            (
                "records/s end to end",
                round(self.options.messages / self.end_to_end_seconds)
                if self.end_to_end_seconds
                else "-",
            ),
            (
                "lag p50 / p99 (ms)",
                f"{verdict.lag_p50_ms:.0f} / {verdict.lag_p99_ms:.0f}" if verdict else "-",
            ),
            (
                "longest pause in consumption (s)",
                f"{verdict.lag_max_ms / 1000:.1f}" if verdict else "-",
            ),
            (
                "throttles injected (put/get/lease)",
                "/".join(str(self.injected.get(k, 0)) for k in ("put", "get", "lease"))
                if "throttle" in self.options.faults
                else "-",
            ),
            (
                "verdict",
                "SUCCEEDED"
                if self.succeeded
                else f"FAILED{f' ({self.error})' if self.error else ''}",
            ),
        ]
        width = max(len(str(name)) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
