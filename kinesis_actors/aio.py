"""asyncio entry points: awaitable puts on the producer engine, ``async def`` record processors.

::

    async with AsyncKinesisProducer(load_config(), "orders-producer") as producer:
        result = await producer.put(ProducerEvent("key", b"payload"))

    async def process_record(event: ConsumerEvent) -> None:
        ...                                  # returns: acknowledged; raises: re-sent

    async with AsyncKinesisConsumer(process_record, load_config(), "orders") as consumer:
        await consumer.wait()                # until stop(), SIGTERM / SIGINT, or a failure

Nothing here blocks the event loop: AWS calls and blocking waits run on the library's own
threads, and results cross to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

from kinesis_actors._aio.consumer import AsyncKinesisConsumer
from kinesis_actors._aio.producer import AsyncKinesisProducer, AsyncProducerStats

__all__ = ["AsyncKinesisConsumer", "AsyncKinesisProducer", "AsyncProducerStats"]
