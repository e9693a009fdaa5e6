"""Put records with KinesisProducer: futures, back-pressure, a bad record, flush, stats.

Run: ``python examples/produce_with_engine.py``. It uses the Kinesis at
``$AWS_ENDPOINT_URL_KINESIS`` if set, else starts kinesalite on loopback (nothing leaves the
machine); ``--in-memory`` uses an in-memory stream instead (no server at all).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from kinesis_actors import (
    InvalidRecordError,
    KinesisProducer,
    ProducerConf,
    ProducerEvent,
    UserRecordFailedError,
    UserRecordResult,
    load_config,
)
from kinesis_actors.testing import temporary_stream

RECORDS = 20_000
#: Back-pressure: the producer buffers without limit, so the caller keeps this many in flight.
MAX_OUTSTANDING = 5_000


@contextlib.contextmanager
def kinesis_client(in_memory: bool) -> Iterator[tuple[Any, str]]:
    """A fresh 2-shard stream: (client for the producer or None for the default, stream name)."""
    if in_memory:
        from kinesis_actors.testing import InMemoryKinesis

        yield InMemoryKinesis(2).client(), "orders"
        return
    with temporary_stream("orders", shard_count=2) as stream:
        yield None, stream  # the producer builds its own client from the kpl settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-memory", action="store_true", help="no server: an in-memory stream")
    args = parser.parse_args(argv)

    with kinesis_client(args.in_memory) as (client, stream):
        config = load_config(
            f"""
            kinesis {{
              orders-producer {{
                stream-name = "{stream}"
                kpl {{
                  AggregationEnabled = true   # many small records per Kinesis record
                  RecordMaxBufferedTime = 50  # ms a record may wait for company
                  RecordTtl = 10000           # ms before an unconfirmed record fails "Expired"
                }}
              }}
            }}
            """
        )
        conf = ProducerConf.from_config(config, "orders-producer")
        failures: list[UserRecordFailedError] = []

        def on_done(future: Future[UserRecordResult]) -> None:
            # Runs on the producer's engine thread: keep it quick.
            error = future.exception()
            if isinstance(error, UserRecordFailedError):
                failures.append(error)

        with KinesisProducer(conf, client=client) as producer:
            # A record that breaks a Kinesis limit fails alone, with the limit in the message.
            bad = producer.add_user_record(ProducerEvent("", b"no partition key"))
            try:
                bad.result()
            except InvalidRecordError as exc:
                print(f"rejected: {exc}")

            for n in range(RECORDS):
                while producer.outstanding_records_count() >= MAX_OUTSTANDING:
                    time.sleep(0.005)  # let confirmations come in
                event = ProducerEvent(f"customer-{n % 100}", f'{{"order": {n}}}')
                producer.add_user_record(event).add_done_callback(on_done)

            last = producer.add_user_record(ProducerEvent("customer-0", b'{"order": "last"}'))
            if not producer.flush_sync(timeout=30):
                print("records still outstanding after 30 s")
                return 1
            result = last.result()
            print(f"last record: shard {result.shard_id}, sequence number {result.sequence_number}")
            stats = producer.stats()
        # Leaving the with block stopped the producer: every buffered record was sent first.
        print(
            f"put {stats.user_records_put} user records in {stats.kinesis_records_put} Kinesis "
            f"records with {stats.put_records_calls} PutRecords calls; failed: {len(failures)}"
        )
        return 0 if stats.user_records_put == RECORDS + 1 and not failures else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)  # the library logs through stdlib logging
    sys.exit(main())
