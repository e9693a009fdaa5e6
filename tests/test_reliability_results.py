from __future__ import annotations

from pathlib import Path

import pytest

from kinesis_actors._errors import ConfigError
from kinesis_actors.reliability._results import ResultsLog, judge, read_results
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config


def test_results_log_round_trip_and_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "consumer.bin"
    log = ResultsLog(path)
    log.add(1, 20)
    log.add(2, 5)
    assert list(read_results(path)) == []  # nothing is on disk before flush
    assert log.flush() == 2
    log.add(3, 7)
    log.close()
    with path.open("ab") as file:
        file.write(b"\x01\x02\x03")  # a writer killed mid-entry
    assert list(read_results(path)) == [(1, 20), (2, 5), (3, 7)]
    assert list(read_results(tmp_path / "missing.bin")) == []


def test_verdict_counts_duplicates_but_fails_only_on_loss() -> None:
    verdict = judge(5, [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (2, 9), (3, 9)])
    assert (verdict.unique, verdict.duplicates, verdict.lost) == (5, 2, 0)
    assert verdict.succeeded
    lost = judge(5, [(0, 1), (1, 1), (3, 1), (4, 1)])
    assert (lost.lost, lost.succeeded) == (1, False)
    stray = judge(2, [(0, 1), (1, 1), (7, 1)])
    assert (stray.unexpected, stray.succeeded) == (1, False)


def test_verdict_lag_percentiles() -> None:
    verdict = judge(100, [(i, i) for i in range(100)])
    assert verdict.lag_p50_ms == 50
    assert verdict.lag_p99_ms == 99
    assert judge(0, []).lag_p99_ms == 0.0


def test_settings_from_the_sample_config() -> None:
    config = load_reliability_config("kinesis.test.producer.batchSize = 500")
    settings = ReliabilitySettings.from_config(config)
    assert settings.expected_messages == 5_000_000
    assert settings.pitstop_count == 150_000
    assert settings.batch_size == 500
    assert settings.batch_delay == pytest.approx(0.1)
    assert settings.with_overrides(expected_messages=10, batch_size=None).expected_messages == 10
    assert config["kinesis"]["testProducer"]["stream-name"] == "test-kinesis-reliability"


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kinesis\.test\.producer\.batchSize"):
        ReliabilitySettings.from_config(
            load_reliability_config("kinesis.test.producer.batchSize = 0")
        )
