"""Message ids: valid version 1 UUIDs that carry their creation time and never repeat."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

from kinesis_actors._producer.message_id import new_message_id

_UUID_EPOCH_OFFSET = 0x01B21DD213814000


def test_an_id_is_a_version_1_uuid_of_now() -> None:
    before = time.time_ns() // 100 + _UUID_EPOCH_OFFSET
    made = uuid.UUID(new_message_id())
    after = time.time_ns() // 100 + _UUID_EPOCH_OFFSET
    assert made.version == 1 and made.variant == uuid.RFC_4122
    assert before <= made.time <= after + 1
    assert made.node & (1 << 40)  # a random node says so with the multicast bit


def test_ids_of_one_thread_increase_even_within_one_clock_tick() -> None:
    times = [uuid.UUID(new_message_id()).time for _ in range(20_000)]
    assert all(earlier < later for earlier, later in itertools.pairwise(times))


def test_threads_never_make_the_same_id() -> None:
    made: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(len(made))

    def make(into: list[str]) -> None:
        start.wait()
        into.extend(new_message_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [made_id for ids in made for made_id in ids]
    assert len(set(every)) == len(every)
    # Each thread has a clock sequence of its own, which keeps equal timestamps apart.
    sequences = {uuid.UUID(ids[0]).clock_seq for ids in made}
    assert len(sequences) == len(made)
    assert all(len({uuid.UUID(i).clock_seq for i in ids}) == 1 for ids in made)
