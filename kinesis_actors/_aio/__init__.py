"""asyncio entry points, implemented over the producer engine and the consumer (see ``aio``)."""
