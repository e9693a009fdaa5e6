"""Fair, load-aware assignment of open leases to the live workers: one plan every worker agrees on.

Every worker computes the same plan from the same scan (ties are broken by ids, never by chance)
and carries out only its own part: it takes the free or expired leases the plan gives it, and
asks for a hand-off of the ones the plan moves to it from other workers. So a worker that joins
gets its whole share in one run, from every worker above the share at once.

* Only open leases are assigned; finished (SHARD_END) leases count for nobody.
* A lease weighs ``(1 + r) / 2``, where ``r`` is its measured read rate relative to the mean
  (records/s and bytes/s averaged), or 1 while nothing is measured: the mean lease weighs 1, an
  idle one still costs something (a reader), a hot one weighs more. A worker's load is the sum.
* Leases whose owner is alive stay; the rest (free, expired, owner gone) go, heaviest first,
  to the least loaded worker. Then, while moving one lease from the most loaded worker that
  has a movable lease to the least loaded one lowers the donor's load by more than ``damping``
  (in mean lease weights) without raising the receiver above it, the best such lease moves.
  With equal weights this ends with counts at most one apart; the damping keeps small swings
  in measured rates from moving leases back and forth.
* A lease in a hand-off (``checkpoint_owner`` set) counts for its next owner and does not move.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from kinesis_actors._leases.lease import Lease

__all__ = ["Assignment", "lease_weights", "plan_assignment"]


def _relative(values: dict[str, float]) -> dict[str, float]:
    mean = sum(values.values()) / len(values) if values else 0.0
    return {key: value / mean for key, value in values.items()} if mean > 0 else {}


def lease_weights(leases: Iterable[Lease]) -> dict[str, float]:
    """Shard id -> weight (mean 1 over measured leases; 1 for leases not measured)."""
    leases = list(leases)
    by_bytes = _relative(
        {le.shard_id: le.bytes_per_second for le in leases if le.bytes_per_second is not None}
    )
    by_records = _relative(
        {le.shard_id: le.records_per_second for le in leases if le.records_per_second is not None}
    )
    weights: dict[str, float] = {}
    for lease in leases:
        parts = [rel[lease.shard_id] for rel in (by_bytes, by_records) if lease.shard_id in rel]
        weights[lease.shard_id] = (1 + sum(parts) / len(parts)) / 2 if parts else 1.0
    return weights


@dataclass
class Assignment:
    """The plan: which worker should hold each open lease, and the resulting loads."""

    owners: dict[str, str] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def of(self, worker_id: str) -> set[str]:
        return {shard_id for shard_id, owner in self.owners.items() if owner == worker_id}


def _best_move(
    plan: Assignment,
    weights: dict[str, float],
    pinned: set[str],
    max_leases_for_worker: int,
    damping: float,
    rank: Callable[[str], tuple[float, int, str]],
) -> tuple[str, str, str] | None:
    """The lease to move from the most loaded worker that can give one to the least loaded."""
    receiver = min(
        (w for w in plan.loads if plan.counts[w] < max_leases_for_worker), key=rank, default=None
    )
    if receiver is None:
        return None
    low = plan.loads[receiver]
    for donor in sorted(plan.loads, key=rank, reverse=True):
        if donor == receiver:
            return None
        high = plan.loads[donor]
        movable = [s for s in plan.of(donor) if s not in pinned]
        best = min(
            movable, key=lambda s: (max(high - weights[s], low + weights[s]), s), default=None
        )
        if best is not None and high - max(high - weights[best], low + weights[best]) > damping:
            return best, donor, receiver
    return None


def plan_assignment(
    leases: Collection[Lease],
    available: Collection[str],
    workers: Collection[str],
    *,
    max_leases_for_worker: int = 2**31 - 1,
    damping: float = 0.5,
) -> Assignment:
    """Assign the open ``leases`` to ``workers``.

    ``available`` holds the shard ids of leases free or expired (as the caller observed); every
    other lease is held by its ``owner``, kept if that owner is in ``workers``.
    """
    open_leases = sorted((le for le in leases if not le.finished), key=lambda le: le.shard_id)
    weights = lease_weights(open_leases)
    plan = Assignment(loads={w: 0.0 for w in workers}, counts={w: 0 for w in workers})
    if not workers:
        return plan

    def give(shard_id: str, worker: str) -> None:
        plan.owners[shard_id] = worker
        plan.loads[worker] += weights[shard_id]
        plan.counts[worker] += 1

    def take_back(shard_id: str, worker: str) -> None:
        del plan.owners[shard_id]
        plan.loads[worker] -= weights[shard_id]
        plan.counts[worker] -= 1

    def rank(worker: str) -> tuple[float, int, str]:
        return (round(plan.loads[worker], 9), plan.counts[worker], worker)

    pool: list[Lease] = []
    pinned: set[str] = set()
    for lease in open_leases:
        owner = lease.owner
        if lease.shard_id not in available and owner in plan.loads:
            give(lease.shard_id, owner)
            if lease.checkpoint_owner is not None:
                pinned.add(lease.shard_id)
        else:
            pool.append(lease)
    for lease in sorted(pool, key=lambda le: (-weights[le.shard_id], le.shard_id)):
        room = [w for w in plan.loads if plan.counts[w] < max_leases_for_worker]
        if room:
            give(lease.shard_id, min(room, key=rank))

    for _ in range(2 * len(open_leases)):
        move = _best_move(plan, weights, pinned, max_leases_for_worker, damping, rank)
        if move is None:
            break
        shard_id, donor, receiver = move
        take_back(shard_id, donor)
        give(shard_id, receiver)
    return plan
