"""What a shard may checkpoint: the acknowledgements of one batch and its checkpoint targets
(`ResponseCollector`), and the positions already written or in flight (`CheckpointPositions`),
so that the same or an older position is never checkpointed twice. Pure state of the
BatchTracker."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel

__all__ = ["CheckpointPositions", "ResponseCollector"]

_position_key = operator.attrgetter("_key")
#: States of a position in ``_acked`` (0: not acknowledged).
_ACKED, _HELD = 1, 2


class ResponseCollector:
    """The acknowledgements of one batch.

    Acks are counted per record of the batch (an ack for anything else is ignored), so the batch
    is done exactly when each of its records was acknowledged once. O(1) per ack: positions are
    looked up by their ``(sequence, sub-sequence)`` integer key, whose hash and comparisons are
    the tuple's own (no Python-level ``__hash__``/``__eq__`` per record).
    """

    __slots__ = ("_acked", "_contiguous", "_positions", "_sorted", "events", "pending", "previous")

    def __init__(
        self, events: Sequence[ConsumerEvent], previous: CompoundSequenceNumber | None
    ) -> None:
        self.events = events
        #: The checkpoint target carried over from earlier batches.
        self.previous = previous
        self._sorted = sorted((event.sequence_number for event in events), key=_position_key)
        self._positions = {seq._key: i for i, seq in enumerate(self._sorted)}
        self._acked = bytearray(len(events))
        self._contiguous = 0
        self.pending = len(events)

    def ack(self, sequence_number: CompoundSequenceNumber, *, hold: bool = False) -> bool:
        """Record an ack; False if the position is not in this batch. A ``hold`` ack counts for
        `done` but `latest_confirmed` stays below it (a skipped record not yet dead-lettered)."""
        position = self._positions.get(sequence_number._key)
        if position is None:
            return False
        if not self._acked[position]:
            self._acked[position] = _HELD if hold else _ACKED
            self.pending -= 1
            acked, n = self._acked, len(self._acked)
            while self._contiguous < n and acked[self._contiguous] == _ACKED:
                self._contiguous += 1
        return True

    @property
    def done(self) -> bool:
        return self.pending == 0

    @property
    def latest_confirmed(self) -> CompoundSequenceNumber | None:
        """Highest position with nothing unacknowledged at or below it (else the carried one)."""
        if self._contiguous:
            return self._sorted[self._contiguous - 1]
        return self.previous

    @property
    def latest_event(self) -> CompoundSequenceNumber | None:
        """The batch's highest position: the target when the tolerance forgives the rest."""
        return self._sorted[-1] if self._sorted else self.previous

    @property
    def unconfirmed(self) -> tuple[ConsumerEvent, ...]:
        """Unacknowledged records, in the batch's order."""
        acked, positions = self._acked, self._positions
        return tuple(e for e in self.events if not acked[positions[e.sequence_number._key]])


class CheckpointPositions:
    """The position last checkpointed and the one in flight (one at a time)."""

    __slots__ = ("in_flight", "written")

    def __init__(self) -> None:
        self.written: CompoundSequenceNumber | None = None
        self.in_flight: CompoundSequenceNumber | None = None

    def is_new(self, position: CompoundSequenceNumber | None) -> bool:
        """Above what was checkpointed (never the same or an older position twice)."""
        return position is not None and (self.written is None or position > self.written)

    def offer(self, target: CompoundSequenceNumber | None) -> bool:
        """True if ``target`` is to be checkpointed now (it is then in flight)."""
        if target is None or not self.is_new(target):
            return False
        if self.in_flight is not None and target <= self.in_flight:
            return False
        self.in_flight = target
        return True

    def answered(self, position: CompoundSequenceNumber | Sentinel, success: bool) -> None:
        """The checkpoint in flight was answered (``NotReady`` is a failure)."""
        self.in_flight = None
        if success and isinstance(position, CompoundSequenceNumber) and self.is_new(position):
            self.written = position
