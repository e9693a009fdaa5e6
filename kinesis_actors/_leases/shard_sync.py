"""Shard sync: a lease for every shard that should be processed, parents before children.

Leases come from two places. At shard end the worker that finished a shard creates its children's
leases (`ShardSync.create_children`, from the ``ChildShards`` of GetRecords when given, else from
ListShards parent links: kinesalite never returns ``ChildShards``). A periodic full sync
(`ShardSync.sync`, also at startup) plans with `plan_new_leases`:

* an open shard none of whose known ancestors has a lease starts a new lineage: with LATEST the
  open shard gets a LATEST lease; with TRIM_HORIZON / AT_TIMESTAMP its oldest listed ancestors
  get leases at that position and their descendants follow at shard ends;
* a shard whose known parents all have leases, one of them finished, gets a TRIM_HORIZON lease
  (repairs a crash between a parent's SHARD_END checkpoint and its children's creation);
* a merge child is created only when both parents have leases: a parent without one gets it
  first, so both parents are processed before the child.

A child is processed only once every parent lease that still exists is at SHARD_END (the gate is
`LeaseCoordinator.parents_finished`). A finished lease is deleted (`ShardSync.clean_up`, when
``cleanupLeasesUponShardCompletion``) once every child has a lease checkpointed past its start
and the finished lease's own parents are gone.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from kinesis_actors._aws import error_code, list_all_shards
from kinesis_actors._errors import DependencyError, StreamNotFoundError
from kinesis_actors._leases.lease import Checkpoint, ChildShards, Lease
from kinesis_actors._leases.table import LeaseTable
from kinesis_actors._logging import get_logger
from kinesis_actors._models import Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["ShardInfo", "ShardSync", "plan_new_leases"]

log = get_logger(__name__)

#: Child checkpoints that mean "never checkpointed": the parent must stay until they move on.
_NOT_STARTED = frozenset({Sentinel.TRIM_HORIZON, Sentinel.AT_TIMESTAMP})


@dataclass(frozen=True)
class ShardInfo:
    """What shard sync needs to know about a shard."""

    shard_id: str
    parent_shard_ids: tuple[str, ...] = ()
    starting_hash_key: int | None = None
    ending_hash_key: int | None = None
    closed: bool = False

    @classmethod
    def from_list_shards(cls, shard: Mapping[str, Any]) -> ShardInfo:
        """From one entry of ListShards' ``Shards``."""
        parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
        hash_range = shard.get("HashKeyRange") or {}
        return cls(
            shard_id=shard["ShardId"],
            parent_shard_ids=tuple(sorted(p for p in parents if p)),
            starting_hash_key=_int_or_none(hash_range.get("StartingHashKey")),
            ending_hash_key=_int_or_none(hash_range.get("EndingHashKey")),
            closed="EndingSequenceNumber" in (shard.get("SequenceNumberRange") or {}),
        )

    @classmethod
    def from_child_shard(cls, child: Mapping[str, Any]) -> ShardInfo:
        """From one entry of GetRecords' (or SubscribeToShard's) ``ChildShards``."""
        hash_range = child.get("HashKeyRange") or {}
        return cls(
            shard_id=child["ShardId"],
            parent_shard_ids=tuple(sorted(child.get("ParentShards") or ())),
            starting_hash_key=_int_or_none(hash_range.get("StartingHashKey")),
            ending_hash_key=_int_or_none(hash_range.get("EndingHashKey")),
        )

    def new_lease(self, checkpoint: Checkpoint) -> Lease:
        """A free lease for this shard, starting at ``checkpoint``."""
        return Lease(
            shard_id=self.shard_id,
            owner=None,
            counter=0,
            checkpoint=checkpoint,
            parent_shard_ids=self.parent_shard_ids,
            starting_hash_key=self.starting_hash_key,
            ending_hash_key=self.ending_hash_key,
        )


def _int_or_none(value: object) -> int | None:
    return int(str(value)) if value is not None else None


def plan_new_leases(
    shards: Sequence[ShardInfo], leases: Iterable[Lease], initial_position: Sentinel
) -> list[Lease]:
    """The leases to create so every open shard is reached, parents before children.

    ``shards`` is the stream's full listing, ``leases`` the table's content. The result is
    ordered so that a crash part-way through creation leaves parents before children.
    """
    by_id = {shard.shard_id: shard for shard in shards}
    existing = {lease.shard_id: lease for lease in leases}
    planned: dict[str, Checkpoint] = {}

    def has_lease(shard_id: str) -> bool:
        return shard_id in existing or shard_id in planned

    def parents(shard_id: str) -> list[str]:
        """Parents still listed or still leased (older ones have expired from the stream)."""
        shard = by_id.get(shard_id)
        lease = existing.get(shard_id)
        ids = shard.parent_shard_ids if shard else lease.parent_shard_ids if lease else ()
        return [p for p in ids if p in by_id or p in existing]

    def lineage(shard_id: str) -> set[str]:
        found: set[str] = set()
        stack = [shard_id]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(parents(current))
        return found

    def start_lineage(shard_id: str) -> None:
        if initial_position == Sentinel.LATEST:
            planned[shard_id] = Sentinel.LATEST
            return
        for ancestor in lineage(shard_id):
            if not parents(ancestor):
                planned[ancestor] = initial_position

    for shard in sorted(by_id.values(), key=lambda s: s.shard_id):
        if not shard.closed and not any(has_lease(s) for s in lineage(shard.shard_id)):
            start_lineage(shard.shard_id)

    changed = True
    while changed:
        changed = False
        for shard_id in sorted(by_id):
            if has_lease(shard_id):
                continue
            shard_parents = parents(shard_id)
            if not any(has_lease(p) for p in shard_parents):
                continue  # reached later, from its own parents
            missing = [p for p in shard_parents if not has_lease(p)]
            for parent in missing:
                if not any(has_lease(a) for a in lineage(parent)):
                    start_lineage(parent)
                    changed = True
            if not missing and any(p in existing and existing[p].finished for p in shard_parents):
                planned[shard_id] = Sentinel.TRIM_HORIZON
                changed = True

    order = sorted(planned, key=lambda shard_id: (len(lineage(shard_id)), shard_id))
    return [by_id[shard_id].new_lease(planned[shard_id]) for shard_id in order]


