"""The producer's settings: the KPL's keys (``kpl``), the actor's (``akka``), one resolver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pyhocon import ConfigFactory, ConfigTree

from kinesis_actors._config._blocks import (
    DEFAULT_CONSUMER,
    DEFAULT_PRODUCER,
    kinesis_block,
)
from kinesis_actors._config._convert import (
    boolean,
    choice,
    duration,
    endpoint_host,
    integer,
    metrics_namespace,
    string,
)
from kinesis_actors._config._credentials import AssumeRoleConf, credentials_providers
from kinesis_actors._config._entry import EntryConf, addressed
from kinesis_actors._config._reference import reference
from kinesis_actors._config._schema import (
    key_paths,
    read_settings,
    section,
    setting,
    settings,
    sub_block,
)
from kinesis_actors._errors import ConfigError
from kinesis_actors._stream_ref import StreamRef

__all__ = ["KplConf", "ProducerConf", "ThrottlingConf", "resolve_producer_conf"]

MS = 1e-3
_MAX_LONG = 2**63 - 1


@settings
class KplConf:
    """The producer engine's settings (the KPL's keys). Durations are in seconds."""

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "CredentialsRefreshDelay", "CloudwatchEndpoint", "CloudwatchPort", "EnableCoreDumps",
            "LogLevel", "MinConnections", "NativeExecutable",
            "TempDirectory", "ThreadingModel", "ThreadPoolSize", "ProxyHost", "ProxyPort",
            "ProxyUserName", "ProxyPassword", "StsEndpoint", "StsPort",
        }
    )  # fmt: skip

    aggregation_enabled: bool = setting("AggregationEnabled", boolean)
    aggregation_max_count: int = setting("AggregationMaxCount", integer(1, _MAX_LONG))
    aggregation_max_size: int = setting("AggregationMaxSize", integer(64, 10 * 1024 * 1024))
    collection_max_count: int = setting("CollectionMaxCount", integer(1, 500))
    collection_max_size: int = setting("CollectionMaxSize", integer(52224, _MAX_LONG))
    connect_timeout: float = setting("ConnectTimeout", duration(MS, 0.1, 300.0))
    fail_if_throttled: bool = setting("FailIfThrottled", boolean)
    kinesis_endpoint: str | None = setting("KinesisEndpoint", endpoint_host, unset=None)
    kinesis_port: int = setting("KinesisPort", integer(1, 65535))
    kinesis_scheme: str = setting("KinesisScheme", choice("https", "http"))
    max_connections: int = setting("MaxConnections", integer(1, 256))
    metrics_granularity: str = setting("MetricsGranularity", choice("global", "stream", "shard"))
    metrics_level: str = setting("MetricsLevel", choice("none", "summary", "detailed"))
    metrics_namespace: str = setting("MetricsNamespace", metrics_namespace)
    metrics_upload_delay: float = setting("MetricsUploadDelay", duration(MS, 0.001))
    metrics_sink: str = setting("MetricsSink", choice("none", "cloudwatch"))
    rate_limit: int = setting("RateLimit", integer(1, _MAX_LONG))
    record_max_buffered_time: float = setting("RecordMaxBufferedTime", duration(MS))
    record_ttl: float = setting("RecordTtl", duration(MS, 0.1))
    region: str | None = setting("Region", string, unset=None)
    request_timeout: float = setting("RequestTimeout", duration(MS, 0.1, 600.0))
    verify_certificate: bool = setting("VerifyCertificate", boolean)
    max_user_record_size: int = setting("MaxUserRecordSize", integer(64, 10 * 1024 * 1024))
    exit_flush_timeout: float = setting("ExitFlushTimeout", duration(MS, 0.0, 600.0))
    log_summary_interval: float = setting("LogSummaryInterval", duration(MS, 0.0, 600.0))
    credentials_provider: tuple[str, ...] = setting("AWSCredentialsProvider", credentials_providers)
    assume_role: AssumeRoleConf = section("", AssumeRoleConf)

    @classmethod
    def from_config(
        cls, kpl: ConfigTree | Mapping[str, Any] | None = None, path: str = "kpl"
    ) -> Self:
        """Build from a ``kpl`` block alone; keys it lacks come from reference.conf."""
        block = kpl if isinstance(kpl, ConfigTree) else ConfigFactory.from_dict(dict(kpl or {}))
        if "kinesis" in block or DEFAULT_PRODUCER in block:
            raise ConfigError(
                path,
                "this is a whole config, not a kpl block: pass it with a producer name "
                "(ProducerConf.from_config(config, name))",
            )
        known = {key.lower() for key in key_paths(cls)}
        unknown = sorted(str(key) for key in block if str(key).lower() not in known)
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}", "is not a KPL setting")
        defaults = sub_block(_reference_producer(), "kpl", "kinesis.default-producer")
        return read_settings(cls, block.with_fallback(defaults, resolve=False), path)

    @property
    def endpoint_url(self) -> str | None:
        """``KinesisEndpoint``/``KinesisPort``/``KinesisScheme`` as a URL, or None for boto3's."""
        if not self.kinesis_endpoint:
            return None
        return f"{self.kinesis_scheme}://{self.kinesis_endpoint}:{self.kinesis_port}"


