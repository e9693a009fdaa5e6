"""The reliability run's report: per-second series from the results files, HTML and PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kinesis_actors.reliability._results import ResultsLog, read_timeline
from kinesis_actors.reliability._timeline import Fault, report_path, timeline, write_report

START = 1_000_000


def test_entries_are_bucketed_by_second_with_duplicates_and_faults() -> None:
    entries = [
        (0, 10, START + 100),
        (1, 30, START + 900),
        (2, 50, START + 1_200),
        (1, 400, START + 2_500),  # delivered again after a failover
        (3, 20, START + 2_600),
    ]
    series = timeline(entries, START, [Fault(START + 2_000, "sigkill")])
    assert series.seconds == (0, 1, 2)
    assert series.consumed == (2, 1, 2)
    assert series.duplicates == (0, 0, 1)
    assert series.lag_max_ms == (30.0, 50.0, 400.0)
    assert series.lag_p50_ms == (30.0, 50.0, 400.0)
    assert series.faults == ((2.0, "sigkill"),)


def test_results_files_carry_when_each_integer_was_consumed(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "results.bin")
    log.add(7, 12)
    log.close()
    [(value, lag, at_ms)] = list(read_timeline(tmp_path / "results.bin"))
    assert (value, lag) == (7, 12)
    assert at_ms > START


def test_html_report_holds_the_summary_the_charts_and_the_faults(tmp_path: Path) -> None:
    series = timeline(
        [(0, 5, START), (1, 7, START + 1_500)], START, [Fault(START + 1_000, "reshard")]
    )
    path = tmp_path / "run.html"
    write_report(path, series, "verdict SUCCEEDED\nlost 0")
    page = path.read_text()
    assert "verdict SUCCEEDED" in page
    assert page.count("<svg") == 3
    assert "1.0 s: reshard" in page


def test_png_report_is_an_image(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "run.png"
    write_report(path, timeline([(0, 5, START)], START, []), "summary")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["run.txt", "missing-folder/run.html"])
def test_a_report_path_that_cannot_be_written_is_a_usage_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="run"):
        report_path(str(tmp_path / name))
