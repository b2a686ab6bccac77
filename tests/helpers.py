"""What several test files need: one fake clock, one polling helper, one short-sleep pause,
one "database equals the truth" check and one closed-port helper. Import from here; do not
grow private copies.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from boardsync.store import Store

#: Wall time a fresh :class:`FakeClock` reads: fixed, so recorded times are exact.
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class FakeClock:
    """A :class:`boardsync.clock.Clock` that only moves when told to, or when slept on.

    ``sleep(s)`` and an unset ``wait(event, s)`` advance the time by ``s`` at once, so code
    that paces itself runs instantly while every computed wait is still exact (recorded in
    :attr:`sleeps`). Thread-safe, so a few threads may share it; a test that needs threads to
    wait for each other in virtual time uses its own scheduler.
    """

    def __init__(self, start: float = 1000.0, wall: datetime = T0) -> None:
        self._t = start
        self._start = start
        self._wall0 = wall
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move the time forward by ``seconds`` (never back); returns the new time."""
        with self._lock:
            self._t += max(0.0, seconds)
            return self._t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._t += max(0.0, seconds)

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        if event.is_set():
            return True
        if seconds is None:
            return event.wait()  # nothing else could move a fake clock to release it
        self.sleep(seconds)
        return event.is_set()

    def wall(self) -> datetime:
        with self._lock:
            return self._wall0 + timedelta(seconds=self._t - self._start)

    def advance_to(self, when: datetime) -> float:
        """Move the time forward until :meth:`wall` reads ``when`` (never back)."""
        return self.advance((when - self.wall()).total_seconds())


def wait_until(predicate: Callable[[], bool], limit: float = 30.0,
               every: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true; False after ``limit`` s of real time.

    The limit only keeps a broken test from hanging; tests assert the predicate, never a time.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def pause(seconds: float, every: float = 0.005) -> None:
    """Let ``seconds`` of real time pass in short sleeps.

    For the few tests that must let a real run go on (a subprocess, an outage thread) while
    keeping the suite's rule that no single ``time.sleep`` is 0.1 s or more.
    """
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(every)


def assert_db_equals_truth(db_url: str, truth: Mapping[str, frozenset[str] | set[str]]) -> None:
    """Every board of ``truth`` holds exactly its members, and no member is open twice.

    Queries go through the store's own engine, so a ``postgresql://`` URL gets the driver the
    store uses (a bare ``create_engine`` would pick SQLAlchemy's default driver instead).
    """
    store = Store(db_url)
    try:
        wrong = sorted(c for c, members in truth.items()
                       if store.member_codes(c) != set(members))
        with store.engine.connect() as conn:
            dupes = conn.execute(text(
                "SELECT board_code, stock_code, COUNT(*) FROM membership_history "
                "WHERE valid_to IS NULL GROUP BY board_code, stock_code HAVING COUNT(*) > 1"
            )).fetchall()
    finally:
        store.dispose()
    assert wrong == [], f"{len(wrong)} boards differ from the truth: {wrong[:10]}"
    assert dupes == [], f"members open twice in history: {dupes[:10]}"


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_metrics(text_: str) -> dict[str, float]:
    """Every Prometheus sample as ``name{labels}`` -> value, via the text format's own parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text_):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out
