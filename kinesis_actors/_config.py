"""HOCON configuration: reference.conf merged under the application's config, typed and validated.

The tree and key names are the Scala library's, so its application.conf files load unchanged.
Validation happens at load time and names the full key path, because a typo found at the first
record or the first lease renewal is found too late.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger

__all__ = [
    "CheckpointerConf",
    "ConsumerConf",
    "KclConfig",
    "KplConfig",
    "ProducerConf",
    "ThrottlingConf",
    "WorkerConf",
    "load_config",
    "load_reference",
    "to_seconds",
]

log = get_logger(__name__)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_UNIT_SECONDS = {
    "ns": 1e-9, "nano": 1e-9, "nanos": 1e-9, "nanosecond": 1e-9, "nanoseconds": 1e-9,
    "us": 1e-6, "micro": 1e-6, "micros": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ms": 1e-3, "milli": 1e-3, "millis": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def to_seconds(value: object, number_unit: float) -> float:
    """Convert a HOCON duration to seconds.

    pyhocon returns durations as ``timedelta``, ``relativedelta``, plain numbers (in the key's
    unit, ``number_unit`` seconds each) or, for forms it does not parse such as "1.5 seconds",
    strings; all are accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got boolean {value!r}")
    if isinstance(value, int | float):
        return float(value) * number_unit
    if isinstance(value, timedelta):
        return value.total_seconds()
    if type(value).__name__ == "relativedelta":
        return ((_EPOCH + value) - _EPOCH).total_seconds()  # type: ignore[operator]
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            unit = match.group(2).lower()
            if not unit:
                return float(match.group(1)) * number_unit
            if unit in _UNIT_SECONDS:
                return float(match.group(1)) * _UNIT_SECONDS[unit]
    raise ValueError(f"expected a duration (a number or e.g. '250 ms', '2 seconds'), got {value!r}")


# -- loading --------------------------------------------------------------------------------------


def _reference_text() -> str:
    return resources.files("kinesis_actors").joinpath("reference.conf").read_text("utf-8")


def _parse(text: str, origin: str) -> ConfigTree:
    try:
        return ConfigFactory.parse_string(text, resolve=False)
    except Exception as exc:
        raise ConfigError(origin, f"cannot parse HOCON: {exc}") from exc


@functools.cache
def _reference() -> ConfigTree:
    return ConfigFactory.parse_string(_reference_text(), resolve=True)


def load_reference() -> ConfigTree:
    """The library's defaults alone, resolved (a copy the caller may change)."""
    return copy.deepcopy(_reference())


def load_config(
    source: str | os.PathLike[str] | None = None, *, layers: Sequence[str] = ()
) -> ConfigTree:
    """Load the application config merged over reference.conf, resolved and validated.

    ``source`` is a path to a HOCON file, a HOCON string, or None for ``$KINESIS_ACTORS_CONFIG``
    or else ``./application.conf`` when present. ``layers`` are HOCON texts that sit between the
    application config and reference.conf (a tool's own defaults, such as the reliability test's
    sample config). Returns the whole tree; pass it (or ``tree["kinesis"]``) to
    ``ProducerConf.from_config`` / ``ConsumerConf.from_config``. Warnings name unknown and
    ignored keys; errors name the key.
    """
    if source is None:
        env_path = os.environ.get("KINESIS_ACTORS_CONFIG")
        if env_path:
            source = env_path
        elif Path("application.conf").is_file():
            source = "application.conf"
        else:
            source = ""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith(".conf")
    ):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(str(path), "config file not found")
        app = _parse(path.read_text("utf-8"), str(path))
    else:
        app = _parse(source, "<string>")
    merged = app
    for index, layer in enumerate(layers):
        merged = merged.with_fallback(_parse(layer, f"<layer {index}>"), resolve=False)
    try:
        merged = merged.with_fallback(_parse(_reference_text(), "reference.conf"), resolve=True)
    except ConfigException as exc:
        raise ConfigError("<config>", f"cannot resolve substitutions: {exc}") from exc
    kinesis = merged.get("kinesis", None)
    if not isinstance(kinesis, ConfigTree):
        raise ConfigError("kinesis", "must be an object")
    _check_tree(kinesis, _reference())
    return merged


