"""The consumer's messages, named as in the Scala library so its protocol reads the same.

Pykka has no implicit sender, so a message that expects an answer carries ``reply_to``.

Public (between the library and an event-processor actor):
``ProcessEvent`` -> processor, answered by ``EventProcessed``; ``ConsumerWorkerFailure`` and
``ConsumerShutdown`` tell the processor that a shard stopped.

Internal (between the per-shard actors): ``ProcessEvents`` / ``ProcessingComplete`` (one batch),
``GracefulShutdown`` / ``ShutdownComplete``, and the checkpoint protocol ``ReadyToCheckpoint``,
``Checkpoint``, ``CheckpointResult``, ``NotReady``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors._actors import tell

if TYPE_CHECKING:
    from kinesis_actors._leases.lease import HeldLease
    from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel

__all__ = [
    "Checkpoint",
    "CheckpointResult",
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "EventProcessed",
    "EventsProcessed",
    "GracefulShutdown",
    "NotReady",
    "ProcessEvent",
    "ProcessEventBatch",
    "ProcessEvents",
    "ProcessingComplete",
    "ProcessingTimeout",
    "ReadyToCheckpoint",
    "ShardFailed",
    "ShardFinished",
    "ShardProcessingFailed",
    "ShutdownComplete",
    "ShutdownReason",
]


class ShutdownReason(enum.Enum):
    """Why a shard's processing ends (the KCL's reasons; K1 called LEASE_LOST "ZOMBIE")."""

    #: The shard is closed and fully read: checkpoint SHARD_END so its children can start.
    SHARD_END = "SHARD_END"
    #: Another worker holds the lease now: no checkpoint is possible; stop at once.
    LEASE_LOST = "LEASE_LOST"
    #: The consumer is stopping (or the shard is handed off): final checkpoint, then release.
    REQUESTED = "REQUESTED"


# -- public: library <-> event processor -------------------------------------------------------


@dataclass(frozen=True)
class ProcessEvent:
    """One record to process. Reply ``EventProcessed(event.sequence_number)`` to ``reply_to``,
    or call ``acknowledge()``; no reply means "not processed" and the record is re-sent after
    the batch timeout."""

    event: ConsumerEvent
    reply_to: pykka.ActorRef[Any] = field(repr=False)

    def acknowledge(self, successful: bool = True) -> None:
        """Reply ``EventProcessed`` for this event (``successful=False`` skips it on purpose)."""
        # If the shard stopped, the record will be re-read by the next owner.
        tell(self.reply_to, EventProcessed(self.event.sequence_number, successful))


@dataclass(frozen=True)
class EventProcessed:
    """The ack of one record. ``successful=False`` means "skip it": it counts as processed and
    is checkpointed past, with a warning."""

    sequence_number: CompoundSequenceNumber
    successful: bool = True


@dataclass(frozen=True)
class EventsProcessed:
    """Several acks in one message (from the built-in RecordProcessor)."""

    sequence_numbers: tuple[CompoundSequenceNumber, ...]


@dataclass(frozen=True)
class ConsumerWorkerFailure:
    """These records stayed unacknowledged after every retry, beyond the failure tolerance;
    the shard (or the whole consumer, by ``worker.failurePolicy``) shuts down."""

    failed_events: tuple[ConsumerEvent, ...]
    shard_id: str


@dataclass(frozen=True)
class ConsumerShutdown:
    """Processing of this shard has ended on this worker (any shutdown reason)."""

    shard_id: str


# -- internal: one batch -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessEvents:
    """Start a batch: one ``ProcessEvent`` per record; ``ProcessingComplete`` goes to
    ``reply_to`` when every record is acknowledged (or forgiven by the tolerance)."""

    events: tuple[ConsumerEvent, ...]
    shard_id: str
    reply_to: pykka.ActorRef[Any] = field(repr=False)


@dataclass(frozen=True)
class ProcessEventBatch:
    """``ProcessEvent`` for many records in one message, to the built-in RecordProcessor (a
    ``process_record`` function); acks come back as ``EventsProcessed`` / ``EventProcessed``."""

    events: tuple[ConsumerEvent, ...]
    reply_to: pykka.ActorRef[Any] = field(repr=False)


@dataclass(frozen=True)
class ProcessingTimeout:
    """The batch timeout of attempt ``attempt`` of batch ``batch`` expired (stale ones are
    ignored)."""

    batch: int
    attempt: int


@dataclass(frozen=True)
class ProcessingComplete:
    """The batch is finished. ``successful=False``: unacknowledged records exceeded the
    tolerance (``failed_events`` lists them), or a shutdown aborted the batch."""

    successful: bool = True
    failed_events: tuple[ConsumerEvent, ...] = ()


@dataclass(frozen=True)
class GracefulShutdown:
    """Stop this shard's processing for ``reason``; ``ShutdownComplete`` goes to
    ``reply_to``."""

    reason: ShutdownReason
    reply_to: pykka.ActorRef[Any] = field(repr=False)


@dataclass(frozen=True)
class ShutdownComplete:
    """``checkpoint_successful`` is True only if a final checkpoint ran and succeeded."""

    checkpoint_successful: bool


# -- internal: checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyToCheckpoint:
    """From the CheckpointWorker, every ``checkpointer.notificationDelayMillis`` while it is
    ready: "send me a Checkpoint if you have something new"."""


@dataclass(frozen=True)
class Checkpoint:
    """Checkpoint this position (``Sentinel.SHARD_END`` at shard end). ``force=True`` runs even
    when not ready (final checkpoints). Answered by ``CheckpointResult`` to ``reply_to``, or as
    the ask result when ``reply_to`` is None; a non-forced one while busy gets ``NotReady``."""

    sequence_number: CompoundSequenceNumber | Sentinel
    force: bool = False
    reply_to: pykka.ActorRef[Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CheckpointResult:
    sequence_number: CompoundSequenceNumber | Sentinel
    success: bool


@dataclass(frozen=True)
class NotReady:
    """The CheckpointWorker was checkpointing or waiting; ask again at the next
    ``ReadyToCheckpoint``."""

    checkpoint: Checkpoint


# -- internal: shard -> RecordProcessingManager ------------------------------------------------


@dataclass(frozen=True)
class ShardFinished:
    """A shard worker stopped for ``reason`` (after its final checkpoint, if any)."""

    lease: HeldLease
    reason: ShutdownReason
    checkpoint_successful: bool


@dataclass(frozen=True)
class ShardProcessingFailed:
    """A batch exceeded the failure tolerance; ``worker.failurePolicy`` decides what stops."""

    lease: HeldLease
    failed_events: tuple[ConsumerEvent, ...]


@dataclass(frozen=True)
class ShardFailed:
    """An actor of this shard died of an unexpected exception (its ``on_failure``)."""

    lease: HeldLease
    actor: str
    error: BaseException
