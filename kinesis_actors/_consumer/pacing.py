"""ReadPacer: when a shard's next GetRecords may start (the KCL's pacing, with catch-up).

AWS allows 5 GetRecords per second per shard, shared by every application reading the stream.
So, as in KCL 2.x, a shard is read at most once per read interval (``idleTimeBetweenReadsInMillis``)
whether the last read returned records or not. A read that came back full (``maxRecords`` records
or the size cap) means the shard is behind: the next read may follow at once, within this
consumer's share of the read limit (``readsPerSecondPerShard``). A throttled read backs off
exponentially from ``taskBackoffTimeMillis``, never sooner than the read interval. Opt-in idle
backoff (``idleReadBackoffMaxMillis``): after some empty reads in a row the interval doubles up to
a bound, and snaps back at the first record. Pure state; the ShardConsumer owns one per shard.

Phase: the shards of a consumer start reading together (their leases are taken in one go), so at
the read interval they would all poll in step, and the BlockingExecutor would need a thread per
shard at each step. With ``phase`` (the ShardConsumer passes ``random.random``), the first empty
read of a shard waits a random fraction of one more interval, once: the reads of idle shards are
then spread over the interval, and a few threads serve them all. A shard with records is never
delayed (only an empty read shifts, and only once).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kinesis_actors._config import KclConf

__all__ = ["FULL_READ_BYTES", "MAX_THROTTLE_BACKOFF", "ReadPacer"]

#: GetRecords returns at most 10 MiB: a read this large is full.
FULL_READ_BYTES: Final = 10 * 1024 * 1024
#: Longest wait after repeated throttling, seconds.
MAX_THROTTLE_BACKOFF: Final = 10.0


class ReadPacer:
    """The interval before a shard's next read, from the outcome of the last one."""

    __slots__ = (
        "_backoff_after",
        "_backoff_max",
        "_catch_up_interval",
        "_empty_reads",
        "_interval",
        "_last_start",
        "_phase",
        "_read_interval",
        "_task_backoff",
        "_throttles",
    )

    def __init__(self, kcl: KclConf, phase: Callable[[], float] | None = None) -> None:
        self._read_interval = kcl.read_interval
        #: Draws the one-time shift, a fraction in [0, 1) of the interval (None: none or done).
        self._phase = phase
        # after a full read: within the share of the read limit (never slower than usual)
        self._catch_up_interval = min(self._read_interval, 1.0 / kcl.reads_per_second_per_shard)
        self._task_backoff = kcl.task_backoff_time
        self._backoff_max = kcl.idle_read_backoff_max
        self._backoff_after = kcl.idle_read_backoff_after_empty_reads
        self._last_start = -math.inf
        self._interval = 0.0
        self._empty_reads = 0
        self._throttles = 0

    @property
    def interval(self) -> float:
        """Seconds from the start of the last read to the start of the next."""
        return self._interval

    def next_read_at(self) -> float:
        """The monotonic time the next read may start."""
        return self._last_start + self.interval

    def started(self, now: float) -> None:
        """A read starts now."""
        self._last_start = now

    def read(self, *, records: int, full: bool) -> None:
        """The read answered with ``records`` Kinesis records (``full``: at a size or count cap)."""
        self._throttles = 0
        if full:
            self._empty_reads = 0
            self._interval = self._catch_up_interval
        elif records:
            self._empty_reads = 0
            self._interval = self._read_interval
        else:
            self._empty_reads += 1
            self._interval = self._idle_interval()
            if self._phase is not None:
                self._interval += self._read_interval * self._phase()
                self._phase = None

    def _idle_interval(self) -> float:
        beyond = self._empty_reads - self._backoff_after
        if self._backoff_max <= self._read_interval or beyond < 0:
            return self._read_interval
        return min(self._backoff_max, self._read_interval * 2.0 ** min(beyond + 1, 30))

    def throttled(self) -> float:
        """The read was throttled; the wait before the next (also returned, for the log)."""
        self._throttles += 1
        backoff = self._task_backoff * 2.0 ** min(self._throttles - 1, 30)
        self._interval = max(self._read_interval, min(backoff, MAX_THROTTLE_BACKOFF))
        return self._interval

    def failed(self) -> float:
        """The read failed otherwise; the wait before the next."""
        self._interval = max(self._read_interval, self._task_backoff)
        return self._interval