def _reference_producer() -> ConfigTree:
    return sub_block(sub_block(reference(), "kinesis", ""), DEFAULT_PRODUCER, "kinesis")


@settings
class ThrottlingConf:
    """The producer actor's throttle on outstanding records (read from the ``akka`` block)."""

    max_outstanding_requests: int = setting("max-outstanding-requests", integer(1))
    retry_interval: float = setting("throttling-retry-millis", duration(MS, 0.001))


@settings
class ProducerConf(EntryConf):
    """Everything a named producer needs, resolved with fallback to ``default-producer``."""

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset({"akka.dispatcher"})
    DEFAULT_BLOCK: ClassVar[str] = DEFAULT_PRODUCER
    REGION_FIELD: ClassVar[tuple[str, str]] = ("kpl", "region")

    kpl: KplConf = section("kpl", KplConf)
    #: None unless ``akka.max-outstanding-requests`` is set.
    throttling: ThrottlingConf | None = section(
        "akka", ThrottlingConf, present_if="max-outstanding-requests"
    )
    failed_send_retries: int = setting("akka.failed-send-retries", integer(0))
    max_queued_sends: int = setting("akka.max-queued-sends", integer(1))

    @classmethod
    def from_block(cls, kinesis: ConfigTree, block: ConfigTree, name: str, path: str) -> Self:
        """Read a named block already laid over its default (the stream may be unset)."""
        conf = super().from_block(kinesis, block, name, path)
        return conf.addressed_to(addressed(conf.stream_name, conf.stream_arn, path))


def resolve_producer_conf(
    source: ProducerConf | KplConf | ConfigTree | Mapping[str, Any],
    name: str | None = None,
    *,
    stream_name: str | None = None,
) -> ProducerConf:
    """The one way an entry point turns what it was given into a ``ProducerConf``.

    ``source`` is a resolved ``ProducerConf``; or a loaded config (the whole tree or its
    ``kinesis`` block) with ``name`` naming the producer block; or a ``kpl`` block alone (a
    ``KplConf``, a HOCON tree or a dict, read over reference.conf's ``default-producer``) with
    ``stream_name`` (a name or an ARN). ``stream_name`` also overrides the stream of the first
    two forms.
    """
    if isinstance(source, ProducerConf):
        conf = source
    elif isinstance(source, ConfigTree) and _is_loaded_config(source):
        if not name:
            raise TypeError("a loaded config needs a producer name, e.g. 'testProducer'")
        conf = ProducerConf.from_config(source, name)
    else:
        kpl = source if isinstance(source, KplConf) else KplConf.from_config(source)
        defaults = _reference_producer()
        conf = ProducerConf.from_block(
            sub_block(reference(), "kinesis", ""),
            defaults,
            name or "producer",
            f"kinesis.{DEFAULT_PRODUCER}",
        )
        conf = dataclasses.replace(conf, kpl=kpl)
    if stream_name:
        conf = conf.addressed_to(StreamRef.of(stream_name))
    if not conf.stream_name:
        raise ConfigError("stream-name", "a producer needs the name of an existing stream")
    return conf


def _is_loaded_config(tree: ConfigTree) -> bool:
    kinesis = kinesis_block(tree)
    return DEFAULT_PRODUCER in kinesis or DEFAULT_CONSUMER in kinesis
