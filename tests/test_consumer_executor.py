"""BlockingExecutor: bounded, grows only on demand, never waits for a hung call."""

from __future__ import annotations

import threading

import pytest
from test_consumer_support import wait_for

from kinesis_actors._consumer.executor import BlockingExecutor, threads_for


def test_threads_are_bounded_by_the_limit_and_calls_beyond_it_wait() -> None:
    executor = BlockingExecutor(ceiling=100, idle_timeout=5.0)
    executor.resize(1)  # one shard: 2 * 1 + 1 = 3 threads
    gate = threading.Event()
    order: list[int] = []
    try:
        futures = [executor.submit(lambda n=n: (gate.wait(5), order.append(n))) for n in range(10)]
        wait_for(lambda: executor.threads == 3, what="three threads")
        assert executor.threads == 3
        gate.set()
        for future in futures:
            future.result(timeout=5)
        assert sorted(order) == list(range(10))
        assert executor.threads == 3  # none was added for the queued calls
    finally:
        gate.set()
        executor.shutdown()


def test_an_idle_pool_reuses_one_thread() -> None:
    executor = BlockingExecutor(ceiling=50, idle_timeout=5.0)
    executor.resize(20)
    try:
        for n in range(30):
            assert executor.submit(lambda n=n: n * 2).result(timeout=5) == n * 2
        assert executor.threads == 1
    finally:
        executor.shutdown()


def test_limit_follows_the_shards_held_under_the_ceiling() -> None:
    assert threads_for(0, 64) == 1
    assert threads_for(10, 64) == 21
    assert threads_for(200, 64) == 64
    executor = BlockingExecutor(ceiling=64, idle_timeout=5.0)
    executor.resize(200)
    assert executor.limit == 64
    executor.resize(2)
    assert executor.limit == 5
    executor.shutdown()


def test_shrinking_stops_surplus_threads_when_idle() -> None:
    executor = BlockingExecutor(ceiling=10, idle_timeout=5.0)
    executor.resize(10)
    gate = threading.Event()
    try:
        futures = [executor.submit(lambda: gate.wait(5)) for _ in range(6)]
        wait_for(lambda: executor.threads == 6, what="six threads")
        executor.resize(1)
        gate.set()
        for future in futures:
            future.result(timeout=5)
        wait_for(lambda: executor.threads <= 3, what="surplus threads gone")
    finally:
        gate.set()
        executor.shutdown()


def test_errors_and_results_are_delivered() -> None:
    executor = BlockingExecutor(ceiling=2, idle_timeout=5.0)
    delivered: list[object] = []
    done = threading.Event()

    def deliver(outcome: object) -> None:
        delivered.append(outcome)
        if len(delivered) == 2:
            done.set()

    def fail() -> None:
        raise ValueError("boom")

    try:
        executor.call(lambda: 42, deliver)
        executor.call(fail, deliver)
        assert done.wait(5)
        assert 42 in delivered
        assert any(isinstance(item, ValueError) for item in delivered)
    finally:
        executor.shutdown()


def test_shutdown_does_not_wait_for_a_hung_call_and_fails_queued_ones() -> None:
    executor = BlockingExecutor(ceiling=1, idle_timeout=5.0)
    hung = threading.Event()
    try:
        executor.submit(lambda: hung.wait(30))
        queued = executor.submit(lambda: "never")
        executor.shutdown()  # returns at once
        with pytest.raises(RuntimeError, match="shut down"):
            queued.result(timeout=1)
        with pytest.raises(RuntimeError, match="shut down"):
            executor.submit(lambda: None).result(timeout=1)
    finally:
        hung.set()


def test_ceiling_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        BlockingExecutor(ceiling=0, idle_timeout=5.0)


def test_threads_idle_for_the_timeout_exit() -> None:
    executor = BlockingExecutor(ceiling=10, idle_timeout=0.05)
    executor.resize(10)
    gate = threading.Event()
    try:
        futures = [executor.submit(lambda: gate.wait(5)) for _ in range(4)]
        wait_for(lambda: executor.threads == 4, what="four threads")
        gate.set()
        for future in futures:
            future.result(timeout=5)
        wait_for(lambda: executor.threads == 0, what="idle threads gone")
        assert executor.submit(lambda: "again").result(timeout=5) == "again"  # a new one starts
    finally:
        gate.set()
        executor.shutdown()
