"""kinesis-actors: produce to and consume from Amazon Kinesis with Pykka actors.

A native Python KPL (batching, aggregating producer) and KCL (DynamoDB lease coordination)
on boto3: no JVM, no native daemon.
"""

from __future__ import annotations

from kinesis_actors._config import (
    CheckpointerConf,
    ConsumerConf,
    KclConf,
    KplConf,
    ProducerConf,
    ThrottlingConf,
    WorkerConf,
    load_config,
)
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._errors import (
    ConfigError,
    DeadLetterError,
    DependencyError,
    ExplicitHashKeyError,
    FanoutError,
    InvalidRecordError,
    InvalidStateError,
    KinesisActorsError,
    LeaseTableMissingError,
    PartitionKeyError,
    ProcessingFailedError,
    ProducerStoppedError,
    QueueFullError,
    RecordTooLargeError,
    ShutdownError,
    StreamNotFoundError,
    ThrottlingError,
    UserRecordFailedError,
)
from kinesis_actors._leases import DynamoDBLeaseTable, LeaseCoordinator
from kinesis_actors._models import (
    Attempt,
    CompoundSequenceNumber,
    ConsumerEvent,
    ProducerEvent,
    Sentinel,
    UserRecordResult,
)
from kinesis_actors._producer import KinesisProducer, KinesisProducerActor
from kinesis_actors._version import __version__
from kinesis_actors.aio import AsyncKinesisConsumer, AsyncKinesisProducer, AsyncProducerStats
from kinesis_actors.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    GetStats,
    ProcessEvent,
    ProducerActorStats,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
    ShutdownReason,
)

__all__ = [
    "AsyncKinesisConsumer",
    "AsyncKinesisProducer",
    "AsyncProducerStats",
    "Attempt",
    "CheckpointerConf",
    "CompoundSequenceNumber",
    "ConfigError",
    "ConsumerConf",
    "ConsumerEvent",
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "DeadLetterError",
    "DependencyError",
    "DynamoDBLeaseTable",
    "EventProcessed",
    "ExplicitHashKeyError",
    "FanoutError",
    "GetStats",
    "InvalidRecordError",
    "InvalidStateError",
    "KclConf",
    "KinesisActorsError",
    "KinesisConsumer",
    "KinesisProducer",
    "KinesisProducerActor",
    "KplConf",
    "LeaseCoordinator",
    "LeaseTableMissingError",
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
    "ShutdownReason",
    "StreamNotFoundError",
    "ThrottlingConf",
    "ThrottlingError",
    "UserRecordFailedError",
    "UserRecordResult",
    "WorkerConf",
    "__version__",
    "load_config",
]
