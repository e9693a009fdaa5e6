"""Test harness shared by ``tests/`` (unit) and ``integration/``.

Every test must clean up after itself: a test that leaves a Pykka actor running, or a new
non-daemon thread alive (after a short grace period), fails. Leftover actors are stopped
first so that one leaky test does not break the ones after it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import pykka
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Seconds a test's non-daemon threads get to finish after the test before it fails.
THREAD_GRACE_SECONDS = 2.0
#: Seconds to wait for leftover actors to stop.
ACTOR_STOP_TIMEOUT_SECONDS = 5.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs the local Kinesis/DynamoDB servers (every test under integration/)",
    )


def _leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.daemon and thread.is_alive()
    ]


@pytest.fixture(autouse=True)
def _no_leaked_actors_or_threads() -> Iterator[None]:
    """Fail the test if it leaves a Pykka actor running or a new non-daemon thread alive."""
    before = set(threading.enumerate())
    yield

    problems: list[str] = []
    actors = pykka.ActorRegistry.get_all()
    if actors:
        names = sorted(f"{ref.actor_class.__name__} ({ref.actor_urn})" for ref in actors)
        pykka.ActorRegistry.stop_all(block=True, timeout=ACTOR_STOP_TIMEOUT_SECONDS)
        problems.append(
            f"{len(names)} Pykka actor(s) still running after the test (now stopped): "
            + ", ".join(names)
        )

    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    leaked = _leaked_threads(before)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = _leaked_threads(before)
    if leaked:
        names = sorted(thread.name for thread in leaked)
        problems.append(
            f"{len(names)} non-daemon thread(s) still alive {THREAD_GRACE_SECONDS:.0f} s after "
            "the test: " + ", ".join(names)
        )

    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _library_events_at_debug() -> Iterator[None]:
    """Let every library event through to structlog's processors (tests capture them).

    The library leaves levels to the application, so without this only warnings would reach
    ``structlog.testing.capture_logs``. A test of the logging defaults resets the level itself.
    """
    logger = logging.getLogger("kinesis_actors")
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(logging.NOTSET)
