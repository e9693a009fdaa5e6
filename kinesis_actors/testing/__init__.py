"""For tests, examples and local runs: in-memory doubles and local servers on loopback.

`InMemoryKinesis` is a Kinesis client double for the producer engine; `InMemoryLeaseTable` a
lease table for the lease coordinator; `LocalKinesis` starts kinesalite and dynalite on free
loopback ports; `temporary_stream` gives a fresh stream on them (or on the endpoint a run names);
`LocalMinistack` starts ministack's Kinesis, the local backend of enhanced fan-out.
`LimitsProxy` (in-process) and `LimitsProxyProcess` (its own process) put AWS's Kinesis and
DynamoDB limits in front of those servers; `LimitsStats` is what they counted.
"""

from __future__ import annotations

from kinesis_actors._leases.memory import InMemoryLeaseTable
from kinesis_actors.testing._emulators import install_emulators
from kinesis_actors.testing._limits_model import AwsLimits
from kinesis_actors.testing._limits_process import LimitsProxyProcess
from kinesis_actors.testing._limits_proxy import LimitsProxy
from kinesis_actors.testing._limits_stats import ApiCounts, LimitsStats
from kinesis_actors.testing._local import LocalKinesis, temporary_stream
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis, StoredRecord
from kinesis_actors.testing._ministack import LocalMinistack
from kinesis_actors.testing._processes import free_port, free_ports

__all__ = [
    "ApiCounts",
    "AwsLimits",
    "InMemoryKinesis",
    "InMemoryLeaseTable",
    "LimitsProxy",
    "LimitsProxyProcess",
    "LimitsStats",
    "LocalKinesis",
    "LocalMinistack",
    "StoredRecord",
    "free_port",
    "free_ports",
    "install_emulators",
    "temporary_stream",
]
