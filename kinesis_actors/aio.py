"""asyncio entry points: awaitable puts on the producer engine, ``async def`` record processors.

::

    async with AsyncKinesisProducer(load_config(), "orders-producer") as producer:
        result = await producer.put(ProducerEvent("key", b"payload"))

Nothing here blocks the event loop: AWS calls and blocking waits run on the library's own
threads, and results cross to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

from kinesis_actors._aio.producer import AsyncKinesisProducer, AsyncProducerStats

__all__ = ["AsyncKinesisProducer", "AsyncProducerStats"]
