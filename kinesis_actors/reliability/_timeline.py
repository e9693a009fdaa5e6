"""A reliability run as pictures: throughput, lag and duplicates over time, and when faults hit.

``reliability run --report PATH`` writes one beside the text summary: ``.html`` is a
self-contained page (inline SVG, no dependency), ``.png`` a matplotlib figure (the ``docs``
extra). Both come from the consumers' results files, which hold when each integer was consumed.
"""

from __future__ import annotations

import argparse
import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Fault", "Timeline", "report_path", "timeline", "write_report"]

#: The report formats, by file suffix.
FORMATS = (".html", ".png")


@dataclass(frozen=True)
class Fault:
    """A fault the run injected, and when (epoch milliseconds)."""

    at_ms: int
    name: str


@dataclass(frozen=True)
class Timeline:
    """Per-second series of a run, second 0 being the run's start."""

    seconds: tuple[int, ...]
    consumed: tuple[int, ...]
    duplicates: tuple[int, ...]
    lag_p50_ms: tuple[float, ...]
    lag_max_ms: tuple[float, ...]
    faults: tuple[tuple[float, str], ...]


def report_path(text: str) -> Path:
    """The ``--report`` argument, refused before the run starts if it could not be written."""
    path = Path(text)
    if path.suffix.lower() not in FORMATS:
        raise argparse.ArgumentTypeError(f"{text}: a report is .html or .png")
    if not path.parent.exists():
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} does not exist")
    if path.suffix.lower() == ".png" and _pyplot() is None:
        raise argparse.ArgumentTypeError(
            f"{text}: a .png report needs matplotlib (pip install 'kinesis-actors[docs]'); "
            "or write .html"
        )
    return path


def timeline(
    entries: Iterable[tuple[int, int, int]], started_at_ms: int, faults: Sequence[Fault]
) -> Timeline:
    """Bucket (integer, lag ms, consumed at ms) entries by second since the run started."""
    ordered = sorted(entries, key=lambda entry: entry[2])
    consumed: Counter[int] = Counter()
    duplicates: Counter[int] = Counter()
    lags: dict[int, list[int]] = {}
    seen: set[int] = set()
    for value, lag_ms, at_ms in ordered:
        second = max(0, (at_ms - started_at_ms) // 1000)
        consumed[second] += 1
        if value in seen:
            duplicates[second] += 1
        seen.add(value)
        lags.setdefault(second, []).append(lag_ms)
    last = max(consumed, default=0)
    seconds = tuple(range(last + 1))
    return Timeline(
        seconds=seconds,
        consumed=tuple(consumed[second] for second in seconds),
        duplicates=tuple(duplicates[second] for second in seconds),
        lag_p50_ms=tuple(_median(lags.get(second, [])) for second in seconds),
        lag_max_ms=tuple(float(max(lags.get(second, [0]))) for second in seconds),
        faults=tuple(((fault.at_ms - started_at_ms) / 1000, fault.name) for fault in faults),
    )


def write_report(path: Path, series: Timeline, summary: str) -> None:
    """Write the report in the format its suffix names."""
    if path.suffix.lower() == ".png":
        _write_png(path, series)
    else:
        path.write_text(_html(series, summary), encoding="utf-8")


def _median(values: list[int]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])


# --- HTML: inline SVG line charts -------------------------------------------------------------

_WIDTH, _HEIGHT, _MARGIN = 860, 200, 50


def _html(series: Timeline, summary: str) -> str:
    charts = [
        _svg_chart(
            series, "records consumed per second", [("consumed", "#2f6db5", series.consumed)]
        ),
        _svg_chart(
            series,
            "lag (ms): arrival in Kinesis to consumption",
            [("p50", "#2f8f2f", series.lag_p50_ms), ("max", "#c0392b", series.lag_max_ms)],
        ),
        _svg_chart(series, "duplicates per second", [("duplicates", "#8e44ad", series.duplicates)]),
    ]
    faults = (
        "".join(f"<li>{at:.1f} s: {html.escape(name)}</li>" for at, name in series.faults)
        or "<li>none</li>"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Reliability run</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px}"
        "pre{background:#f6f6f6;padding:12px}</style></head><body>"
        "<h1>Reliability run</h1>"
        f"<pre>{html.escape(summary)}</pre>"
        f"<h2>Faults injected</h2><ul>{faults}</ul>"
        "<h2>Over time</h2>" + "".join(charts) + "</body></html>\n"
    )


def _svg_chart(series: Timeline, title: str, lines: list[tuple[str, str, Sequence[float]]]) -> str:
    top = max((max(values, default=0) for _, _, values in lines), default=0) or 1
    span = max(len(series.seconds) - 1, 1)

    def x(second: float) -> float:
        return _MARGIN + (_WIDTH - 2 * _MARGIN) * second / span

    def y(value: float) -> float:
        return _HEIGHT - _MARGIN / 2 - (_HEIGHT - _MARGIN) * value / top

    parts = [
        f"<h3>{html.escape(title)}</h3>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}'>",
        f"<line x1='{_MARGIN}' y1='{y(0)}' x2='{_WIDTH - _MARGIN}' y2='{y(0)}' stroke='#999'/>",
        f"<text x='{_MARGIN - 6}' y='{y(top) + 4}' text-anchor='end' font-size='11'>"
        f"{top:,.0f}</text>",
        f"<text x='{_MARGIN - 6}' y='{y(0) + 4}' text-anchor='end' font-size='11'>0</text>",
        f"<text x='{_WIDTH - _MARGIN}' y='{_HEIGHT - 4}' text-anchor='end' font-size='11'>"
        f"{span} s</text>",
    ]
    for at, name in series.faults:
        parts.append(
            f"<line x1='{x(at)}' y1='{y(top)}' x2='{x(at)}' y2='{y(0)}' stroke='#e67e22' "
            f"stroke-dasharray='4,3'><title>{html.escape(name)}</title></line>"
        )
    for index, (label, color, values) in enumerate(lines):
        points = " ".join(f"{x(second):.1f},{y(value):.1f}" for second, value in enumerate(values))
        parts.append(
            f"<polyline points='{points}' fill='none' stroke='{color}' stroke-width='1.5'/>"
        )
        parts.append(
            f"<text x='{_WIDTH - _MARGIN + 4}' y='{y(top) + 14 * (index + 1)}' font-size='11' "
            f"fill='{color}'>{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# --- PNG: matplotlib ---------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib's pyplot on a file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _write_png(path: Path, series: Timeline) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    panels: list[tuple[str, list[tuple[str, Sequence[float]]]]] = [
        ("records/s", [("consumed", series.consumed)]),
        ("lag (ms)", [("p50", series.lag_p50_ms), ("max", series.lag_max_ms)]),
        ("duplicates/s", [("duplicates", series.duplicates)]),
    ]
    for axis, (label, lines) in zip(axes, panels, strict=True):
        for name, values in lines:
            axis.plot(series.seconds, values, label=name)
        for at, fault in series.faults:
            axis.axvline(at, color="tab:orange", linestyle="--", linewidth=1)
            axis.annotate(fault, (at, 0), fontsize=7, rotation=90, color="tab:orange")
        axis.set_ylabel(label)
        axis.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds since the run started")
    figure.suptitle("Reliability run: throughput, lag and duplicates over time")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
