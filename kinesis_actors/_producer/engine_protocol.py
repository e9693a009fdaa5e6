"""The producer engine as the actor sees it: ``KinesisProducer``, or a test's fake."""

from __future__ import annotations

import concurrent.futures
from typing import Protocol

from kinesis_actors._models import ProducerEvent, UserRecordResult

__all__ = ["ProducerEngine"]


class ProducerEngine(Protocol):
    """What the actor needs of ``KinesisProducer``; tests pass a fake."""

    def add_user_record(
        self, event: ProducerEvent
    ) -> concurrent.futures.Future[UserRecordResult]: ...

    def outstanding_records_count(self) -> int: ...

    def flush(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...
