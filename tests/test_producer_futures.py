"""RecordFuture behaves as a stdlib Future; the stdlib internals it relies on are pinned here."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from concurrent.futures import Future

import pytest

from kinesis_actors._models import UserRecordResult
from kinesis_actors._producer.futures import RecordFuture, finish_all

RESULT = UserRecordResult("shardId-1", "42", (), True)


def test_the_stdlib_future_internals_are_the_ones_record_future_replaces() -> None:
    assert set(vars(Future())) == {
        "_condition", "_state", "_result", "_exception", "_waiters", "_done_callbacks"
    }  # fmt: skip
    assert callable(Future._invoke_callbacks)


def test_a_record_future_is_a_running_future_that_cannot_be_cancelled() -> None:
    future = RecordFuture()
    assert isinstance(future, Future)
    assert future.running() and not future.done()
    assert not future.cancel()
    assert "running" in repr(future)


def test_finish_all_resolves_unwatched_and_watched_futures() -> None:
    unwatched, watched = RecordFuture(), RecordFuture()
    assert not watched.done()  # makes its condition
    finish_all([unwatched, watched], [RESULT, RESULT])
    assert unwatched.result(0) is RESULT and watched.result(0) is RESULT
    with pytest.raises(concurrent.futures.InvalidStateError):
        watched.set_result(RESULT)
    with pytest.raises(concurrent.futures.InvalidStateError):
        unwatched.set_result(RESULT)


def test_a_waiting_thread_is_woken() -> None:
    future = RecordFuture()
    got: list[UserRecordResult] = []
    waiter = threading.Thread(target=lambda: got.append(future.result(5)))
    waiter.start()
    while "_condition" not in vars(future):
        time.sleep(0.001)
    finish_all([future], [RESULT])
    waiter.join()
    assert got == [RESULT]


def test_callbacks_run_once_whether_added_before_or_after_and_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future = RecordFuture()
    calls: list[str] = []
    future.add_done_callback(lambda f: calls.append("before"))
    future.add_done_callback(lambda f: 1 / 0)
    finish_all([future], [RESULT])
    future.add_done_callback(lambda f: calls.append("after"))
    assert calls == ["before", "after"]
    assert "exception calling callback" in caplog.text


def test_callbacks_of_a_watched_future_use_the_stdlib_path() -> None:
    future = RecordFuture()
    future.done()
    calls: list[Future[UserRecordResult]] = []
    future.add_done_callback(calls.append)
    finish_all([future], [RESULT])
    assert calls == [future]


def test_set_exception_and_the_module_helpers_work() -> None:
    failed, succeeded = RecordFuture(), RecordFuture()
    failed.set_exception(ValueError("boom"))
    finish_all([succeeded], [RESULT])
    done, not_done = concurrent.futures.wait([failed, succeeded], timeout=1)
    assert done == {failed, succeeded} and not not_done
    assert isinstance(failed.exception(0), ValueError)
    assert list(concurrent.futures.as_completed([succeeded])) == [succeeded]


def test_wait_blocks_until_finish_all() -> None:
    future = RecordFuture()
    timer = threading.Timer(0.05, finish_all, [[future], [RESULT]])
    timer.start()
    done, _ = concurrent.futures.wait([future], timeout=5)
    timer.join()
    assert done == {future}


def test_racing_callbacks_and_waiters_see_exactly_one_resolution() -> None:
    futures = [RecordFuture() for _ in range(2000)]
    calls = [0] * len(futures)
    results: list[UserRecordResult] = []

    def count(index: int) -> None:
        calls[index] += 1

    def subscribe() -> None:
        for index, future in enumerate(futures):
            future.add_done_callback(lambda _, i=index: count(i))

    def wait_all() -> None:
        results.extend(f.result(10) for f in futures[::7])

    threads = [threading.Thread(target=subscribe), threading.Thread(target=wait_all)]
    for thread in threads:
        thread.start()
    for start in range(0, len(futures), 100):
        finish_all(futures[start : start + 100], [RESULT] * 100)
    for thread in threads:
        thread.join()
    assert calls == [1] * len(futures)
    assert len(results) == len(futures[::7])


def test_a_sink_gets_each_batch_in_one_call_and_every_future_exactly_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batches: list[list[RecordFuture]] = []
    sink = lambda futures: batches.append(list(futures))  # noqa: E731
    futures = [RecordFuture(sink, tag=n) for n in range(3)]
    watched, failed, plain = (
        RecordFuture(sink, tag="w"),
        RecordFuture(sink, tag="f"),
        RecordFuture(),
    )
    watched.done()  # makes its condition: finished through the stdlib path
    calls: list[object] = []
    futures[0].add_done_callback(lambda f: calls.append(f.tag))
    finish_all([*futures, watched, plain], [RESULT] * 5)
    failed.set_exception(ValueError("boom"))
    assert batches == [futures, [watched], [failed]]
    assert [f.tag for f in futures] == [0, 1, 2] and calls == [0] and plain.tag is None
    assert all(f.result(0) is RESULT for f in [*futures, watched])
    RecordFuture(lambda futures: 1 / 0).set_exception(ValueError("boom"))
    assert "exception calling callback" in caplog.text