class ShardSync:
    """Creates leases for new shards and deletes finished ones. Thread-safe (stateless).

    ``stop_event`` interrupts ListShards backoff waits, so shutdown is never held up by retries.
    """

    def __init__(
        self,
        table: LeaseTable,
        kinesis: KinesisClient,
        stream_name: str | StreamRef,
        *,
        initial_position: Sentinel = Sentinel.TRIM_HORIZON,
        cleanup: bool = True,
        list_shards_backoff: float = 1.5,
        list_shards_attempts: int = 50,
        stop_event: threading.Event | None = None,
    ) -> None:
        self._table = table
        self._kinesis = kinesis
        self._stream = StreamRef.of(stream_name)
        self._stream_name = self._stream.name
        self._initial_position = initial_position
        self._cleanup = cleanup
        self._list_shards_backoff = list_shards_backoff
        self._list_shards_attempts = list_shards_attempts
        self._stop_event = stop_event or threading.Event()
        self._log = log.bind(stream=stream_name)

    def list_shards(self) -> list[ShardInfo]:
        """Every shard of the stream (open and closed), retried with backoff."""
        attempt = 1
        while True:
            try:
                return [
                    ShardInfo.from_list_shards(shard)
                    for shard in list_all_shards(self._kinesis, self._stream)
                ]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise StreamNotFoundError(self._stream_name) from exc
                error: Exception = exc
            except botocore.exceptions.BotoCoreError as exc:
                error = exc
            if attempt >= self._list_shards_attempts:
                raise DependencyError(
                    f"ListShards {self._stream_name} failed {attempt} times: {error}"
                ) from error
            self._log.warning("ListShards failed, will retry", attempt=attempt, error=str(error))
            if self._stop_event.wait(self._list_shards_backoff):
                raise DependencyError("ListShards retries interrupted by shutdown") from error
            attempt += 1

    def sync(self, shards: Sequence[ShardInfo] | None = None) -> list[str]:
        """Create the leases `plan_new_leases` asks for, then clean up; returns the created ids.

        ``shards`` is a listing just made (`list_shards`); without, the stream is listed.
        """
        shards = self.list_shards() if shards is None else shards
        leases = self._table.list_leases()
        created = [
            lease.shard_id
            for lease in plan_new_leases(shards, leases, self._initial_position)
            if self._table.create_lease(lease)
        ]
        if created:
            self._log.info("leases created", shard_ids=created)
        self.clean_up(shards, leases)
        return created

    def create_children(
        self, parent: Lease, child_shards: ChildShards | None = None
    ) -> tuple[str, ...]:
        """Create the leases of a finished shard's children; returns the children's ids.

        ``child_shards`` is GetRecords' ``ChildShards`` if the caller got it; otherwise the
        children are found in ListShards. A merge child whose other parent has no lease yet is
        left to a full sync, which leases that parent first.
        """
        if child_shards:
            children = [ShardInfo.from_child_shard(child) for child in child_shards]
        else:
            children = [s for s in self.list_shards() if parent.shard_id in s.parent_shard_ids]
        needs_sync = False
        for child in children:
            if self._table.get_lease(child.shard_id) is not None:
                continue
            other_parents = [p for p in child.parent_shard_ids if p != parent.shard_id]
            if all(self._table.get_lease(p) is not None for p in other_parents):
                if self._table.create_lease(child.new_lease(Sentinel.TRIM_HORIZON)):
                    self._log.info("child lease created", shard_id=child.shard_id)
            else:
                needs_sync = True
        child_ids = tuple(sorted(child.shard_id for child in children))
        self._table.add_child_shard_ids(parent.shard_id, child_ids)
        if needs_sync:
            self.sync()
        return child_ids

    def clean_up(self, shards: Sequence[ShardInfo], leases: Sequence[Lease]) -> list[str]:
        """Delete finished leases no longer needed; returns the deleted ids.

        A finished lease goes once every child has a lease checkpointed past TRIM_HORIZON /
        AT_TIMESTAMP and none of its own parents' leases is left. Children missing from the
        lease are taken from the listing and written back.
        """
        if not self._cleanup:
            return []
        by_id = {lease.shard_id: lease for lease in leases}
        listed_children: dict[str, set[str]] = defaultdict(set)
        for shard in shards:
            for parent in shard.parent_shard_ids:
                listed_children[parent].add(shard.shard_id)
        deleted: list[str] = []
        for lease in leases:
            if not lease.finished:
                continue
            children = set(lease.child_shard_ids) | listed_children.get(lease.shard_id, set())
            if not children:
                continue
            if not children <= set(lease.child_shard_ids):
                self._table.add_child_shard_ids(lease.shard_id, tuple(sorted(children)))
            if any(parent in by_id for parent in lease.parent_shard_ids):
                continue
            started = all(
                child in by_id and by_id[child].checkpoint not in _NOT_STARTED for child in children
            )
            if started and self._table.delete_finished(lease.shard_id):
                deleted.append(lease.shard_id)
        if deleted:
            self._log.info("finished leases deleted", shard_ids=deleted)
        return deleted
