"""Produce from inside an actor (strongly recommended): tell SendWithCallback, get replies back.

The Python version of the seed README's "Within an Actor" example. ``SomeActor`` owns a
``KinesisProducerActor``; on ``DoSomething`` it sends an event with ``reply_to=self.actor_ref``
and receives ``SendSuccessful`` or ``SendFailed`` as an ordinary message, so its state is only
ever touched on its own thread.

Run: ``python examples/producer_actor_within_actor.py``. It uses the Kinesis at
``$AWS_ENDPOINT_URL_KINESIS`` if set, else starts kinesalite on loopback (nothing leaves the
machine); ``--in-memory`` uses an in-memory stream instead (no server at all).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
from pyhocon import ConfigTree

from kinesis_actors import (
    KinesisProducerActor,
    ProducerEvent,
    SendFailed,
    SendSuccessful,
    SendWithCallback,
    load_config,
)
from kinesis_actors.testing import temporary_stream

MESSAGES = 10


@dataclass(frozen=True)
class DoSomething:
    """Our own message: time to send something exciting."""


class SomeActor(pykka.ThreadingActor):
    def __init__(
        self, kinesis_config: ConfigTree, finished: threading.Event, **producer_options: Any
    ) -> None:
        super().__init__()
        self._kinesis_config = kinesis_config
        self._producer_options = producer_options  # only the --in-memory run passes any
        self._finished = finished
        self._outcomes = 0
        self._failures = 0

    def on_start(self) -> None:
        # "testProducer" is the name of the producer block in the configuration.
        self._kpa = KinesisProducerActor.start(
            self._kinesis_config, "testProducer", **self._producer_options
        )

    def on_stop(self) -> None:
        self._kpa.stop()  # sends anything still queued, flushes, then stops the producer

    def on_receive(self, message: Any) -> Any:
        match message:
            case DoSomething():
                # Do something exciting!
                producer_event = ProducerEvent(str(uuid.uuid4()), "{Some Payload}")
                self._kpa.tell(SendWithCallback(producer_event, reply_to=self.actor_ref))

            # Callbacks from the KinesisProducerActor
            case SendSuccessful(message_id, _):
                print(f"Successfully sent {message_id}")
                self._count()

            case SendFailed(_, message_id, reason):
                print(f"Failed to send {message_id}, cause: {reason}")
                self._failures += 1
                self._count()

            case "failures":
                return self._failures
        return None

    def _count(self) -> None:
        self._outcomes += 1
        if self._outcomes == MESSAGES:
            self._finished.set()


@contextlib.contextmanager
def local_stream(in_memory: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh stream: (its name, extra options for KinesisProducerActor.start)."""
    if in_memory:
        from kinesis_actors import KinesisProducer
        from kinesis_actors.testing import InMemoryKinesis

        client: Any = InMemoryKinesis(1)
        yield "some-actor", {"engine_factory": lambda conf: KinesisProducer(conf, client=client)}
        return
    with temporary_stream("some-actor", shard_count=1) as stream:
        yield stream, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-memory", action="store_true", help="no server: an in-memory stream")
    args = parser.parse_args(argv)

    with local_stream(args.in_memory) as (stream, producer_options):
        kinesis_config = load_config(f'kinesis {{ testProducer {{ stream-name = "{stream}" }} }}')
        finished = threading.Event()
        some_actor = SomeActor.start(kinesis_config, finished, **producer_options)
        try:
            for _ in range(MESSAGES):
                some_actor.tell(DoSomething())
            if not finished.wait(60):
                print("not every send was answered within 60 s")
                return 1
            failures: int = some_actor.ask("failures")
        finally:
            some_actor.stop()
        print(f"{MESSAGES} sends answered, {failures} failed")
        return 0 if failures == 0 else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)  # the library logs through stdlib logging
    sys.exit(main())
