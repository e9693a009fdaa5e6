"""The consumer's messages, named as in the Scala library so its protocol reads the same.

Pykka has no implicit sender, so a message that expects an answer carries ``reply_to``.

Public (between the library and an event-processor actor; re-exported by
``kinesis_actors.messages``): ``ProcessEvent`` -> processor, answered by ``EventProcessed``;
``ConsumerWorkerFailure`` and ``ConsumerShutdown`` tell the processor that a shard stopped.

Internal, between the per-shard actors (a ShardConsumer, its BatchTracker and ShardCheckpointer,
and the RecordProcessor of a ``process_record`` function): one batch (``StartBatch`` /
``ProcessingComplete``; ``ProcessRecords`` / ``RecordsAcknowledged`` and ``RecordsFailed`` with a
RecordProcessor),
shutdown (``GracefulShutdown`` / ``ShutdownComplete``), the checkpoint protocol
(``ReadyToCheckpoint``, ``Checkpoint``, ``CheckpointResult``, ``NotReady``) and the shard's
reports to the RecordProcessingManager (``StopShard`` in; ``ShardFinished``,
``ShardProcessingFailed``, ``ShardActorCrashed`` out). Messages one actor sends itself live in its
module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
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
    "CheckpointWanted",
    "ChildShards",
    "ConsumerShutdown",
    "ConsumerWorkerFailure",
    "EventProcessed",
    "GracefulShutdown",
    "NotReady",
    "NothingToCheckpoint",
    "ProcessEvent",
    "ProcessRecords",
    "ProcessingComplete",
    "ReadyToCheckpoint",
    "RecordsAcknowledged",
    "RecordsFailed",
    "ShardActorCrashed",
    "ShardFinished",
    "ShardProcessingFailed",
    "ShutdownComplete",
    "ShutdownReason",
    "StartBatch",
    "StopShard",
]

#: ``ChildShards`` of the last GetRecords response at a shard's end, as AWS sends them (None when
#: the backend sends none: the lease coordinator then lists the children itself).
ChildShards = tuple[Mapping[str, Any], ...] | None


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

    def acknowledge(
        self, successful: bool = True, error: BaseException | str | None = None
    ) -> None:
        """Reply ``EventProcessed`` for this event (``successful=False`` skips it on purpose,
        ``error`` saying why)."""
        # If the shard stopped, the record will be re-read by the next owner.
        tell(self.reply_to, EventProcessed(self.event.sequence_number, successful, error))


@dataclass(frozen=True)
class EventProcessed:
    """The ack of one record. ``successful=False`` means "skip it": it counts as processed and
    is checkpointed past, with a warning; ``error`` (an exception or why, optional) is the
    ``lastError`` the dead-letter path gets for it."""

    sequence_number: CompoundSequenceNumber
    successful: bool = True
    error: BaseException | str | None = None


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
class StartBatch:
    """ShardConsumer -> BatchTracker: run the batch protocol over these records;
    ``ProcessingComplete`` goes to ``reply_to`` when every record is acknowledged (or forgiven by
    the tolerance)."""

    events: tuple[ConsumerEvent, ...]
    shard_id: str
    reply_to: pykka.ActorRef[Any] = field(repr=False)


@dataclass(frozen=True)
class ProcessingComplete:
    """The batch is finished. ``successful=False``: unacknowledged records exceeded the
    tolerance (``failed_events`` lists them), the dead-letter path failed (``error``), or a
    shutdown aborted the batch."""

    successful: bool = True
    failed_events: tuple[ConsumerEvent, ...] = ()
    error: BaseException | None = None


@dataclass(frozen=True)
class ProcessRecords:
    """BatchTracker -> RecordProcessor (a ``process_record`` function): one attempt of a batch in
    one message instead of one ``ProcessEvent`` per record; answered by ``RecordsAcknowledged``
    and ``EventProcessed``."""

    events: tuple[ConsumerEvent, ...]
    reply_to: pykka.ActorRef[Any] = field(repr=False)


@dataclass(frozen=True)
class RecordsAcknowledged:
    """RecordProcessor -> BatchTracker: the acks of several records in one message."""

    sequence_numbers: tuple[CompoundSequenceNumber, ...]


@dataclass(frozen=True)
class RecordsFailed:
    """RecordProcessor -> BatchTracker: these records failed, each with its error in words
    (``"ValueError: bad payload"``). Not an ack: they are re-sent as before; the error is the one
    the dead-letter path gets if the tolerance skips them."""

    failures: tuple[tuple[CompoundSequenceNumber, str], ...]


@dataclass(frozen=True)
class GracefulShutdown:
    """ShardConsumer -> BatchTracker: stop this shard's processing for ``reason`` (with SHARD_END,
    ``child_shards`` go with the SHARD_END checkpoint); ``ShutdownComplete`` goes to
    ``reply_to``."""

    reason: ShutdownReason
    reply_to: pykka.ActorRef[Any] = field(repr=False)
    child_shards: ChildShards = None


@dataclass(frozen=True)
class ShutdownComplete:
    """``checkpoint_successful`` is True only if a final checkpoint ran and succeeded."""

    checkpoint_successful: bool


# -- internal: checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyToCheckpoint:
    """ShardCheckpointer -> BatchTracker, every ``checkpointer.notificationDelayMillis`` while it
    is ready: "send me a Checkpoint if you have something new"."""


@dataclass(frozen=True)
class NothingToCheckpoint:
    """BatchTracker -> ShardCheckpointer, answering ``ReadyToCheckpoint``: nothing newer than the
    last checkpoint. The checkpointer pauses its notifications until ``CheckpointWanted``, so an
    idle shard costs no timer and no wake-up."""


@dataclass(frozen=True)
class CheckpointWanted:
    """BatchTracker -> ShardCheckpointer after ``NothingToCheckpoint``, once something newer is
    processed: notifications resume, the first one ``notificationDelayMillis`` later."""


@dataclass(frozen=True)
class Checkpoint:
    """Checkpoint this position (``Sentinel.SHARD_END`` at shard end, with the ``child_shards``
    whose leases it creates). ``force=True`` runs even when not ready (final checkpoints; a
    forced SHARD_END is retried until it succeeds or the lease is lost). Answered by
    ``CheckpointResult`` to ``reply_to``, or as the ask result when ``reply_to`` is None; a
    non-forced one while busy gets ``NotReady``."""

    sequence_number: CompoundSequenceNumber | Sentinel
    force: bool = False
    reply_to: pykka.ActorRef[Any] | None = field(default=None, repr=False)
    child_shards: ChildShards = field(default=None, repr=False)


@dataclass(frozen=True)
class CheckpointResult:
    """The answer to a ``Checkpoint``: was ``sequence_number`` written to the lease table."""

    sequence_number: CompoundSequenceNumber | Sentinel
    success: bool


@dataclass(frozen=True)
class NotReady:
    """The ShardCheckpointer was checkpointing or waiting; ask again at the next
    ``ReadyToCheckpoint``."""

    checkpoint: Checkpoint


# -- internal: RecordProcessingManager <-> ShardConsumer ---------------------------------------


@dataclass(frozen=True)
class StopShard:
    """Manager -> ShardConsumer: stop this shard for ``reason``; ``ShardFinished`` follows."""

    reason: ShutdownReason


@dataclass(frozen=True)
class ShardFinished:
    """A ShardConsumer stopped for ``reason`` (after its final checkpoint, if any)."""

    lease: HeldLease
    reason: ShutdownReason
    checkpoint_successful: bool


@dataclass(frozen=True)
class ShardProcessingFailed:
    """A batch exceeded the failure tolerance, or its dead-letter path failed (``error``);
    ``worker.failurePolicy`` decides what stops."""

    lease: HeldLease
    failed_events: tuple[ConsumerEvent, ...]
    error: BaseException | None = None


@dataclass(frozen=True)
class ShardActorCrashed:
    """An actor of this shard (named by its class) died of an unexpected exception."""

    lease: HeldLease
    actor: str
    error: BaseException
