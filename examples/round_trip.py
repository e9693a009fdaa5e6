"""Round trip against a local Kinesis: create a stream, put records through the config, read back.

Run: ``python examples/round_trip.py`` (``make demo`` installs everything first). It starts
kinesalite and dynalite on loopback, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import sys
import uuid

import structlog

from kinesis_actors.aws import producer_client
from kinesis_actors.config import ProducerConf, load_config
from kinesis_actors.local import LocalKinesis

RECORDS = 1000
SHARDS = 2


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))
    log = structlog.get_logger("round_trip")
    with LocalKinesis() as local:
        os.environ.update(local.environ())
        stream = f"round-trip-{uuid.uuid4().hex[:8]}"
        config = load_config(
            f"""
            kinesis {{
              application-name = RoundTrip
              demo-producer {{ stream-name = "{stream}" }}
            }}
            """
        )
        conf = ProducerConf.from_config(config, "demo-producer")
        client = producer_client(conf.kpl)
        client.create_stream(StreamName=conf.stream_name, ShardCount=SHARDS)
        client.get_waiter("stream_exists").wait(StreamName=conf.stream_name)
        sent = [f"record-{i}".encode() for i in range(RECORDS)]
        for start in range(0, RECORDS, conf.kpl.collection_max_count):
            batch = sent[start : start + conf.kpl.collection_max_count]
            response = client.put_records(
                StreamName=conf.stream_name,
                Records=[{"PartitionKey": data.decode(), "Data": data} for data in batch],
            )
            if response.get("FailedRecordCount"):
                log.error("put failed", failed=response["FailedRecordCount"])
                return 1
        received: list[bytes] = []
        for shard in client.list_shards(StreamName=conf.stream_name)["Shards"]:
            iterator = client.get_shard_iterator(
                StreamName=conf.stream_name,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            ).get("ShardIterator")
            while iterator:
                page = client.get_records(ShardIterator=iterator, Limit=10000)
                received.extend(record["Data"] for record in page["Records"])
                iterator = page.get("NextShardIterator") if page["Records"] else None
        client.delete_stream(StreamName=conf.stream_name)
        ok = sorted(received) == sorted(sent)
        log.info("round trip", backend=local.backend, sent=len(sent), received=len(received), ok=ok)
        print(f"Round trip {'succeeded' if ok else 'FAILED'}: {len(received)}/{len(sent)} records")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
