"""The reliability test's settings: ``kinesis.test`` and the sample producer and consumer."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Self

from pyhocon import ConfigTree

from kinesis_actors._config import load_config, to_seconds
from kinesis_actors._errors import ConfigError

__all__ = ["ReliabilitySettings", "load_reliability_config"]


def load_reliability_config(source: str | os.PathLike[str] | None = None) -> ConfigTree:
    """The reliability test's config: ``source`` (as for ``load_config``) over the sample config."""
    sample = resources.files("kinesis_actors.reliability").joinpath("reliability.conf").read_text()
    return load_config(source, layers=[sample])


def _number(tree: ConfigTree, key: str, minimum: int) -> int:
    value = tree.get(key, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"kinesis.test.{key}", f"expected an integer >= {minimum}, got {value!r}")
    return value


def _duration(tree: ConfigTree, key: str) -> float:
    try:
        return to_seconds(tree.get(key, None), 1e-3)
    except ValueError as exc:
        raise ConfigError(f"kinesis.test.{key}", str(exc)) from None


@dataclass(frozen=True)
class ReliabilitySettings:
    """``kinesis.test``; durations in seconds."""

    expected_messages: int
    pitstop_count: int
    finish_quiet: float
    results_flush: float
    batch_size: int
    batch_delay: float
    producer_name: str = "testProducer"
    consumer_name: str = "testConsumer"

    @classmethod
    def from_config(cls, config: ConfigTree) -> Self:
        kinesis = config.get("kinesis", config)
        test = kinesis.get("test", None)
        if not isinstance(test, ConfigTree):
            raise ConfigError("kinesis.test", "missing (the reliability test's settings)")
        return cls(
            expected_messages=_number(test, "expectedNumberOfMessages", 0),
            pitstop_count=_number(test, "consumer.pitstopCount", 0),
            finish_quiet=_duration(test, "consumer.finishQuietMillis"),
            results_flush=_duration(test, "consumer.resultsFlushMillis"),
            batch_size=_number(test, "producer.batchSize", 1),
            batch_delay=_duration(test, "producer.batchDelayMillis"),
        )

    def with_overrides(self, **changes: Any) -> Self:
        """A copy with the command line's overrides (keys whose value is None are kept)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
