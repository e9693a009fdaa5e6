"""The producer side: ``KinesisProducer``, a native Python KPL with one future per user record."""

from __future__ import annotations

from kinesis_actors.producer.engine import EngineStats, KinesisProducer

__all__ = ["EngineStats", "KinesisProducer"]
