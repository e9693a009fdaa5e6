"""The consumer's settings: batch protocol (``worker``), ``checkpointer``, the KCL's keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Self

from pyhocon import ConfigTree

from kinesis_actors._config._blocks import (
    DEFAULT_CONSUMER,
    kinesis_block,
)
from kinesis_actors._config._convert import (
    boolean,
    callable_path,
    choice,
    duration,
    integer,
    number,
    string,
    string_list,
    string_map,
    timestamp,
)
from kinesis_actors._config._credentials import AssumeRoleConf, credentials_providers
from kinesis_actors._config._entry import EntryConf, addressed, stream_arn, stream_name
from kinesis_actors._config._producer_conf import MS
from kinesis_actors._config._schema import section, setting, settings
from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger

__all__ = [
    "CheckpointerConf",
    "ConsumerConf",
    "KclConf",
    "LeaseTableConf",
    "WorkerConf",
    "resolve_consumer_conf",
]

log = get_logger(__name__)


def metric_dimensions(value: object) -> tuple[str, ...]:
    names = string_list(value)
    known = ("Operation", "ShardId", "WorkerIdentifier", "ALL")
    for name in names:
        if name not in known:
            raise ValueError(f"{name!r} is not one of {', '.join(known)}")
    return names


@settings
class WorkerConf:
    """The batch protocol's settings (``worker`` block). Durations are in seconds."""

    batch_timeout: float = setting("batchTimeoutSeconds", duration(1.0, 0.001))
    failed_message_retries: int = setting("failedMessageRetries", integer(0))
    failure_tolerance_percentage: float = setting("failureTolerancePercentage", number(0.0, 100.0))
    failure_policy: str = setting("failurePolicy", choice("consumer", "shard"))
    graceful_shutdown_hook: bool = setting("gracefulShutdownHook", boolean)
    shutdown_timeout: float = setting("shutdownTimeoutSeconds", duration(1.0, 0.001))
    max_blocking_threads: int = setting("maxBlockingThreads", integer(1))
    blocking_thread_idle: float = setting("blockingThreadIdleSeconds", duration(1.0, 0.001))
    traceback_interval: float = setting("tracebackIntervalSeconds", duration(1.0))
    max_concurrent_records: int = setting("maxConcurrentRecords", integer(1, 10_000))
    #: Called with the skipped records before they are checkpointed past (docs/consuming.rst).
    on_skipped: Callable[..., object] | None = setting("onSkipped", callable_path, unset=None)
    #: The stream skipped records are written to before they are checkpointed past.
    dead_letter_stream: str | None = setting("deadLetterStream", stream_name, unset=None)

    def allowed_failures(self, batch_size: int) -> int:
        """Unacknowledged records a batch may end with: the percentage, rounded down."""
        return int(self.failure_tolerance_percentage / 100 * batch_size)


@settings
class CheckpointerConf:
    """The ShardCheckpointer's pacing (``checkpointer`` block). Durations are in seconds."""

    backoff: float = setting("backoffMillis", duration(MS))
    interval: float = setting("intervalMillis", duration(MS))
    notification_delay: float = setting("notificationDelayMillis", duration(MS, 0.001))


_PROVISIONED, _ON_DEMAND = "PROVISIONED", "PAY_PER_REQUEST"