# -- settings specs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """How one HOCON key becomes one typed field."""

    key: str
    attr: str
    convert: Callable[[object], Any]
    optional: bool = False


def _int(lo: int, hi: int | None = None) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got boolean {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            allowed = f"{lo} .. {hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"{value} is out of range, allowed {allowed}")
        return value

    return convert


def _float(lo: float, hi: float | None = None) -> Callable[[object], float]:
    def convert(value: object) -> float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got boolean {value!r}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if number < lo or (hi is not None and number > hi):
            allowed = f"{lo} .. {hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"{value} is out of range, allowed {allowed}")
        return number

    return convert


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "on", "off"}:
        return value.lower() in {"true", "yes", "on"}
    raise ValueError(f"expected true or false, got {value!r}")


def _str(value: object) -> str:
    if isinstance(value, ConfigTree | list | dict):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _choice(*choices: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        text = _str(value)
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(choices)}")

    return convert


def _duration(number_unit: float, minimum_s: float = 0.0, maximum_s: float | None = None) -> Any:
    def convert(value: object) -> float:
        seconds = to_seconds(value, number_unit)
        if seconds < minimum_s or (maximum_s is not None and seconds > maximum_s):
            hi = f" .. {maximum_s * 1000:g} ms" if maximum_s is not None else ""
            raise ValueError(f"{value} is out of range, allowed {minimum_s * 1000:g} ms{hi}")
        return seconds

    return convert


