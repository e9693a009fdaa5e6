"""Shard prediction: which open shard's hash range holds a hash key (the KPL's ShardMap).

Aggregation and the per-shard limiter both need to know where a record will land before it is
sent. The map is built from ListShards, refreshed with backoff when that fails, and refreshed
when a put lands somewhere unexpected. The map is pure state; the producer runs the ListShards
calls (``list_shards``) on its pool and feeds the outcome back.
"""

from __future__ import annotations

import bisect
import enum
from typing import TYPE_CHECKING

from kinesis_actors._aws import list_all_shards
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardTypeDef

__all__ = ["ShardMap", "ShardMapState", "list_shards", "shard_number"]


class ShardMapState(enum.Enum):
    UPDATING = "updating"
    READY = "ready"
    INVALID = "invalid"


def shard_number(shard_id: str) -> int:
    """The number of ``shardId-000000000123``; children are numbered above their parents."""
    return int(shard_id.rsplit("-", 1)[-1])


def list_shards(client: KinesisClient, stream: str | StreamRef) -> list[ShardTypeDef]:
    """The open shards of the stream (``AT_LATEST``), every page.

    Emulators ignore the filter, so the map also checks ``EndingSequenceNumber``.
    """
    return list_all_shards(client, stream, shard_filter={"Type": "AT_LATEST"}, page_size=1000)


class ShardMap:
    """Sorted ending hash keys of the open shards, looked up by bisection.

    While an update runs, the previous map keeps serving; after a failed update there is no
    prediction (records go unaggregated) until a retry, with backoff from ``min_backoff``
    growing 1.5x to ``max_backoff``. Hash ranges of shards that closed stay known for
    ``closed_shard_ttl`` after the last update, to judge where a misrouted record belonged.
    """

    def __init__(
        self,
        *,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        closed_shard_ttl: float = 60.0,
    ) -> None:
        self.state = ShardMapState.INVALID
        #: False until the first update finished (either way): records wait for it a little.
        self.settled = False
        self.updated_at = -float("inf")
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._backoff = min_backoff
        self._closed_shard_ttl = closed_shard_ttl
        self._retry_at: float | None = None
        self._refresh_wanted = True
        self._ends: list[int] = []
        self._ids: list[str] = []
        self._open: dict[str, tuple[int, int]] = {}
        self._closed: dict[str, tuple[int, int]] = {}

    # -- lookups (hot path) -----------------------------------------------------------------------

    def shard_for(self, hash_key: int) -> str | None:
        """The open shard whose range holds ``hash_key``, or None while there is no map."""
        ends = self._ends
        index = bisect.bisect_left(ends, hash_key)
        return self._ids[index] if index < len(ends) else None

    @property
    def lookup_tables(self) -> tuple[list[int], list[str]]:
        """Sorted ending hash keys and their shard ids, for callers that bisect in a loop."""
        return self._ends, self._ids

    def hash_range(self, shard_id: str, now: float) -> tuple[int, int] | None:
        """Inclusive hash range of an open, or recently closed, shard; None if unknown."""
        found = self._open.get(shard_id)
        if found is None and now <= self.updated_at + self._closed_shard_ttl:
            found = self._closed.get(shard_id)
        return found

    # -- refresh protocol ------------------------------------------------------------------------

    def refresh_due(self, now: float) -> bool:
        """Whether a ListShards round should start now."""
        if self.state is ShardMapState.UPDATING:
            return False
        if self._retry_at is not None:
            return now >= self._retry_at
        return self._refresh_wanted

    def next_refresh(self) -> float | None:
        """When a failed update is retried (None: no retry pending or already due)."""
        return self._retry_at if self.state is ShardMapState.INVALID else None

    def begin_update(self) -> None:
        self.state = ShardMapState.UPDATING
        self._refresh_wanted = False
        self._retry_at = None

    def update(self, shards: Iterable[ShardTypeDef], now: float) -> None:
        """Install a ListShards result; shards with an EndingSequenceNumber are closed."""
        previous_open = self._open
        opened: dict[str, tuple[int, int]] = {}
        closed: dict[str, tuple[int, int]] = {}
        for shard in shards:
            hash_range = shard["HashKeyRange"]
            bounds = (int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"]))
            if shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"):
                closed[shard["ShardId"]] = bounds
            else:
                opened[shard["ShardId"]] = bounds
        for shard_id, bounds in previous_open.items():
            if shard_id not in opened:
                closed.setdefault(shard_id, bounds)
        if now <= self.updated_at + self._closed_shard_ttl:
            for shard_id, bounds in self._closed.items():
                if shard_id not in opened:
                    closed.setdefault(shard_id, bounds)
        ordered = sorted((end, shard_id) for shard_id, (_, end) in opened.items())
        self._ends = [end for end, _ in ordered]
        self._ids = [shard_id for _, shard_id in ordered]
        self._open = opened
        self._closed = closed
        self.updated_at = now
        self.state = ShardMapState.READY
        self.settled = True
        self._backoff = self._min_backoff

    def update_failed(self, now: float) -> float:
        """Drop the map until a retry; returns the backoff before that retry."""
        backoff = self._backoff
        self.state = ShardMapState.INVALID
        self.settled = True
        self._ends, self._ids = [], []
        self._retry_at = now + backoff
        self._backoff = min(backoff * 1.5, self._max_backoff)
        return backoff

    def invalidate(self, seen_at: float, predicted_shard: str | None) -> bool:
        """Ask for a refresh after a record landed off its prediction at ``seen_at``.

        Ignored when the map was updated after ``seen_at`` (it already knows), while an update
        runs, or when the predicted shard has already left the open set.
        """
        if (
            self.state is ShardMapState.READY
            and seen_at > self.updated_at
            and (predicted_shard is None or predicted_shard in self._open)
        ):
            self._refresh_wanted = True
            return True
        return False
