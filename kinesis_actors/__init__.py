"""kinesis-actors: produce to and consume from Amazon Kinesis with Pykka actors.

A native Python KPL (batching, aggregating producer) and KCL (DynamoDB lease coordination)
on boto3: no JVM, no native daemon.
"""

from __future__ import annotations

from kinesis_actors._version import __version__
from kinesis_actors.config import (
    CheckpointerConf,
    ConsumerConf,
    KclConfig,
    KplConfig,
    ProducerConf,
    ThrottlingConf,
    WorkerConf,
    load_config,
)
from kinesis_actors.errors import (
    ConfigError,
    DependencyError,
    ExplicitHashKeyError,
    InvalidRecordError,
    InvalidStateError,
    KinesisActorsError,
    PartitionKeyError,
    ProducerStoppedError,
    QueueFullError,
    RecordTooLargeError,
    ShutdownError,
    ThrottlingError,
    UserRecordFailedError,
)
from kinesis_actors.models import (
    Attempt,
    CompoundSequenceNumber,
    ConsumerEvent,
    ProducerEvent,
    Sentinel,
    UserRecordResult,
)

__all__ = [
    "Attempt",
    "CheckpointerConf",
    "CompoundSequenceNumber",
    "ConfigError",
    "ConsumerConf",
    "ConsumerEvent",
    "DependencyError",
    "ExplicitHashKeyError",
    "InvalidRecordError",
    "InvalidStateError",
    "KclConfig",
    "KinesisActorsError",
    "KplConfig",
    "PartitionKeyError",
    "ProducerConf",
    "ProducerEvent",
    "ProducerStoppedError",
    "QueueFullError",
    "RecordTooLargeError",
    "Sentinel",
    "ShutdownError",
    "ThrottlingConf",
    "ThrottlingError",
    "UserRecordFailedError",
    "UserRecordResult",
    "WorkerConf",
    "__version__",
    "load_config",
]
