"""For tests, examples and local runs: in-memory doubles and local servers on loopback.

`InMemoryKinesis` is a Kinesis client double for the producer engine; `InMemoryLeaseTable` a
lease table for the lease coordinator; `LocalKinesis` starts kinesalite and dynalite on free
loopback ports; `temporary_stream` gives a fresh stream on them (or on the endpoint a run names);
`LocalMinistack` starts ministack's Kinesis, the local backend of enhanced fan-out.
"""

from __future__ import annotations

from kinesis_actors._leases.memory import InMemoryLeaseTable
from kinesis_actors.testing._local import (
    LocalKinesis,
    free_port,
    free_ports,
    install_emulators,
    temporary_stream,
)
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis, StoredRecord
from kinesis_actors.testing._ministack import LocalMinistack

__all__ = [
    "InMemoryKinesis",
    "InMemoryLeaseTable",
    "LocalKinesis",
    "LocalMinistack",
    "StoredRecord",
    "free_port",
    "free_ports",
    "install_emulators",
    "temporary_stream",
]
