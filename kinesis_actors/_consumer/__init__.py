"""Consuming a stream: the KinesisConsumer facade and the actor protocol behind it.

`KinesisConsumer` is the entry point. Event-processor actors use the public messages
`ProcessEvent` (received), `EventProcessed` (the reply), `ConsumerWorkerFailure` and
`ConsumerShutdown`; the other modules are the per-shard machinery.
"""

from __future__ import annotations

from kinesis_actors._consumer.consumer import KinesisConsumer
from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    ProcessEvent,
    ShutdownReason,
)
from kinesis_actors._consumer.processor import ProcessRecord

__all__ = [
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "EventProcessed",
    "KinesisConsumer",
    "ProcessEvent",
    "ProcessRecord",
    "ShutdownReason",
]
