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
from kinesis_actors.consumer import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    KinesisConsumer,
    ProcessEvent,
)
from kinesis_actors.errors import (
    ConfigError,
    DependencyError,
    ExplicitHashKeyError,
    InvalidRecordError,
    InvalidStateError,
    KinesisActorsError,
    PartitionKeyError,
    ProcessingFailedError,
    ProducerStoppedError,
    QueueFullError,
    RecordTooLargeError,
    ShutdownError,
    ThrottlingError,
    UserRecordFailedError,
)
from kinesis_actors.leases import LeaseCoordinator
from kinesis_actors.models import (
    Attempt,
    CompoundSequenceNumber,
    ConsumerEvent,
    ProducerEvent,
    Sentinel,
    UserRecordResult,
)
from kinesis_actors.producer import (
    KinesisProducer,
    KinesisProducerActor,
    ProducerActorStats,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)

__all__ = [
    "Attempt",
    "CheckpointerConf",
    "CompoundSequenceNumber",
    "ConfigError",
    "ConsumerConf",
    "ConsumerEvent",
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "DependencyError",
    "EventProcessed",
    "ExplicitHashKeyError",
    "InvalidRecordError",
    "InvalidStateError",
    "KclConfig",
    "KinesisActorsError",
    "KinesisConsumer",
    "KinesisProducer",
    "KinesisProducerActor",
    "KplConfig",
    "LeaseCoordinator",
    "PartitionKeyError",
    "ProcessEvent",
    "ProcessingFailedError",
    "ProducerActorStats",
    "ProducerConf",
    "ProducerEvent",
    "ProducerStoppedError",
    "QueueFullError",
    "RecordTooLargeError",
    "Send",
    "SendFailed",
    "SendSuccessful",
    "SendWithCallback",
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
