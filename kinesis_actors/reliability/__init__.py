"""The reliability test: SimpleKinesisProducer and SimpleKinesisConsumer, and the run command."""

from __future__ import annotations
