"""The metric set: every name the library publishes, what it means, who publishes it, and the
level it belongs to. Each name is written once here; the sinks read their sets from it."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["METRICS", "PRODUCER_METRICS", "SUMMARY_METRICS", "level_rank", "metric_level"]

_SUMMARY, _DETAILED = "SUMMARY", "DETAILED"

#: The producer engine's metrics (the KPL's names): what each means, and its level.
_PRODUCER_CATALOGUE: Mapping[str, tuple[str, str]] = {
    "UserRecordsReceived": ("user records added to the producer", _SUMMARY),
    "UserRecordsPut": ("user records confirmed by Kinesis", _SUMMARY),
    "UserRecordsFailed": ("user records whose future failed (any reason)", _SUMMARY),
    "UserRecordExpired": ("user records that reached RecordTtl", _DETAILED),
    "KinesisRecordsPut": ("Kinesis records (aggregates count once) confirmed", _SUMMARY),
    "PutRecordsCalls": ("PutRecords requests sent", _DETAILED),
    "Retries": ("user-record retries", _DETAILED),
    "Throttles": ("user records throttled by Kinesis (ProvisionedThroughputExceeded)", _DETAILED),
    "PutRecordsLatency": ("seconds per PutRecords request", _SUMMARY),
}
#: The consumer's metrics (the KCL's names): what each means, and its level.
_CONSUMER_CATALOGUE: Mapping[str, tuple[str, str]] = {
    "RecordsProcessed": ("user records acknowledged by the processor", _SUMMARY),
    "MillisBehindLatest": ("how far a shard's reader is behind the tip, milliseconds", _SUMMARY),
    "IteratorAgeMillis": ("age of the newest record of the last batch, milliseconds", _DETAILED),
    "LeasesHeld": ("leases this worker holds", _SUMMARY),
    "LeaseTakes": ("leases taken (expired or released ones)", _DETAILED),
    "LeaseSteals": ("leases stolen from a busier worker", _DETAILED),
    "LeaseLosses": ("leases lost (stolen, expired, or failed renewal)", _DETAILED),
    "CheckpointFailures": ("checkpoints that failed (throttled, lease lost, ...)", _SUMMARY),
}
_CATALOGUE = {**_PRODUCER_CATALOGUE, **_CONSUMER_CATALOGUE}

#: Every metric name the library publishes, with what it means.
METRICS: Mapping[str, str] = {name: text for name, (text, _) in _CATALOGUE.items()}
#: The metrics published at ``SUMMARY`` level; every other one is ``DETAILED`` only.
SUMMARY_METRICS = frozenset(name for name, (_, level) in _CATALOGUE.items() if level == _SUMMARY)
#: Metrics of the producer engine (CloudWatch publishes them under the producer's namespace).
PRODUCER_METRICS = frozenset(_PRODUCER_CATALOGUE)

_LEVELS = ("NONE", _SUMMARY, _DETAILED)


def level_rank(level: str) -> int:
    """The rank of a metrics level (NONE < SUMMARY < DETAILED), whatever its case."""
    if level.upper() not in _LEVELS:
        raise ValueError(f"metrics level {level!r} is not one of NONE, SUMMARY, DETAILED")
    return _LEVELS.index(level.upper())


def metric_level(name: str) -> str:
    """The level a metric belongs to (a name the catalogue does not hold is DETAILED)."""
    return _SUMMARY if name in SUMMARY_METRICS else _DETAILED
