"""The reliability test: SimpleKinesisProducer and SimpleKinesisConsumer, and the run command.

From a REPL, as the Scala library's README did it in ``sbt it:console``::

    >>> from kinesis_actors.reliability import *
    >>> consumer = SimpleKinesisConsumer.start(load_reliability_config())
    >>> producer = SimpleKinesisProducer.start(load_reliability_config())
    >>> producer.tell(Start())
"""

from __future__ import annotations

from kinesis_actors.reliability._consumer import ConsumerState, GetState, SimpleKinesisConsumer
from kinesis_actors.reliability._producer import (
    GetProducerStats,
    ProducerStats,
    SimpleKinesisProducer,
    Start,
)
from kinesis_actors.reliability._results import Verdict
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config

__all__ = [
    "ConsumerState",
    "GetProducerStats",
    "GetState",
    "ProducerStats",
    "ReliabilitySettings",
    "SimpleKinesisConsumer",
    "SimpleKinesisProducer",
    "Start",
    "Verdict",
    "load_reliability_config",
]
