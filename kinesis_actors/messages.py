"""The actor protocol: the messages other actors exchange with the library's actors.

Like ``pykka.messages``, this module holds only what crosses the boundary between an
application's actors and the library's: the producer actor's requests and answers (the Scala
library's ``Send``, ``SendWithCallback``, ``SendSuccessful``, ``SendFailed``) and what an
event-processor actor receives and answers (``ProcessEvent``, ``EventProcessed``,
``ConsumerWorkerFailure``, ``ConsumerShutdown``). The per-shard machinery's own messages are
internal.
"""

from __future__ import annotations

from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    ProcessEvent,
    ShutdownReason,
)
from kinesis_actors._producer.messages import (
    GetStats,
    ProducerActorStats,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
)

__all__ = [
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "EventProcessed",
    "GetStats",
    "ProcessEvent",
    "ProducerActorStats",
    "Send",
    "SendFailed",
    "SendSuccessful",
    "SendWithCallback",
    "ShutdownReason",
]
