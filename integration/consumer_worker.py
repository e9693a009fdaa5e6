"""One KinesisConsumer process, for the multi-process consumer tests.

Consumes ``--stream`` against the endpoints in ``AWS_ENDPOINT_URL_KINESIS`` /
``AWS_ENDPOINT_URL_DYNAMODB`` and prints one JSON object per line on stdout, flushed before the
record is acknowledged (so what a process printed is what it processed):

* ``{"event": "started"}`` once the consumer runs;
* ``{"event": "record", "shard", "seq", "sub", "pk", "data", "t"}`` per record processed;
* ``{"event": "stopped", "error"}`` when the consumer has stopped (SIGTERM / SIGINT stop it
  gracefully through the consumer's own shutdown hook);
* ``gained`` / ``lost`` with ``shards`` and ``t``, as `integration.lease_fleet` reads them: the
  leases the coordinator reports, and ``lost`` with ``handoff`` when a lease is released to
  another worker after its final checkpoint (rebalancing).

Logs go to stderr. Usage::

    python integration/consumer_worker.py --stream S --application A [--failover-ms 1000]
        [--table T --worker-id W]
        [--retrieval-mode FANOUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

import structlog

from kinesis_actors._config import load_config
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._leases import LeaseCoordinator, LeaseEvent, LeasesGained, LeasesLost
from kinesis_actors._models import ConsumerEvent

CONFIG = """
kinesis {{
  application-name = "{application}"
  worker-under-test {{
    stream-name = "{stream}"
    worker {{ batchTimeoutSeconds = 5, gracefulShutdownHook = true, shutdownTimeoutSeconds = 5 }}
    checkpointer {{ intervalMillis = 100, notificationDelayMillis = 50, backoffMillis = 200 }}
    kcl {{
      failoverTimeMillis = {failover_ms}
      idleTimeBetweenReadsInMillis = 50
      parentShardPollIntervalMillis = 100
      taskBackoffTimeMillis = 100
      shardSyncIntervalMillis = 1000
      releasedLeasePollMillis = 100
      leaveHandoffWaitMillis = 3000
      {table_and_worker}
      retrievalMode = {retrieval_mode}
    }}
  }}
}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", required=True)
    parser.add_argument("--application", required=True)
    parser.add_argument("--failover-ms", type=int, default=1000)
    parser.add_argument("--table", help="kcl.tableName (default <application>-<stream>)")
    parser.add_argument("--worker-id", help="kcl.workerId")
    parser.add_argument("--retrieval-mode", choices=("POLLING", "FANOUT"), default="POLLING")
    args = parser.parse_args()
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt=None),  # epoch seconds, as the events' "t"
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    lock = threading.Lock()

    def emit(**fields: object) -> None:
        with lock:
            print(json.dumps(fields), flush=True)

    def process_record(event: ConsumerEvent) -> None:
        emit(
            event="record",
            shard=event.shard_id,
            seq=event.sequence_number.sequence_number,
            sub=event.sequence_number.sub_sequence_number,
            pk=event.partition_key,
            data=event.payload_as_string(),
            t=time.time(),
        )

    # After its graceful stop the consumer's hook chains to the previous handler: this one lets
    # the process report "stopped" and exit 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    extra = f'tableName = "{args.table}"' if args.table else ""
    extra += f', workerId = "{args.worker_id}"' if args.worker_id else ""
    conf = load_config(
        CONFIG.format(
            stream=args.stream,
            application=args.application,
            failover_ms=args.failover_ms,
            table_and_worker=extra.lstrip(", "),
            retrieval_mode=args.retrieval_mode,
        )
    )

    class ReportingCoordinator(LeaseCoordinator):
        def release(self, shard_id: str, concurrency_token: str) -> bool:
            emit(event="lost", shards=[shard_id], handoff=True, t=time.time())
            return super().release(shard_id, concurrency_token)

    def coordinator(conf: Any, kinesis: Any, dynamodb: Any, subscriber: Any) -> LeaseCoordinator:
        def tap(event: LeaseEvent) -> None:
            if isinstance(event, LeasesGained | LeasesLost):
                name = "gained" if isinstance(event, LeasesGained) else "lost"
                shards = sorted(lease.shard_id for lease in event.leases)
                emit(event=name, shards=shards, t=time.time())
            subscriber(event)

        return ReportingCoordinator.from_consumer_conf(
            conf, kinesis=kinesis, dynamodb=dynamodb, subscriber=tap
        )

    consumer = KinesisConsumer(
        process_record, conf, "worker-under-test", coordinator_factory=coordinator
    )
    done = consumer.start()
    emit(event="started", t=time.time())
    error = done.exception()  # blocks until a signal stops the consumer
    emit(event="stopped", error=repr(error) if error else None)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
