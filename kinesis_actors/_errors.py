"""Every exception kinesis-actors raises, so callers can catch by kind rather than by message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinesis_actors._models import ConsumerEvent, UserRecordResult

__all__ = [
    "ConfigError",
    "DeadLetterError",
    "DependencyError",
    "ExplicitHashKeyError",
    "FanoutError",
    "InvalidRecordError",
    "InvalidStateError",
    "KinesisActorsError",
    "LeaseTableMissingError",
    "LocalBackendError",
    "PartitionKeyError",
    "ProcessingFailedError",
    "ProducerStoppedError",
    "QueueFullError",
    "RecordTooLargeError",
    "ShutdownError",
    "StreamNotFoundError",
    "ThrottlingError",
    "UserRecordFailedError",
]


class KinesisActorsError(Exception):
    """Base of every error raised by this library."""


class ConfigError(KinesisActorsError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    The message names the full key path, the bad value and what is allowed.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class LocalBackendError(KinesisActorsError, RuntimeError):
    """The local Kinesis / DynamoDB emulators could not be installed or started."""


# -- producer -------------------------------------------------------------------------------------


class ProducerStoppedError(KinesisActorsError, RuntimeError):
    """A record was added after the producer was stopped."""


class InvalidRecordError(KinesisActorsError, ValueError):
    """A user record breaks a Kinesis limit; only that record's future fails."""


class PartitionKeyError(InvalidRecordError):
    """The partition key is empty or longer than 256 Unicode characters."""


class RecordTooLargeError(InvalidRecordError):
    """Payload plus partition key exceed ``MaxUserRecordSize``."""


class ExplicitHashKeyError(InvalidRecordError):
    """The explicit hash key is not a decimal integer in [0, 2**128 - 1]."""


class UserRecordFailedError(KinesisActorsError):
    """A user record could not be put; ``result`` holds every attempt made."""

    def __init__(self, result: UserRecordResult) -> None:
        last = result.attempts[-1] if result.attempts else None
        detail = f"{last.error_code}: {last.error_message}" if last else "no attempt made"
        super().__init__(f"record failed after {len(result.attempts)} attempt(s), last {detail}")
        self.result = result


class QueueFullError(KinesisActorsError, RuntimeError):
    """The producer actor's send queue reached its memory guard (``akka.max-queued-sends``)."""


# -- leases and checkpoints (the KCL's checkpoint exceptions) ------------------------------------


class ShutdownError(KinesisActorsError):
    """The lease is no longer held by this worker (lost, stolen or stale token): stop the shard."""


class ThrottlingError(KinesisActorsError):
    """DynamoDB throttled a lease-table write: back off and retry."""


class InvalidStateError(KinesisActorsError):
    """The lease table or the checkpoint is in a state that retrying cannot fix."""


class LeaseTableMissingError(InvalidStateError):
    """The lease table does not exist (deleted while the consumer ran): it is never recreated,
    because its checkpoints are gone and whether to reprocess or skip is the operator's call."""

    def __init__(self, table: str, detail: str = "") -> None:
        super().__init__(f"lease table {table} does not exist" + (f" ({detail})" if detail else ""))
        self.table = table


class StreamNotFoundError(InvalidStateError):
    """The stream to consume does not exist; nothing (no lease table) was created for it."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream} does not exist")
        self.stream = stream


class DependencyError(KinesisActorsError):
    """DynamoDB or Kinesis failed or could not be reached: back off and retry."""


# -- consumer -------------------------------------------------------------------------------------


class FanoutError(KinesisActorsError):
    """Enhanced fan-out could not be set up (stream or consumer missing, consumer not ACTIVE in
    time), or a shard's subscription failed in a way retrying cannot fix."""


class DeadLetterError(KinesisActorsError):
    """Skipped records could not be written to ``worker.deadLetterStream``; the batch failed."""


class ProcessingFailedError(KinesisActorsError):
    """Records stayed unacknowledged after every retry, beyond ``failureTolerancePercentage``,
    or skipped records could not be kept by the dead-letter path (``__cause__`` is its error)."""

    def __init__(
        self,
        shard_id: str,
        failed_events: tuple[ConsumerEvent, ...],
        dead_letter_error: BaseException | None = None,
    ) -> None:
        first = ", ".join(str(e.sequence_number) for e in failed_events[:5])
        more = ", ..." if len(failed_events) > 5 else ""
        why = f" (dead-letter path failed: {dead_letter_error})" if dead_letter_error else ""
        super().__init__(
            f"{len(failed_events)} record(s) of {shard_id} not processed: {first}{more}{why}"
        )
        self.shard_id = shard_id
        self.failed_events = failed_events
        self.__cause__ = dead_letter_error
