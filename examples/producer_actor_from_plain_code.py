"""Produce through the actor from plain code: fire-and-forget Send, or ask and wait.

The Python version of the seed README's "From outside of an Actor" example, plus the ask
one-liner: ``ask(SendWithCallback(event))`` returns a future of the outcome at once, and the
actor keeps serving other senders while this one waits.

Run: ``python examples/producer_actor_from_plain_code.py``. It uses the Kinesis at
``$AWS_ENDPOINT_URL_KINESIS`` if set, else starts kinesalite on loopback (nothing leaves the
machine); ``--in-memory`` uses an in-memory stream instead (no server at all).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from kinesis_actors import (
    GetStats,
    KinesisProducerActor,
    ProducerEvent,
    Send,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
    load_config,
)
from kinesis_actors.testing import temporary_stream

ASKED = 1000


@contextlib.contextmanager
def local_stream(in_memory: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh stream: (its name, extra options for KinesisProducerActor.start)."""
    if in_memory:
        from kinesis_actors import KinesisProducer
        from kinesis_actors.testing import InMemoryKinesis

        client: Any = InMemoryKinesis(2)
        yield "plain-code", {"engine_factory": lambda conf: KinesisProducer(conf, client=client)}
        return
    with temporary_stream("plain-code", shard_count=2) as stream:
        yield stream, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-memory", action="store_true", help="no server: an in-memory stream")
    args = parser.parse_args(argv)

    with local_stream(args.in_memory) as (stream, producer_options):
        kinesis_config = load_config(
            f"""
            kinesis {{
              testProducer {{
                stream-name = "{stream}"
                akka.max-outstanding-requests = 500  # throttle: queue sends beyond 500 in flight
              }}
            }}
            """
        )
        # where testProducer is the name in the configuration
        kpa = KinesisProducerActor.start(kinesis_config, "testProducer", **producer_options)
        try:
            producer_event = ProducerEvent(str(uuid.uuid4()), "{Some Payload}")
            kpa.tell(Send(producer_event))  # Send without a callback confirmation

            # Ask, and wait for the outcome: SendSuccessful or SendFailed (never an exception).
            outcome = kpa.ask(SendWithCallback(producer_event)).result(timeout=30)
            if isinstance(outcome, SendSuccessful):
                result = outcome.user_record_result
                print(f"sent {outcome.message_id} to {result.shard_id} at {result.sequence_number}")

            # Many at once: every ask returns its future immediately; wait for them all later.
            futures = [
                kpa.ask(SendWithCallback(ProducerEvent(f"customer-{n % 10}", f'{{"n": {n}}}')))
                for n in range(ASKED)
            ]
            outcomes = [future.result(timeout=60) for future in futures]
            failed = [o for o in outcomes if isinstance(o, SendFailed)]
            for failure in failed:
                print(f"Failed to send {failure.message_id}, cause: {failure.reason}")
            stats = kpa.ask(GetStats())
        finally:
            kpa.stop()  # sends anything still queued, flushes, then stops the producer
        print(f"asked {ASKED}: {ASKED - len(failed)} sent, {len(failed)} failed; stats {stats}")
        return 0 if isinstance(outcome, SendSuccessful) and not failed else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)  # the library logs through stdlib logging
    sys.exit(main())
