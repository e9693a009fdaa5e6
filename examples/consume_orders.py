"""Consume a stream with a ``process_record`` function, or with an event-processor actor.

Run: ``python examples/consume_orders.py`` (``--processor actor`` for the actor version). It puts
a few hundred "orders" on a fresh 2-shard stream of the Kinesis at ``$AWS_ENDPOINT_URL_KINESIS``
if set, else of kinesalite + dynalite started on loopback; ``--moto`` uses moto in-process
instead (no Node.js needed). Nothing leaves the machine. Then it consumes them, showing:

* the function contract: return = acknowledged; return a future to acknowledge later; raise and
  the record is re-sent after ``worker.batchTimeoutSeconds``;
* the actor contract: ``ProcessEvent`` in, ``EventProcessed`` back to ``reply_to``;
* a graceful ``stop()``: final checkpoints, leases released (also on Ctrl-C / SIGTERM with
  ``worker.gracefulShutdownHook``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import boto3
import pykka

from kinesis_actors import (
    ConsumerConf,
    ConsumerEvent,
    ConsumerShutdown,
    ConsumerWorkerFailure,
    DynamoDBLeaseTable,
    EventProcessed,
    KinesisConsumer,
    ProcessEvent,
    load_config,
)

ORDERS = 400


@contextlib.contextmanager
def local_aws(moto: bool) -> Iterator[None]:
    """Point boto3 at a local Kinesis + DynamoDB for the duration."""
    if moto:
        from moto import mock_aws

        os.environ.update(
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
        )
        with mock_aws():
            yield
    elif os.environ.get("AWS_ENDPOINT_URL_KINESIS"):
        yield
    else:
        from kinesis_actors.testing import LocalKinesis

        with LocalKinesis() as local:
            os.environ.update(local.environ())
            yield


def put_orders(stream: str) -> None:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    for start in range(0, ORDERS, 100):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": f"order-{n}".encode(), "PartitionKey": f"customer-{n % 7}"}
                for n in range(start, start + 100)
            ],
        )


class Orders:
    """What the processors did, for the summary."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processed: Counter[str] = Counter()
        self.all_done = threading.Event()

    def record(self, event: ConsumerEvent) -> None:
        with self.lock:
            self.processed[event.payload_as_string()] += 1
            if len(self.processed) == ORDERS:
                self.all_done.set()


def function_processor(orders: Orders, pool: ThreadPoolExecutor) -> Any:
    """``process_record``: most orders now, every 10th in the background, order-7 fails once."""
    failed_once: set[str] = set()

    def process_record(event: ConsumerEvent) -> Future[None] | None:
        order = event.payload_as_string()
        if order == "order-7" and order not in failed_once:
            failed_once.add(order)
            raise RuntimeError("payment service busy")  # re-sent after the batch timeout
        if order.endswith("0"):
            return pool.submit(orders.record, event)  # acknowledged when the future succeeds
        orders.record(event)
        return None  # acknowledged on return

    return process_record


class OrderProcessor(pykka.ThreadingActor):
    """An event-processor actor: one for all shards, replying to each message's ``reply_to``."""

    def __init__(self, orders: Orders) -> None:
        super().__init__()
        self._orders = orders

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessEvent):
            self._orders.record(message.event)
            message.reply_to.tell(EventProcessed(message.event.sequence_number))
        elif isinstance(message, ConsumerWorkerFailure):
            print(f"shard {message.shard_id}: {len(message.failed_events)} records not processed")
        elif isinstance(message, ConsumerShutdown):
            print(f"shard {message.shard_id}: processing ended on this worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processor", choices=("function", "actor"), default="function")
    parser.add_argument("--moto", action="store_true", help="moto in-process, no local servers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # the library logs through stdlib logging

    with local_aws(args.moto):
        stream = f"orders-{uuid.uuid4().hex[:8]}"
        put_orders(stream)
        config = load_config(
            f"""
            kinesis {{
              application-name = "OrdersExample"
              orders-consumer {{
                stream-name = "{stream}"
                worker {{
                  batchTimeoutSeconds = 1        # order-7 is re-sent after this
                  gracefulShutdownHook = true    # Ctrl-C / SIGTERM stop gracefully
                }}
                checkpointer {{ intervalMillis = 200, notificationDelayMillis = 100 }}
                kcl {{ idleTimeBetweenReadsInMillis = 100, maxRecords = 100 }}
              }}
            }}
            """
        )
        orders = Orders()
        with ThreadPoolExecutor(4) as pool:
            processor: Any
            if args.processor == "actor":
                processor = OrderProcessor.start(orders)
                consumer = KinesisConsumer.with_processor(processor, config, "orders-consumer")
            else:
                consumer = KinesisConsumer(
                    function_processor(orders, pool), config, "orders-consumer"
                )
            done = consumer.start()
            finished = orders.all_done.wait(60)
            consumer.stop()  # final checkpoints, then the leases are handed over
            done.result()  # raises if the consumer had died
            if args.processor == "actor":
                processor.stop()
        print(f"processed {len(orders.processed)} of {ORDERS} orders ({args.processor})")
        repeats = sum(orders.processed.values()) - len(orders.processed)
        print(f"records processed more than once: {repeats}")
        conf = ConsumerConf.from_config(config, "orders-consumer")
        table = DynamoDBLeaseTable(boto3.client("dynamodb"), conf.table_name)
        for lease in sorted(table.list_leases(), key=lambda lease: lease.shard_id):
            print(f"{lease.shard_id}: checkpoint {lease.checkpoint}, owner {lease.owner}")
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