@settings
class LeaseTableConf:
    """How the lease table (and the fleet's membership table) is created, if it is created."""

    #: None until ``check``: PAY_PER_REQUEST, or PROVISIONED when capacities are set.
    billing_mode: str | None = setting(
        "leaseTableBillingMode", choice(_ON_DEMAND, _PROVISIONED), unset=None
    )
    read_capacity: int | None = setting("initialLeaseTableReadCapacity", integer(1), unset=None)
    write_capacity: int | None = setting("initialLeaseTableWriteCapacity", integer(1), unset=None)
    tags: tuple[tuple[str, str], ...] = setting("leaseTableTags", string_map)
    point_in_time_recovery: bool = setting("leaseTablePitrEnabled", boolean)
    deletion_protection: bool = setting("leaseTableDeletionProtectionEnabled", boolean)
    must_exist: bool = setting("leaseTableMustExist", boolean)

    def checked(self, path: str) -> LeaseTableConf:
        """The billing mode made explicit; capacities that cannot be honoured are refused."""
        capacities = {
            "initialLeaseTableReadCapacity": self.read_capacity,
            "initialLeaseTableWriteCapacity": self.write_capacity,
        }
        given = [key for key, value in capacities.items() if value is not None]
        mode = self.billing_mode
        if mode == _ON_DEMAND and given:
            raise ConfigError(
                f"{path}.{given[0]}",
                f"has no effect with {path}.leaseTableBillingMode = {_ON_DEMAND}: "
                f"remove it or set leaseTableBillingMode = {_PROVISIONED}",
            )
        if mode is None and given:
            log.warning(
                "lease table billing mode inferred as PROVISIONED: capacities are set",
                keys=[f"{path}.{key}" for key in given],
                set_explicitly=f"{path}.leaseTableBillingMode",
            )
            mode = _PROVISIONED
        if mode == _PROVISIONED:
            for key, value in capacities.items():
                if value is None:
                    raise ConfigError(
                        f"{path}.{key}", f"is required with leaseTableBillingMode = {_PROVISIONED}"
                    )
        return dataclasses.replace(self, billing_mode=mode or _ON_DEMAND)

    def create_options(self) -> dict[str, Any]:
        """Keyword arguments of the lease tables' ``create_if_missing``."""
        return {
            "billing_mode": self.billing_mode or _ON_DEMAND,
            "read_capacity": self.read_capacity,
            "write_capacity": self.write_capacity,
            "tags": self.tags,
            "point_in_time_recovery": self.point_in_time_recovery,
            "deletion_protection": self.deletion_protection,
            "must_exist": self.must_exist,
        }


