"""WriteCombiner: calls arriving during a write go together in the next one; each caller gets
exactly its own results or its group's error; callers that gave up get nothing written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from interest_server import caller
from interest_server.engine.write_combiner import WriteCombiner
from interest_server.errors import Cancelled, Unavailable


class SlowWrite:
    """A write that records its groups; the first one blocks until released."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_with: BaseException | None = None

    def __call__(self, records: list[str]) -> list[str]:
        caller.check_waiting()
        self.groups.append(list(records))
        if len(self.groups) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        return [r.upper() for r in records]


def run(fn: Callable[[], object], out: dict[str, object], key: str) -> threading.Thread:
    def target() -> None:
        try:
            out[key] = fn()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out[key] = exc
    t = threading.Thread(target=target)
    t.start()
    return t


def wait_for_queue(combiner: WriteCombiner, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(combiner._queue) < n:  # noqa: SLF001 - the test needs to know they queued
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_a_lone_call_is_written_at_once() -> None:
    write = SlowWrite()
    write.release.set()
    combiner = WriteCombiner(write, budget=100)
    assert combiner.submit(["a", "b"]) == ["A", "B"]
    assert write.groups == [["a", "b"]]
    assert combiner.submit([]) == []


def test_calls_arriving_during_a_write_go_together_and_get_their_own_results() -> None:
    write = SlowWrite()
    groups: list[int] = []
    combiner = WriteCombiner(write, budget=100, on_group=groups.append)
    out: dict[str, object] = {}
    first = run(lambda: combiner.submit(["first"]), out, "first")
    assert write.entered.wait(5)
    others = [run(lambda n=n: combiner.submit([f"c{n}-0", f"c{n}-1"]), out, f"c{n}")
              for n in range(5)]
    wait_for_queue(combiner, 5)
    write.release.set()
    for t in [first, *others]:
        t.join(5)
    assert out["first"] == ["FIRST"]
    for n in range(5):
        assert out[f"c{n}"] == [f"C{n}-0", f"C{n}-1"]
    assert len(write.groups) == 2 and sorted(write.groups[1]) == sorted(
        f"c{n}-{j}" for n in range(5) for j in range(2))
    assert groups == [1, 5]


def test_the_budget_splits_groups_but_never_a_call() -> None:
    write = SlowWrite()
    combiner = WriteCombiner(write, budget=3)
    out: dict[str, object] = {}
    first = run(lambda: combiner.submit(["x"]), out, "x")
    assert write.entered.wait(5)
    threads = []
    for n, size in enumerate([2, 2, 5, 1]):
        threads.append(run(lambda n=n, size=size: combiner.submit([f"{n}"] * size), out, str(n)))
        wait_for_queue(combiner, n + 1)  # (in this order)
    write.release.set()
    for t in [first, *threads]:
        t.join(5)
    assert [len(g) for g in write.groups] == [1, 2, 2, 5, 1]
    assert out["2"] == ["2"] * 5


def test_an_error_goes_to_every_call_of_its_group_only() -> None:
    write = SlowWrite()
    combiner = WriteCombiner(write, budget=100)
    out: dict[str, object] = {}
    first = run(lambda: combiner.submit(["ok"]), out, "ok")
    assert write.entered.wait(5)
    a = run(lambda: combiner.submit(["a"]), out, "a")
    b = run(lambda: combiner.submit(["b"]), out, "b")
    wait_for_queue(combiner, 2)
    write.fail_with = Unavailable("redis down")
    write.release.set()
    for t in (first, a, b):
        t.join(5)
    assert isinstance(out["ok"], Unavailable)  # (the first write fails too: fail_with is set)
    assert isinstance(out["a"], Unavailable) and isinstance(out["b"], Unavailable)
    write.fail_with = None
    assert combiner.submit(["later"]) == ["LATER"]


def test_a_caller_that_gave_up_while_queued_gets_cancelled_and_nothing_written() -> None:
    write = SlowWrite()
    combiner = WriteCombiner(write, budget=100)
    out: dict[str, object] = {}
    gone = threading.Event()

    def leaving() -> object:
        with caller.bound(lambda: not gone.is_set()):
            return combiner.submit(["leaver"])

    first = run(lambda: combiner.submit(["first"]), out, "first")
    assert write.entered.wait(5)
    leaver = run(leaving, out, "leaver")
    stayer = run(lambda: combiner.submit(["stayer"]), out, "stayer")
    wait_for_queue(combiner, 2)
    gone.set()
    write.release.set()
    for t in (first, leaver, stayer):
        t.join(5)
    assert isinstance(out["leaver"], Cancelled)
    assert out["stayer"] == ["STAYER"]
    assert all("leaver" not in g for g in write.groups)


def test_a_caller_leaving_during_its_groups_write_gets_cancelled_and_the_rest_is_redone() -> None:
    stop = threading.Event()
    attempts: list[list[str]] = []

    def write(records: list[str]) -> list[str]:
        attempts.append(list(records))
        if len(attempts) == 1:
            stop.set()  # the caller gives up while its write is being prepared...
        caller.check_waiting()  # ...so the write refuses before sending anything
        return [r.upper() for r in records]

    combiner = WriteCombiner(write, budget=100)
    # Two callers queued behind a busy writer end up in one group.
    combiner._writing = True  # noqa: SLF001 - hold the writer role while they queue
    out: dict[str, object] = {}

    def leaving() -> object:
        with caller.bound(lambda: not stop.is_set()):
            return combiner.submit(["leaver"])

    a = run(leaving, out, "leaver")
    b = run(lambda: combiner.submit(["stayer"]), out, "stayer")
    wait_for_queue(combiner, 2)
    with combiner._lock:  # noqa: SLF001 - hand the writer role back
        combiner._writing = False
        combiner._turn.notify_all()
    a.join(5)
    b.join(5)
    assert isinstance(out["leaver"], Cancelled)
    assert out["stayer"] == ["STAYER"]
    assert attempts[-1] == ["stayer"]


def test_no_call_is_stranded_when_writers_hand_over() -> None:
    calls = 200
    write_lock = threading.Lock()

    def write(records: list[int]) -> list[int]:
        assert write_lock.acquire(blocking=False), "two writes at once"
        try:
            time.sleep(0.0005)
            return [r * 2 for r in records]
        finally:
            write_lock.release()

    combiner = WriteCombiner(write, budget=7)
    out: dict[str, object] = {}
    threads = [run(lambda n=n: combiner.submit([n, n + 1]), out, str(n)) for n in range(calls)]
    for t in threads:
        t.join(10)
    assert all(not t.is_alive() for t in threads)
    assert all(out[str(n)] == [2 * n, 2 * n + 2] for n in range(calls))


def test_budget_one_turns_combining_off_and_calls_write_concurrently() -> None:
    write = SlowWrite()
    combiner = WriteCombiner(write, budget=1)
    out: dict[str, object] = {}
    first = run(lambda: combiner.submit(["a", "b"]), out, "first")
    assert write.entered.wait(5)
    assert combiner.submit(["c"]) == ["C"]  # not queued behind the blocked write
    write.release.set()
    first.join(5)
    assert out["first"] == ["A", "B"]
    assert write.groups == [["a", "b"], ["c"]]
