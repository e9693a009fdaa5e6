"""Producing: the engine (a native KPL) and the actor in front of it.

`KinesisProducer` batches, aggregates, rate-limits and retries user records and reports each one
through a future; `KinesisProducerActor` puts records on behalf of actors and plain code and
answers ``SendWithCallback`` with ``SendSuccessful`` / ``SendFailed`` (its protocol:
``_producer.messages``, public as ``kinesis_actors.messages``).
"""

from __future__ import annotations

from kinesis_actors._producer.actor import KinesisProducerActor
from kinesis_actors._producer.engine import KinesisProducer

__all__ = ["KinesisProducer", "KinesisProducerActor"]
