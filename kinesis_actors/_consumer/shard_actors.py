"""The children of a ShardConsumer: how its BatchTracker and ShardCheckpointer are started, and
how any of the shard's actors reports a crash. Built from values only (the lease, the settings,
the refs), so no actor ever runs another actor's code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._consumer._support import FailureReporter
from kinesis_actors._consumer.batch import BatchTracker
from kinesis_actors._consumer.checkpointer import ShardCheckpointer, lease_writer
from kinesis_actors._consumer.messages import ShardActorCrashed
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from kinesis_actors._config import ConsumerConf
    from kinesis_actors._consumer.coordination import LeaseCheckpointer
    from kinesis_actors._consumer.dead_letter import DeadLetter
    from kinesis_actors._consumer.executor import BlockingExecutor
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["BatchTrackerFactory", "crash_reporter", "shard_actors"]

#: Starts the shard's BatchTracker (a factory, so tests can put a probe there).
BatchTrackerFactory = Callable[[], pykka.ActorRef[Any]]

log = get_logger(__name__)


def crash_reporter(supervisor: pykka.ActorRef[Any] | None, lease: HeldLease) -> FailureReporter:
    """How a shard's actors report a crash: a tell to the supervisor (values only, so any of the
    shard's actors may call it on its own thread)."""

    def report(actor: str, error: BaseException) -> None:
        log.error("shard actor died", shard_id=lease.shard_id, actor=actor, error=repr(error))
        tell(supervisor, ShardActorCrashed(lease, actor, error))

    return report


def shard_actors(
    lease: HeldLease,
    conf: ConsumerConf,
    coordinator: LeaseCheckpointer,
    processor: pykka.ActorRef[Any],
    executor: BlockingExecutor,
    report: FailureReporter,
    batch_processor: bool,
    dead_letter: DeadLetter | None = None,
) -> BatchTrackerFactory:
    """Starts the shard's BatchTracker and, as its child, the ShardCheckpointer, which writes
    under this lease's concurrency token. Built from values only: no actor's state."""
    shard_id = lease.shard_id
    write = lease_writer(coordinator, shard_id, lease.concurrency_token)

    def checkpointer(parent: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        return ShardCheckpointer.start(
            parent,
            write,
            conf.checkpointer,
            shard_id,
            executor,
            report,
            retry_delay=conf.kcl.task_backoff_time,
        )

    def start() -> pykka.ActorRef[Any]:
        return BatchTracker.start(
            shard_id,
            processor,
            conf.worker,
            checkpointer,
            report,
            batch_processor=batch_processor,
            dead_letter=dead_letter,
            executor=executor,
        )

    return start
