"""StreamReader: takes what has arrived (never waits for more), in order, within its budgets."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pytest
from interest_server.api.stream_reader import StreamReader


class Feed:
    """A request iterator the test pushes into; None ends it, an exception is raised from it."""

    def __init__(self) -> None:
        self.q: queue.Queue[object] = queue.Queue()
        self.pulled = 0

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            item = self.q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            self.pulled += 1
            yield item  # type: ignore[misc]


def wait_until(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_takes_everything_already_buffered_in_order() -> None:
    feed = Feed()
    with StreamReader(iter(feed), len, capacity=100) as reader:
        for n in range(5):
            feed.q.put([n] * 3)
        wait_until(lambda: feed.pulled == 5)
        taken = reader.take(budget=100)
        assert taken.messages == [[n] * 3 for n in range(5)]
        assert not taken.ended and taken.error is None
        feed.q.put(None)
        end = reader.take(budget=100)
        assert end.messages == [] and end.ended and end.error is None


def test_a_lone_message_is_taken_without_waiting_for_more() -> None:
    feed = Feed()
    with StreamReader(iter(feed), len, capacity=100) as reader:
        feed.q.put([1])
        start = time.monotonic()
        taken = reader.take(budget=100)
        assert taken.messages == [[1]]
        assert time.monotonic() - start < 1.0


def test_budget_splits_takes_but_the_first_message_always_goes() -> None:
    feed = Feed()
    with StreamReader(iter(feed), len, capacity=1000) as reader:
        feed.q.put([0] * 7)  # heavier than the budget on its own
        for _ in range(3):
            feed.q.put([1] * 4)
        feed.q.put(None)
        wait_until(lambda: feed.pulled == 4)
        assert [len(m) for m in reader.take(budget=5).messages] == [7]
        assert [len(m) for m in reader.take(budget=8).messages] == [4, 4]
        last = reader.take(budget=8)
        assert [len(m) for m in last.messages] == [4] and last.ended


def test_read_ahead_is_bounded_by_capacity() -> None:
    feed = Feed()
    with StreamReader(iter(feed), len, capacity=10) as reader:
        for _ in range(10):
            feed.q.put([0] * 4)
        # Two messages fit (8 of 10); the third is pulled and held by the blocked reader.
        wait_until(lambda: feed.pulled == 3)
        time.sleep(0.2)
        assert feed.pulled == 3
        assert len(reader.take(budget=100).messages) == 2
        wait_until(lambda: feed.pulled == 5)
        time.sleep(0.2)
        assert feed.pulled == 5


def test_a_refused_message_ends_the_stream_after_the_good_ones_before_it() -> None:
    feed = Feed()
    bad = ValueError("too many events")

    def check(message: list[int]) -> BaseException | None:
        return bad if len(message) > 5 else None

    with StreamReader(iter(feed), len, capacity=100) as reader:
        feed.q.put([1])
        feed.q.put([2, 2])
        feed.q.put([3] * 6)
        feed.q.put([4])
        wait_until(lambda: feed.pulled == 4)
        taken = reader.take(budget=100, check=check)
        assert taken.messages == [[1], [2, 2]]
        assert taken.ended and taken.error is bad
        after = reader.take(budget=100, check=check)
        assert after.messages == [] and after.ended and after.error is None


def test_an_error_reading_the_stream_comes_after_the_messages_before_it() -> None:
    feed = Feed()
    broken = RuntimeError("undecodable")
    with StreamReader(iter(feed), len, capacity=100) as reader:
        feed.q.put([1])
        feed.q.put(broken)
        wait_until(lambda: feed.q.empty())
        time.sleep(0.1)  # the reader records the error right after pulling it
        taken = reader.take(budget=100)
        assert taken.messages == [[1]]
        assert taken.ended and taken.error is broken


def test_leaving_releases_a_reader_blocked_on_a_full_buffer() -> None:
    feed = Feed()
    with StreamReader(iter(feed), len, capacity=1, name="blocked-reader"):
        feed.q.put([1])
        feed.q.put([2])
        wait_until(lambda: feed.pulled == 2)
    # The reader held [2] while blocked on the full buffer; leaving let it go without taking.
    wait_until(lambda: not any(t.name == "blocked-reader" for t in threading.enumerate()))


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StreamReader(iter(()), len, capacity=0)
