"""LocalTaskQueue: FIFO, retries to the tail, timeouts, wake-ups, thread safety."""

from __future__ import annotations

import threading

import pytest

from boardsync.models import Board
from boardsync.queue import LocalTaskQueue, Task, TaskQueue


def board(i: int) -> Board:
    return Board(f"BK{i:04d}", f"board {i}", "industry")


def test_task_is_frozen() -> None:
    t = Task(0, board(1))
    with pytest.raises(AttributeError):
        t.retry_count = 1  # type: ignore[misc]


def test_fifo_and_retries_go_to_the_tail() -> None:
    q: TaskQueue = LocalTaskQueue()
    for i in range(3):
        q.put(Task(0, board(i)))
    first = q.get(timeout=0)
    assert first == Task(0, board(0))
    q.put(Task(first.retry_count + 1, first.board))  # failed: back to the tail
    q.done(first)
    assert len(q) == 3
    assert q.pending() == [Task(0, board(1)), Task(0, board(2)), Task(1, board(0))]
    order = [q.get(timeout=0) for _ in range(3)]
    assert order == [Task(0, board(1)), Task(0, board(2)), Task(1, board(0))]
    assert len(q) == 0


def test_get_times_out_with_none() -> None:
    q = LocalTaskQueue()
    assert q.get(timeout=0.01) is None
    assert q.get(timeout=0) is None


def test_a_put_wakes_a_waiting_get() -> None:
    q = LocalTaskQueue()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    waiter.start()
    q.put(Task(0, board(1)))
    waiter.join(30)
    assert not waiter.is_alive() and got == [Task(0, board(1))]


def test_threads_take_every_task_exactly_once() -> None:
    q = LocalTaskQueue()
    n = 500
    for i in range(n):
        q.put(Task(0, board(i)))
    taken: list[Task] = []
    lock = threading.Lock()

    def worker() -> None:
        while (t := q.get(timeout=0.01)) is not None:
            with lock:
                taken.append(t)
            q.done(t)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5)
    assert sorted(t.board.code for t in taken) == sorted(f"BK{i:04d}" for i in range(n))
    assert len(q) == 0


def test_lower_rank_goes_first_among_equal_attempts_and_retries_after_every_first() -> None:
    """Boards listed later but bigger (lower rank) overtake the smaller waiting ones; a retry
    waits behind every first attempt whatever its rank; equal ranks stay first-in first-out."""
    q = LocalTaskQueue()
    q.put(Task(0, board(1), rank=-10))
    q.put(Task(0, board(2), rank=-10))
    q.put(Task(1, board(3), rank=-1000))  # a retry of a big board
    q.put(Task(0, board(4), rank=-500))  # a big board from a list that came in later
    q.put(Task(0, board(5)))
    expected = [board(4), board(1), board(2), board(5), board(3)]
    assert [t.board for t in q.pending()] == expected
    assert [q.get(timeout=0).board for _ in range(5)] == expected  # type: ignore[union-attr]