@settings
class KclConf:
    """Consumer and lease settings (the KCL's keys). Durations are in seconds."""

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "shardSyncStrategyType", "validateSequenceNumberBeforeCheckpointing",
            "callProcessRecordsEvenForEmptyRecordList", "maxLeaseRenewalThreads",
            "timeoutInSeconds",
            "shutdownGraceMillis", "retryGetRecordsInSeconds", "maxGetRecordsThreadPool",
            "maxPendingProcessRecordsInput", "maxCacheByteSize", "maxRecordsCount",
            "logWarningForTaskAfterMillis",
            "ignoreUnexpectedChildShards", "streamName", "applicationName",
            "maxLeasesToStealAtOneTime",
        }
    )  # fmt: skip

    #: The KCL's spelling of the consumer block's ``stream-arn``.
    stream_arn: str | None = setting("streamArn", stream_arn, unset=None)
    credentials_provider: tuple[str, ...] = setting("AWSCredentialsProvider", credentials_providers)
    #: Unset: the DynamoDB / CloudWatch clients use ``credentials_provider`` too.
    dynamodb_credentials_provider: tuple[str, ...] | None = setting(
        "AWSCredentialsProviderDynamoDB", credentials_providers, unset=None
    )
    cloudwatch_credentials_provider: tuple[str, ...] | None = setting(
        "AWSCredentialsProviderCloudWatch", credentials_providers, unset=None
    )
    assume_role: AssumeRoleConf = section("", AssumeRoleConf)
    worker_id: str | None = setting("workerId", string, unset=None)
    initial_position: str = setting(
        "initialPositionInStream", choice("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
    )
    initial_timestamp: datetime | None = setting(
        "initialPositionInStreamTimestamp", timestamp, unset=None
    )
    max_records: int = setting("maxRecords", integer(1, 10000))
    idle_time_between_reads: float = setting("idleTimeBetweenReadsInMillis", duration(MS, 0.001))
    #: The Scala library's name for the read interval; when set it is the interval.
    idle_millis_between_calls: float | None = setting(
        "idleMillisBetweenCalls", duration(MS, 0.001), unset=None
    )
    reads_per_second_per_shard: float = setting("readsPerSecondPerShard", number(0.01, 5.0))
    idle_read_backoff_max: float = setting("idleReadBackoffMaxMillis", duration(MS))
    idle_read_backoff_after_empty_reads: int = setting("idleReadBackoffAfterEmptyReads", integer(1))
    failover_time: float = setting("failoverTimeMillis", duration(MS, 0.1))
    epsilon: float = setting("epsilonMillis", duration(MS))
    shard_sync_interval: float = setting("shardSyncIntervalMillis", duration(MS, 0.01))
    cleanup_leases_upon_shard_completion: bool = setting(
        "cleanupLeasesUponShardCompletion", boolean
    )
    region_name: str | None = setting("regionName", string, unset=None)
    kinesis_endpoint: str | None = setting("kinesisEndpoint", string, unset=None)
    dynamodb_endpoint: str | None = setting("dynamoDBEndpoint", string, unset=None)
    parent_shard_poll_interval: float = setting(
        "parentShardPollIntervalMillis", duration(MS, 0.001)
    )
    task_backoff_time: float = setting("taskBackoffTimeMillis", duration(MS))
    metrics_level: str = setting("metricsLevel", choice("NONE", "SUMMARY", "DETAILED"))
    metrics_enabled_dimensions: tuple[str, ...] = setting(
        "metricsEnabledDimensions", metric_dimensions
    )
    metrics_buffer_time: float = setting("metricsBufferTimeMillis", duration(MS, 0.001))
    metrics_max_queue_size: int = setting("metricsMaxQueueSize", integer(1))
    metrics_sink: str = setting("metricsSink", choice("none", "cloudwatch"))
    max_leases_for_worker: int = setting("maxLeasesForWorker", integer(1))
    lease_table: LeaseTableConf = section("", LeaseTableConf)
    skip_shard_sync_at_startup_if_leases_exist: bool = setting(
        "skipShardSyncAtStartupIfLeasesExist", boolean
    )
    table_name: str | None = setting("tableName", string, unset=None)
    #: Put before the library's own user agent on the consumer's Kinesis and DynamoDB calls.
    user_agent: str | None = setting("userAgent", string, unset=None)
    data_fetching_strategy: str = setting(
        "dataFetchingStrategy", choice("PREFETCH_CACHED", "DEFAULT")
    )
    list_shards_backoff_time: float = setting("listShardsBackoffTimeInMillis", duration(MS))
    max_list_shards_retry_attempts: int = setting("maxListShardsRetryAttempts", integer(1))
    release_leases_on_shutdown: bool = setting("releaseLeasesOnShutdown", boolean)
    released_lease_poll_interval: float = setting("releasedLeasePollMillis", duration(MS, 0.01))
    lease_handoff_timeout: float = setting("gracefulLeaseHandoffTimeoutMillis", duration(MS))
    leave_handoff_wait: float = setting("leaveHandoffWaitMillis", duration(MS))
    lease_handoff_check_interval: float = setting("leaseHandoffCheckMillis", duration(MS, 0.01))
    lease_balance_damping: float = setting("leaseBalanceDamping", number(0.0, 100.0))
    lease_table_safety_scan_interval: float = setting(
        "leaseTableSafetyScanMillis", duration(MS, 0.01)
    )
    dead_worker_cleanup_time: float = setting("deadWorkerCleanupMillis", duration(MS, 0.01))
    retrieval_mode: str = setting("retrievalMode", choice("POLLING", "FANOUT"))
    consumer_name: str | None = setting("consumerName", string, unset=None)
    consumer_arn: str | None = setting("consumerArn", string, unset=None)
    deregister_consumer_on_stop: bool = setting("deregisterConsumerOnStop", boolean)
    consumer_active_timeout: float = setting("consumerActiveTimeoutMillis", duration(MS))
    consumer_status_poll_interval: float = setting("consumerStatusPollMillis", duration(MS, 0.01))
    fanout_max_buffered_batches: int = setting("fanoutMaxBufferedBatches", integer(1, 1000))
    fanout_max_backoff: float = setting("fanoutMaxBackoffMillis", duration(MS, 0.001))
    fanout_fallback_to_polling: bool = setting("fanoutFallbackToPolling", boolean)

    @property
    def read_interval(self) -> float:
        """Seconds between two GetRecords of one shard: ``idleMillisBetweenCalls`` if set (the
        Scala library's key), else ``idleTimeBetweenReadsInMillis``."""
        if self.idle_millis_between_calls is not None:
            return self.idle_millis_between_calls
        return self.idle_time_between_reads

    @property
    def renewer_interval(self) -> float:
        """The KCL's renewal period: failover / 3 - epsilon."""
        return self.failover_time / 3 - self.epsilon

    @property
    def taker_interval(self) -> float:
        """The KCL's taker period: (failover + epsilon) * 2."""
        return (self.failover_time + self.epsilon) * 2

    def check(self, path: str) -> None:
        """Refuse combinations no single key shows wrong; ``path`` is the ``kcl`` block's."""
        if self.initial_position == "AT_TIMESTAMP" and self.initial_timestamp is None:
            raise ConfigError(
                f"{path}.initialPositionInStreamTimestamp",
                "is required when initialPositionInStream = AT_TIMESTAMP",
            )
        if self.renewer_interval <= 0:
            raise ConfigError(
                f"{path}.failoverTimeMillis",
                f"the lease renewal interval {path}.failoverTimeMillis / 3 - "
                f"{path}.epsilonMillis = {self.failover_time * 1000:g} ms / 3 - "
                f"{self.epsilon * 1000:g} ms is not positive: raise failoverTimeMillis or "
                "lower epsilonMillis",
            )


@settings
class ConsumerConf(EntryConf):
    """Everything a named consumer needs, resolved with fallback to ``default-consumer``.

    ``kcl.streamArn`` may give the stream's ARN instead of ``stream-arn``.
    """

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset({"akka.dispatcher"})
    DEFAULT_BLOCK: ClassVar[str] = DEFAULT_CONSUMER
    REGION_FIELD: ClassVar[tuple[str, str]] = ("kcl", "region_name")

    worker: WorkerConf = section("worker", WorkerConf)
    checkpointer: CheckpointerConf = section("checkpointer", CheckpointerConf)
    kcl: KclConf = section("kcl", KclConf)

    @property
    def table_name(self) -> str:
        """The lease table: ``kcl.tableName``, else ``<application-name>-<stream-name>``."""
        return self.kcl.table_name or f"{self.application_name}-{self.stream_name}"

    @classmethod
    def from_block(cls, kinesis: ConfigTree, block: ConfigTree, name: str, path: str) -> Self:
        """Read a named block already laid over its default (the stream may be unset)."""
        conf = super().from_block(kinesis, block, name, path)
        conf.kcl.check(f"{path}.kcl")
        lease_table = conf.kcl.lease_table.checked(f"{path}.kcl")
        conf = dataclasses.replace(conf, kcl=dataclasses.replace(conf.kcl, lease_table=lease_table))
        arn, arn_key = conf.stream_arn, "stream-arn"
        if conf.kcl.stream_arn is not None:
            if arn is not None and arn != conf.kcl.stream_arn:
                raise ConfigError(
                    f"{path}.kcl.streamArn", f"differs from {path}.stream-arn; set one of the two"
                )
            arn, arn_key = conf.kcl.stream_arn, "kcl.streamArn"
        return conf.addressed_to(addressed(conf.stream_name, arn, path, arn_key))


def resolve_consumer_conf(
    source: ConsumerConf | ConfigTree, name: str | None = None
) -> ConsumerConf:
    """The one way an entry point turns what it was given into a ``ConsumerConf``.

    ``source`` is a resolved ``ConsumerConf``, or a loaded config (the whole tree or its
    ``kinesis`` block) with ``name`` naming the consumer block.
    """
    if isinstance(source, ConsumerConf):
        return source
    if not isinstance(source, ConfigTree):
        raise TypeError(
            f"expected a ConsumerConf or a loaded config and a consumer name, "
            f"got {type(source).__name__}"
        )
    if not name:
        raise ValueError("consumer_name is required with a loaded config, e.g. 'testConsumer'")
    return ConsumerConf.from_config(kinesis_block(source), name)
