"""What a run produces: its status, its summary, and what workers hand back to the manager.

Workers never touch the run's bookkeeping; they put one :data:`Outcome` per event on a queue
and the manager applies it. The union is closed (``Outcome``), so the manager's dispatch is
checked by the type checker and a new kind of outcome cannot be forgotten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .models import Board, Member


class RunStatus(enum.StrEnum):
    """How a run ended (the CLI maps each to an exit code); ``RUNNING`` until it ends."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    NOTHING_TO_DO = "nothing_to_do"
    INTERRUPTED = "interrupted"
    ABANDONED = "abandoned"  # an unfinished run that a forced run replaced


@dataclass
class Summary:
    """What a run did; printed at the end, stored in the run record and the state file."""

    run_id: str
    mode: str
    status: str = RunStatus.RUNNING
    boards_total: int = 0
    ok: int = 0
    failed: int = 0
    suspicious: int = 0
    not_written: int = 0
    skipped: int = 0
    deleted: int = 0
    rows_written: int = 0
    joined: int = 0
    left: int = 0
    requests: int = 0
    retries: int = 0
    ips_extracted: int = 0
    ips_failed: int = 0
    ips_expired: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float | None] = field(default_factory=dict)
    duration_s: float = 0.0
    stop_reason: str | None = None
    remaining: list[str] = field(default_factory=list)
    failed_boards: list[str] = field(default_factory=list)
    suspicious_boards: list[str] = field(default_factory=list)
    #: per (host, route, transport) health at the end (``upstream.Pool.snapshot`` rows)
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: boards the directory lists whose members answer "no quote" (rc 100), not failures
    unquoted_boards: list[str] = field(default_factory=list)
    #: the board directory against the lists (see :func:`boardsync.witness.compare`)
    directory: dict[str, Any] = field(default_factory=dict)
    #: ``{kind: {"listed": n, "last_good": m, "kept": [codes not deleted]}}``: lists that
    #: shrank too much, whose deletions were held back (``--accept-shrink`` applies them)
    lists_held_back: dict[str, Any] = field(default_factory=dict)
    #: ``{"industry level 3": {"ended": [codes], "started": [codes]}}``: whole levels replaced
    revamped: dict[str, Any] = field(default_factory=dict)

    def totals(self) -> dict[str, Any]:
        """The numeric part, for run records."""
        return {
            k: getattr(self, k)
            for k in ("boards_total", "ok", "failed", "suspicious", "not_written", "skipped",
                      "deleted", "rows_written", "joined", "left", "requests", "retries",
                      "ips_extracted", "ips_failed", "ips_expired", "duration_s")
        } | {"latency": self.latency, "stop_reason": self.stop_reason,
             "remaining": len(self.remaining), "unquoted": list(self.unquoted_boards),
             "directory": self.directory, "lists_held_back": self.lists_held_back,
             "revamped": {k: {"ended": len(v["ended"]), "started": len(v["started"])}
                          for k, v in self.revamped.items()}}

    def stop(self, reason: str) -> None:
        """Record why the run stopped early; the first reason stands."""
        self.stop_reason = self.stop_reason or reason

    def count(self, metrics: Any, stats: Any, hosts: list[dict[str, Any]]) -> None:
        """The run's requests, retries, errors and latency (``metrics``), its IPs (the proxy
        manager's ``stats``) and the upstream hosts' health, as they stand at its end."""
        self.requests, self.retries = metrics.requests, metrics.retries
        self.ips_extracted, self.ips_failed = stats.extracted, stats.failed
        self.ips_expired = stats.expired
        self.errors, self.latency = metrics.errors_by_class(), metrics.latency_percentiles()
        self.hosts = hosts

    def end(self, status: str) -> None:
        """Set the final status unless one is already set (the first reason stands)."""
        if self.status == RunStatus.RUNNING:
            self.status = status


@dataclass(frozen=True)
class Fetched:
    """A worker's successful fetch of one board."""

    board: Board
    members: list[Member]
    attempts: int


@dataclass(frozen=True)
class Failed:
    """A board that will not be retried (permanent failure)."""

    board: Board
    error_class: str
    message: str
    attempts: int


@dataclass(frozen=True)
class Retrying:
    """A board that failed and went back to the queue (behind every first attempt)."""

    board: Board
    error_class: str
    attempts: int


@dataclass(frozen=True)
class Listed:
    """A lister fetched the board list of ``kind``."""

    kind: str
    boards: list[Board]


@dataclass(frozen=True)
class ListFailed:
    """A lister gave up on the board list of ``kind``: the run ends with ``status``."""

    kind: str
    status: str
    reason: str
    quota: bool = False


@dataclass(frozen=True)
class DirectoryRead(Listed):
    """The board directory, read once per run: ``entries`` by code, or None with ``reason``
    when it could not be read (the run then goes on with the lists alone). A
    :class:`Listed` of no boards, so the manager hands it to the list intake like a list."""

    entries: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class QuotaOut:
    """A worker could not get an IP: the quota is spent, the run must stop cleanly."""

    message: str


#: Everything a worker may hand the manager.
Outcome = Fetched | Failed | Retrying | Listed | ListFailed | QuotaOut