def _timestamp(value: object) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    text = _str(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO-8601 timestamp or epoch seconds, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _string_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(_str(item) for item in value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _endpoint_host(value: object) -> str:
    text = _str(value)
    if not re.fullmatch(r"[A-Za-z0-9.\-]+", text):
        raise ValueError(f"{text!r} is not a host name (pattern ^([A-Za-z0-9-\\.]+)?$)")
    return text


def _namespace(value: object) -> str:
    text = _str(value)
    if text.startswith("AWS/"):
        raise ValueError(f"{text!r} must not start with 'AWS/'")
    return text


_MS = 1e-3
_MAX_LONG = 2**63 - 1

_KPL_SPECS = (
    _Spec("AggregationEnabled", "aggregation_enabled", _bool),
    _Spec("AggregationMaxCount", "aggregation_max_count", _int(1, _MAX_LONG)),
    _Spec("AggregationMaxSize", "aggregation_max_size", _int(64, 10 * 1024 * 1024)),
    _Spec("CollectionMaxCount", "collection_max_count", _int(1, 500)),
    _Spec("CollectionMaxSize", "collection_max_size", _int(52224, _MAX_LONG)),
    _Spec("ConnectTimeout", "connect_timeout", _duration(_MS, 0.1, 300.0)),
    _Spec("FailIfThrottled", "fail_if_throttled", _bool),
    _Spec("KinesisEndpoint", "kinesis_endpoint", _endpoint_host, optional=True),
    _Spec("KinesisPort", "kinesis_port", _int(1, 65535)),
    _Spec("KinesisScheme", "kinesis_scheme", _choice("https", "http")),
    _Spec("MaxConnections", "max_connections", _int(1, 256)),
    _Spec("MetricsGranularity", "metrics_granularity", _choice("global", "stream", "shard")),
    _Spec("MetricsLevel", "metrics_level", _choice("none", "summary", "detailed")),
    _Spec("MetricsNamespace", "metrics_namespace", _namespace),
    _Spec("RateLimit", "rate_limit", _int(1, _MAX_LONG)),
    _Spec("RecordMaxBufferedTime", "record_max_buffered_time", _duration(_MS)),
    _Spec("RecordTtl", "record_ttl", _duration(_MS, 0.1)),
    _Spec("Region", "region", _str, optional=True),
    _Spec("RequestTimeout", "request_timeout", _duration(_MS, 0.1, 600.0)),
    _Spec("VerifyCertificate", "verify_certificate", _bool),
    _Spec("MaxUserRecordSize", "max_user_record_size", _int(64, 10 * 1024 * 1024)),
    _Spec("AWSCredentialsProvider", "credentials_provider", _string_list),
)
_KPL_IGNORED = frozenset(
    {
        "CredentialsRefreshDelay", "CloudwatchEndpoint", "CloudwatchPort", "EnableCoreDumps",
        "LogLevel", "MetricsUploadDelay", "MinConnections", "NativeExecutable", "TempDirectory",
        "ThreadingModel", "ThreadPoolSize", "ProxyHost", "ProxyPort", "ProxyUserName",
        "ProxyPassword", "StsEndpoint", "StsPort",
    }
)  # fmt: skip

_KCL_SPECS = (
    _Spec("AWSCredentialsProvider", "credentials_provider", _string_list),
    _Spec("workerId", "worker_id", _str, optional=True),
    _Spec(
        "initialPositionInStream",
        "initial_position",
        _choice("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"),
    ),
    _Spec("initialPositionInStreamTimestamp", "initial_timestamp", _timestamp, optional=True),
    _Spec("maxRecords", "max_records", _int(1, 10000)),
    _Spec("idleTimeBetweenReadsInMillis", "idle_time_between_reads", _duration(_MS, 0.001)),
    _Spec("failoverTimeMillis", "failover_time", _duration(_MS, 0.1)),
    _Spec("epsilonMillis", "epsilon", _duration(_MS)),
    _Spec("shardSyncIntervalMillis", "shard_sync_interval", _duration(_MS, 0.01)),
    _Spec("cleanupLeasesUponShardCompletion", "cleanup_leases_upon_shard_completion", _bool),
    _Spec("regionName", "region_name", _str, optional=True),
    _Spec("kinesisEndpoint", "kinesis_endpoint", _str, optional=True),
    _Spec("dynamoDBEndpoint", "dynamodb_endpoint", _str, optional=True),
    _Spec("parentShardPollIntervalMillis", "parent_shard_poll_interval", _duration(_MS, 0.001)),
    _Spec("taskBackoffTimeMillis", "task_backoff_time", _duration(_MS)),
    _Spec("metricsLevel", "metrics_level", _choice("NONE", "SUMMARY", "DETAILED")),
    _Spec("metricsEnabledDimensions", "metrics_enabled_dimensions", _string_list),
    _Spec("maxLeasesForWorker", "max_leases_for_worker", _int(1)),
    _Spec("maxLeasesToStealAtOneTime", "max_leases_to_steal_at_one_time", _int(1)),
    _Spec(
        "leaseTableBillingMode",
        "lease_table_billing_mode",
        _choice("PAY_PER_REQUEST", "PROVISIONED"),
    ),
    _Spec("initialLeaseTableReadCapacity", "initial_lease_table_read_capacity", _int(1)),
    _Spec("initialLeaseTableWriteCapacity", "initial_lease_table_write_capacity", _int(1)),
    _Spec(
        "skipShardSyncAtStartupIfLeasesExist",
        "skip_shard_sync_at_startup_if_leases_exist",
        _bool,
    ),
    _Spec("tableName", "table_name", _str, optional=True),
    _Spec("dataFetchingStrategy", "data_fetching_strategy", _choice("PREFETCH_CACHED", "DEFAULT")),
    _Spec("listShardsBackoffTimeInMillis", "list_shards_backoff_time", _duration(_MS)),
    _Spec("maxListShardsRetryAttempts", "max_list_shards_retry_attempts", _int(1)),
    _Spec("releaseLeasesOnShutdown", "release_leases_on_shutdown", _bool),
    _Spec("releasedLeasePollMillis", "released_lease_poll_interval", _duration(_MS, 0.01)),
)
_KCL_IGNORED = frozenset(
    {
        "shardSyncStrategyType", "validateSequenceNumberBeforeCheckpointing",
        "callProcessRecordsEvenForEmptyRecordList", "metricsBufferTimeMillis",
        "metricsMaxQueueSize", "maxLeaseRenewalThreads", "userAgent", "timeoutInSeconds",
        "shutdownGraceMillis", "retryGetRecordsInSeconds", "maxGetRecordsThreadPool",
        "maxPendingProcessRecordsInput", "maxCacheByteSize", "maxRecordsCount",
        "idleMillisBetweenCalls", "logWarningForTaskAfterMillis", "ignoreUnexpectedChildShards",
        "streamName", "applicationName",
    }
)  # fmt: skip

_WORKER_SPECS = (
    _Spec("batchTimeoutSeconds", "batch_timeout", _duration(1.0, 0.001)),
    _Spec("failedMessageRetries", "failed_message_retries", _int(0)),
    _Spec("failureTolerancePercentage", "failure_tolerance_percentage", _float(0.0, 100.0)),
    _Spec("failurePolicy", "failure_policy", _choice("consumer", "shard")),
    _Spec("gracefulShutdownHook", "graceful_shutdown_hook", _bool),
    _Spec("shutdownTimeoutSeconds", "shutdown_timeout", _duration(1.0, 0.001)),
)
_CHECKPOINTER_SPECS = (
    _Spec("backoffMillis", "backoff", _duration(_MS)),
    _Spec("intervalMillis", "interval", _duration(_MS)),
    _Spec("notificationDelayMillis", "notification_delay", _duration(_MS, 0.001)),
)
_PRODUCER_AKKA_SPECS = (
    _Spec("max-outstanding-requests", "max_outstanding_requests", _int(1), optional=True),
    _Spec("throttling-retry-millis", "throttling_retry", _duration(_MS, 0.001)),
    _Spec("failed-send-retries", "failed_send_retries", _int(0)),
    _Spec("max-queued-sends", "max_queued_sends", _int(1)),
)

#: Blocks of a named producer / consumer, with their specs and their ignored keys.
_PRODUCER_BLOCKS: dict[str, tuple[tuple[_Spec, ...], frozenset[str]]] = {
    "kpl": (_KPL_SPECS, _KPL_IGNORED),
    "akka": (_PRODUCER_AKKA_SPECS, frozenset({"dispatcher"})),
}
_CONSUMER_BLOCKS: dict[str, tuple[tuple[_Spec, ...], frozenset[str]]] = {
    "kcl": (_KCL_SPECS, _KCL_IGNORED),
    "worker": (_WORKER_SPECS, frozenset()),
    "checkpointer": (_CHECKPOINTER_SPECS, frozenset()),
    "akka": ((), frozenset({"dispatcher"})),
}
#: Spellings found in the Scala library's README, read as the keys they meant.
_CONSUMER_ALIASES = {
    ("checkpoint",): ("checkpointer",),
    ("kcl", "initialPosition"): ("kcl", "initialPositionInStream"),
    ("kcl", "stream-name"): ("stream-name",),
    ("kcl", "batchTimeoutSeconds"): ("worker", "batchTimeoutSeconds"),
}


def _find_key(block: Mapping[str, Any], key: str) -> str | None:
    """The key as spelled in ``block``; KCL/KPL property names match case-insensitively."""
    if key in block:
        return key
    lowered = key.lower()
    for candidate in block:
        if candidate.lower() == lowered:
            return str(candidate)
    return None


def _read_block(block: Mapping[str, Any], specs: Iterable[_Spec], path: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in specs:
        found = _find_key(block, spec.key)
        raw = block.get(found) if found is not None else None
        if raw is None:
            if not spec.optional:
                raise ConfigError(f"{path}.{spec.key}", "is required")
            values[spec.attr] = None
            continue
        try:
            values[spec.attr] = spec.convert(raw)
        except ValueError as exc:
            raise ConfigError(f"{path}.{spec.key}", str(exc)) from None
    return values


def _block(tree: ConfigTree, name: str) -> ConfigTree:
    value = tree.get(name, None)
    if value is None:
        return ConfigTree()
    if not isinstance(value, ConfigTree):
        raise ConfigError(name, f"must be an object, got {value!r}")
    return value


def _kinesis_block(conf: ConfigTree) -> ConfigTree:
    """Accept either the ``kinesis`` block or the whole tree that contains it."""
    if "default-producer" not in conf and "default-consumer" not in conf and "kinesis" in conf:
        return _block(conf, "kinesis")
    return conf


def _own_block(kinesis: ConfigTree, name: str) -> ConfigTree:
    """A private copy of ``kinesis.<name>``, before any fallback."""
    own = kinesis.get(name, None)
    if own is None:
        raise ConfigError(f"kinesis.{name}", f"no such block (known: {_named_blocks(kinesis)})")
    if not isinstance(own, ConfigTree):
        raise ConfigError(f"kinesis.{name}", f"must be an object, got {own!r}")
    return copy.deepcopy(own)


def _resolve_named(
    kinesis_conf: ConfigTree, name: str, default: str
) -> tuple[ConfigTree, ConfigTree, str]:
    """(the kinesis block, ``kinesis.<name>`` over ``kinesis.<default>``, the block's path)."""
    kinesis = _kinesis_block(kinesis_conf)
    path = f"kinesis.{name}"
    own = _own_block(kinesis, name)
    if default == "default-consumer":
        own = _apply_aliases(own, path)
    return kinesis, own.with_fallback(_block(kinesis, default), resolve=False), path


def _named_blocks(kinesis: ConfigTree) -> str:
    names = [k for k, v in kinesis.items() if isinstance(v, ConfigTree) and k != "akka"]
    return ", ".join(sorted(names)) or "none"


def _apply_aliases(block: ConfigTree, path: str) -> ConfigTree:
    """Move keys spelled as in the Scala README to where they belong; the proper key wins."""
    for old, new in _CONSUMER_ALIASES.items():
        parent: Any = block
        for part in old[:-1]:
            parent = parent.get(part, None) if isinstance(parent, ConfigTree) else None
        if not isinstance(parent, ConfigTree) or old[-1] not in parent:
            continue
        value = parent.pop(old[-1])
        log.warning(
            "config key read under its intended name",
            key=f"{path}.{'.'.join(old)}",
            read_as=f"{path}.{'.'.join(new)}",
        )
        target: ConfigTree = block
        for part in new[:-1]:
            if not isinstance(target.get(part, None), ConfigTree):
                target.put(part, ConfigTree())
            target = target.get(part)
        existing = target.get(new[-1], None)
        if isinstance(existing, ConfigTree) and isinstance(value, ConfigTree):
            target.put(new[-1], existing.with_fallback(value, resolve=False))
        elif existing is None:
            target.put(new[-1], value)
    return block


# -- settings objects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KplConfig:
    """The producer engine's settings (the KPL's keys). Durations are in seconds."""

    aggregation_enabled: bool
    aggregation_max_count: int
    aggregation_max_size: int
    collection_max_count: int
    collection_max_size: int
    connect_timeout: float
    fail_if_throttled: bool
    kinesis_endpoint: str | None
    kinesis_port: int
    kinesis_scheme: str
    max_connections: int
    metrics_granularity: str
    metrics_level: str
    metrics_namespace: str
    rate_limit: int
    record_max_buffered_time: float
    record_ttl: float
    region: str | None
    request_timeout: float
    verify_certificate: bool
    max_user_record_size: int
    credentials_provider: tuple[str, ...]

    @classmethod
    def from_config(
        cls, kpl: ConfigTree | Mapping[str, Any] | None = None, path: str = "kpl"
    ) -> Self:
        """Build from a ``kpl`` block; keys it lacks come from reference.conf."""
        defaults = _block(_block(_block(_reference(), "kinesis"), "default-producer"), "kpl")
        block = ConfigFactory.from_dict(dict(kpl or {})) if not isinstance(kpl, ConfigTree) else kpl
        merged = block.with_fallback(defaults, resolve=False)
        return cls(**_read_block(merged, _KPL_SPECS, path))

    @property
    def endpoint_url(self) -> str | None:
        """``KinesisEndpoint``/``KinesisPort``/``KinesisScheme`` as a URL, or None for boto3's."""
        if not self.kinesis_endpoint:
            return None
        return f"{self.kinesis_scheme}://{self.kinesis_endpoint}:{self.kinesis_port}"


@dataclass(frozen=True)
class ThrottlingConf:
    """The producer actor's throttle on outstanding records."""

    max_outstanding_requests: int
    retry_interval: float


@dataclass(frozen=True)
class ProducerConf:
    """Everything a named producer needs, resolved with fallback to ``default-producer``."""

    name: str
    stream_name: str
    application_name: str
    kpl: KplConfig
    throttling: ThrottlingConf | None
    failed_send_retries: int = 0
    max_queued_sends: int = 1_000_000

    @classmethod
    def from_config(cls, kinesis_conf: ConfigTree, name: str) -> Self:
        """Resolve ``kinesis.<name>`` with a deep fallback to ``kinesis.default-producer``."""
        kinesis, block, path = _resolve_named(kinesis_conf, name, "default-producer")
        return cls._from_block(kinesis, block, name, path, require_stream=True)

    @classmethod
    def _from_block(
        cls, kinesis: ConfigTree, block: ConfigTree, name: str, path: str, *, require_stream: bool
    ) -> Self:
        stream = _stream_name(block, path, required=require_stream)
        kpl = KplConfig(**_read_block(_block(block, "kpl"), _KPL_SPECS, f"{path}.kpl"))
        akka = _read_block(_block(block, "akka"), _PRODUCER_AKKA_SPECS, f"{path}.akka")
        throttling = None
        if akka["max_outstanding_requests"] is not None:
            throttling = ThrottlingConf(akka["max_outstanding_requests"], akka["throttling_retry"])
        return cls(
            name=name,
            stream_name=stream,
            application_name=_application_name(kinesis),
            kpl=kpl,
            throttling=throttling,
            failed_send_retries=akka["failed_send_retries"],
            max_queued_sends=akka["max_queued_sends"],
        )


@dataclass(frozen=True)
class WorkerConf:
    """The batch protocol's settings (``worker`` block). Durations are in seconds."""

    batch_timeout: float
    failed_message_retries: int
    failure_tolerance_percentage: float
    failure_policy: str
    graceful_shutdown_hook: bool
    shutdown_timeout: float

    def allowed_failures(self, batch_size: int) -> int:
        """Unacknowledged records a batch may end with: the percentage, rounded down."""
        return int(self.failure_tolerance_percentage / 100 * batch_size)


@dataclass(frozen=True)
class CheckpointerConf:
    """The CheckpointWorker's pacing (``checkpointer`` block). Durations are in seconds."""

    backoff: float
    interval: float
    notification_delay: float


@dataclass(frozen=True)
class KclConfig:
    """Consumer and lease settings (the KCL's keys). Durations are in seconds."""

    credentials_provider: tuple[str, ...]
    worker_id: str | None
    initial_position: str
    initial_timestamp: datetime | None
    max_records: int
    idle_time_between_reads: float
    failover_time: float
    epsilon: float
    shard_sync_interval: float
    cleanup_leases_upon_shard_completion: bool
    region_name: str | None
    kinesis_endpoint: str | None
    dynamodb_endpoint: str | None
    parent_shard_poll_interval: float
    task_backoff_time: float
    metrics_level: str
    metrics_enabled_dimensions: tuple[str, ...]
    max_leases_for_worker: int
    max_leases_to_steal_at_one_time: int
    lease_table_billing_mode: str
    initial_lease_table_read_capacity: int
    initial_lease_table_write_capacity: int
    skip_shard_sync_at_startup_if_leases_exist: bool
    table_name: str | None
    data_fetching_strategy: str
    list_shards_backoff_time: float
    max_list_shards_retry_attempts: int
    release_leases_on_shutdown: bool
    released_lease_poll_interval: float

    @property
    def renewer_interval(self) -> float:
        """The KCL's renewal period: failover / 3 - epsilon."""
        return self.failover_time / 3 - self.epsilon

    @property
    def taker_interval(self) -> float:
        """The KCL's taker period: (failover + epsilon) * 2."""
        return (self.failover_time + self.epsilon) * 2


@dataclass(frozen=True)
class ConsumerConf:
    """Everything a named consumer needs, resolved with fallback to ``default-consumer``."""

    name: str
    stream_name: str
    application_name: str
    table_name: str
    worker: WorkerConf
    checkpointer: CheckpointerConf
    kcl: KclConfig = field(repr=False)

    @classmethod
    def from_config(cls, kinesis_conf: ConfigTree, name: str) -> Self:
        """Resolve ``kinesis.<name>`` with a deep fallback to ``kinesis.default-consumer``."""
        kinesis, block, path = _resolve_named(kinesis_conf, name, "default-consumer")
        return cls._from_block(kinesis, block, name, path, require_stream=True)

    @classmethod
    def _from_block(
        cls, kinesis: ConfigTree, block: ConfigTree, name: str, path: str, *, require_stream: bool
    ) -> Self:
        stream = _stream_name(block, path, required=require_stream)
        kcl = KclConfig(**_read_block(_block(block, "kcl"), _KCL_SPECS, f"{path}.kcl"))
        if kcl.initial_position == "AT_TIMESTAMP" and kcl.initial_timestamp is None:
            raise ConfigError(
                f"{path}.kcl.initialPositionInStreamTimestamp",
                "is required when initialPositionInStream = AT_TIMESTAMP",
            )
        application = _application_name(kinesis)
        return cls(
            name=name,
            stream_name=stream,
            application_name=application,
            table_name=kcl.table_name or f"{application}-{stream}",
            worker=WorkerConf(
                **_read_block(_block(block, "worker"), _WORKER_SPECS, f"{path}.worker")
            ),
            checkpointer=CheckpointerConf(
                **_read_block(
                    _block(block, "checkpointer"), _CHECKPOINTER_SPECS, f"{path}.checkpointer"
                )
            ),
            kcl=kcl,
        )


def _stream_name(block: ConfigTree, path: str, *, required: bool) -> str:
    value = block.get("stream-name", None)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ConfigError(f"{path}.stream-name", "is required (the name of an existing stream)")
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{path}.stream-name", f"expected a string, got {value!r}")
    return value


def _application_name(kinesis: ConfigTree) -> str:
    value = kinesis.get("application-name", None)
    if not isinstance(value, str) or not value:
        raise ConfigError("kinesis.application-name", f"expected a non-empty string, got {value!r}")
    return value


# -- load-time checks -----------------------------------------------------------------------------

_PRODUCER_MARKERS = frozenset({"kpl"})
_CONSUMER_MARKERS = frozenset({"kcl", "worker", "checkpointer", "checkpoint"})


def _check_tree(kinesis: ConfigTree, reference: ConfigTree) -> None:
    """Validate every producer/consumer block now, and warn about unknown and ignored keys."""
    ref_kinesis = _block(reference, "kinesis")
    ignored: list[str] = []
    unknown: list[tuple[str, str | None]] = []
    for name, block in kinesis.items():
        if not isinstance(block, ConfigTree) or name == "akka":
            if (
                name == "akka"
                and isinstance(block, ConfigTree)
                and block != ref_kinesis.get("akka")
            ):
                ignored.append("kinesis.akka")
            continue
        path = f"kinesis.{name}"
        if name == "default-producer" or (
            _PRODUCER_MARKERS & set(block) and name != "default-consumer"
        ):
            blocks, default = _PRODUCER_BLOCKS, "default-producer"
        elif name == "default-consumer" or _CONSUMER_MARKERS & set(block):
            blocks, default = _CONSUMER_BLOCKS, "default-consumer"
        else:
            continue
        own = copy.deepcopy(block)
        if default == "default-consumer" and name != default:
            own = _apply_aliases(own, path)
        baseline = _block(kinesis, default) if name != default else _block(ref_kinesis, default)
        _collect_key_warnings(own, baseline, blocks, path, ignored, unknown)
        merged = own.with_fallback(_block(kinesis, default), resolve=False)
        if blocks is _PRODUCER_BLOCKS:
            ProducerConf._from_block(kinesis, merged, name, path, require_stream=False)
        else:
            ConsumerConf._from_block(kinesis, merged, name, path, require_stream=False)
    if ignored:
        log.warning(
            "config keys ignored: they have no meaning in Python", keys=sorted(set(ignored))
        )
    for key, suggestion in unknown:
        log.warning("unknown config key", key=key, did_you_mean=suggestion)


def _collect_key_warnings(
    block: ConfigTree,
    baseline: ConfigTree,
    blocks: Mapping[str, tuple[tuple[_Spec, ...], frozenset[str]]],
    path: str,
    ignored: list[str],
    unknown: list[tuple[str, str | None]],
) -> None:
    for sub, (specs, ignored_keys) in blocks.items():
        values = block.get(sub, None)
        if not isinstance(values, ConfigTree):
            continue
        base = baseline.get(sub, None)
        base_values: Mapping[str, Any] = base if isinstance(base, ConfigTree) else {}
        known = {spec.key.lower(): spec.key for spec in specs} | {
            k.lower(): k for k in ignored_keys
        }
        for key, value in values.items():
            canonical = known.get(str(key).lower())
            if canonical is None:
                close = difflib.get_close_matches(str(key), list(known.values()), n=1)
                unknown.append((f"{path}.{sub}.{key}", close[0] if close else None))
            elif canonical in ignored_keys and base_values.get(key, object()) != value:
                ignored.append(f"{path}.{sub}.{key}")
    allowed = set(blocks) | {"stream-name"}
    for key in block:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            unknown.append((f"{path}.{key}", close[0] if close else None))
