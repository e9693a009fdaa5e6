"""An asyncio service: consume orders with an ``async def`` processor, produce enriched events.

Run: ``python examples/asyncio_service.py``. It makes two fresh streams on the Kinesis at
``$AWS_ENDPOINT_URL_KINESIS`` if set, else on kinesalite + dynalite started on loopback (nothing
leaves the machine), and puts a few hundred orders on the first. The service then:

* consumes the orders with ``AsyncKinesisConsumer`` and an ``async def process_record``: a
  record is acknowledged when the coroutine returns, re-sent when it raises;
* puts an enriched event per order on the second stream with ``AsyncKinesisProducer``, awaiting
  each put, so an order is acknowledged only once its enriched event is stored;
* stops gracefully on SIGTERM (or Ctrl-C): final checkpoints, leases released, producer flushed.

Here the demo sends the SIGTERM itself once every order is enriched, then reads the second
stream back and prints a summary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections import Counter
from contextlib import ExitStack

import boto3
from pyhocon import ConfigTree

from kinesis_actors import ConsumerEvent, ProducerEvent, load_config
from kinesis_actors.aio import AsyncKinesisConsumer, AsyncKinesisProducer
from kinesis_actors.testing import temporary_stream

ORDERS = 300


def config(orders: str, enriched: str) -> ConfigTree:
    return load_config(
        f"""
        kinesis {{
          application-name = "AsyncioExample-{uuid.uuid4().hex[:8]}"
          orders-consumer {{
            stream-name = "{orders}"
            worker {{
              gracefulShutdownHook = true    # SIGTERM / SIGINT stop the consumer gracefully
              maxConcurrentRecords = 8       # 8 orders of a shard enriched at once
            }}
            checkpointer {{ intervalMillis = 200, notificationDelayMillis = 100 }}
            kcl {{ idleTimeBetweenReadsInMillis = 100, maxRecords = 100 }}
          }}
          enriched-producer {{
            stream-name = "{enriched}"
            akka.max-outstanding-requests = 1000   # back-pressure for the puts
            # Plain records, so the summary can read them with boto3 alone (a KinesisConsumer
            # reads KPL aggregates too).
            kpl {{ RecordMaxBufferedTime = 20, AggregationEnabled = false }}
          }}
        }}
        """
    )


async def service(settings: ConfigTree, enriched_all: asyncio.Event) -> Counter[str]:
    """Consume, enrich, produce; returns when stopped (SIGTERM / SIGINT)."""
    enriched: Counter[str] = Counter()
    async with AsyncKinesisProducer(settings, "enriched-producer") as producer:

        async def process_record(event: ConsumerEvent) -> None:
            order = json.loads(event.payload)
            await asyncio.sleep(0.001)  # e.g. look the customer up in another service
            order["customer_tier"] = "gold" if order["total"] > 50 else "standard"
            await producer.put(ProducerEvent(event.partition_key, json.dumps(order)))
            enriched[order["id"]] += 1
            if len(enriched) == ORDERS:
                enriched_all.set()

        consumer = AsyncKinesisConsumer(process_record, settings, "orders-consumer")
        await consumer.run()  # until SIGTERM / SIGINT
    return enriched


async def demo(settings: ConfigTree) -> Counter[str]:
    enriched_all = asyncio.Event()
    running = asyncio.create_task(service(settings, enriched_all))
    await asyncio.wait_for(enriched_all.wait(), 120)
    os.kill(os.getpid(), signal.SIGTERM)  # what a deployment does to stop the service
    return await asyncio.wait_for(running, 60)


def read_stream(stream: str) -> list[dict[str, object]]:
    kinesis = boto3.client("kinesis")
    events = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator)
            events.extend(json.loads(r["Data"]) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return events


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    with ExitStack() as stack:
        orders = stack.enter_context(temporary_stream("orders", shard_count=2))
        enriched_stream = stack.enter_context(temporary_stream("enriched", shard_count=1))
        kinesis = boto3.client("kinesis")
        for start in range(0, ORDERS, 100):
            kinesis.put_records(
                StreamName=orders,
                Records=[
                    {
                        "Data": json.dumps({"id": f"order-{n}", "total": n % 100}).encode(),
                        "PartitionKey": f"customer-{n % 7}",
                    }
                    for n in range(start, start + 100)
                ],
            )
        enriched = asyncio.run(demo(config(orders, enriched_stream)))
        stored = Counter(str(event["id"]) for event in read_stream(enriched_stream))
    print(f"enriched {len(enriched)} of {ORDERS} orders; stopped on SIGTERM")
    print(f"enriched events stored: {len(stored)} distinct, {sum(stored.values())} in all")
    gold = sum(1 for n in range(ORDERS) if n % 100 > 50)
    print(f"gold customers' orders: {gold}")
    return 0 if set(stored) == {f"order-{n}" for n in range(ORDERS)} else 1


if __name__ == "__main__":
    sys.exit(main())
