"""The state file: a small, versioned JSON record of runs and boards, written atomically.

Why a file next to the database: it is what an operator (or ``boardsync state show``) reads
while a run is going, it survives a lost database, and ``state verify`` compares its per-board
checksums with the database to catch tampering on either side.

Layout (``"version": 1``; ``db_id``/``db_url`` name the database it mirrors, absent in files
older than that, see :mod:`boardsync.mirror`)::

    {"version": 1, "updated_at": "2026-05-01T08:00:00+00:00", "current_run": "r-..." | null,
     "db_id": "4f0c...-uuid", "db_url": "postgresql://u:***@host/db",
     "runs": [{"id", "mode", "params", "started_at", "finished_at", "status", "totals", "ips",
               "errors"}],
     "boards": {"BK0475": {"status", "attempts", "last_error_class", "error_counts", "rows",
                           "checksum", "run_id", "synced_at", "kind", "name", "written_by",
                           "seen_in_run", "updated_at", ...}}}

Guarantees:

* **Atomic**: every save writes a temp file in the same directory, flushes, fsyncs, then
  ``os.replace`` and fsyncs the directory; a reader (or a SIGKILL at any moment) only ever sees
  a complete old file or a complete new one.
* **Private**: the file is created with mode 0600 (it names the proxy provider and hosts).
* **Never silently lost**: an unparseable file or an unknown version raises :class:`StateError`
  naming the path and the reason, and this object then refuses to save over it.
* **Thread-safe** inside one process: one lock guards the data and the writes.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .clock import SYSTEM, Clock, iso
from .errors import StateError
from .models import is_board_code
from .redact import mask_db_url, redact

logger = logging.getLogger(__name__)

STATE_VERSION = 1

#: Board statuses the state file knows.
BOARD_STATUSES: frozenset[str] = frozenset(
    {"ok", "failed", "pending", "retrying", "suspicious", "deleted", "fetched_unwritten",
     "no_quote"}
)

#: Per-board fields :meth:`StateFile.update_board` accepts (a typo is an error, not a new key).
BOARD_FIELDS: frozenset[str] = frozenset(
    {
        "status", "attempts", "last_error_class", "error_counts", "rows", "checksum", "run_id",
        "synced_at", "kind", "name",
        # written by the sync for held-back or unwritten boards (what was fetched, not stored)
        "fetched_rows", "checksum_fetched",
    }
)

#: Default minimum time between two non-forced saves, in milliseconds.
DEFAULT_DEBOUNCE_MS = 500

#: Boards keep the ids of at most this many runs that wrote them (the audit trail).
WRITTEN_BY_KEEP = 50


def _empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, "updated_at": None, "current_run": None, "runs": [],
            "boards": {}}


class StateFile:
    """The state file at ``path``; see the module docstring for the layout and guarantees.

    Args:
        path: the JSON file; its directory is created on the first save.
        debounce_ms: minimum time between two ``save()`` calls that actually write; ``0``
            writes every time. ``save(force=True)`` always writes.
        clock: the debounce's monotonic time and the records' wall time (``updated_at``,
            ``started_at``...); injected so tests step the debounce and read exact times.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        debounce_ms: float = DEFAULT_DEBOUNCE_MS,
        clock: Clock = SYSTEM,
    ) -> None:
        self.path = Path(path)
        self.debounce_ms = debounce_ms
        self._clock = clock
        self._lock = threading.RLock()
        self._data: dict[str, Any] = _empty()
        self._loaded = False
        self._broken: str | None = None  # why the file on disk must not be overwritten
        self._dirty = False
        self._last_save: float | None = None
        #: Takes changed board records on each save (the database); False = could not
        self.mirror: Callable[[dict[str, dict[str, Any]]], bool] | None = None
        self._unmirrored: set[str] = set()
        self._mirror_failed = False

    # -- reading ------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """Read the file (a missing file is an empty state) and return a copy of the data.

        Raises:
            StateError: the file cannot be read, is not JSON, is not an object, or has a
                version this code does not know. The file is left untouched and later
                ``save()`` calls refuse to overwrite it.
        """
        with self._lock:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                self._data, self._loaded, self._broken = _empty(), True, None
                return copy.deepcopy(self._data)
            except OSError as e:
                raise self._fail(f"cannot read: {e.strerror or e}") from e
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise self._fail(f"not valid JSON ({e})") from e
            if not isinstance(data, dict):
                raise self._fail(f"expected a JSON object, found {type(data).__name__}")
            version = data.get("version")
            if version != STATE_VERSION:
                raise self._fail(f"unknown version {version!r} (this boardsync reads version "
                                 f"{STATE_VERSION})")
            for key, kind in (("runs", list), ("boards", dict)):
                if not isinstance(data.setdefault(key, kind()), kind):
                    raise self._fail(f"{key!r} must be a JSON {kind.__name__}")
            data.setdefault("current_run", None)
            data.setdefault("updated_at", None)
            self._data, self._loaded, self._broken = data, True, None
            return copy.deepcopy(data)

    def check_writable(self) -> None:
        """Raise :class:`StateError` now if a later :meth:`save` could not write the file.

        Called before a run touches anything else, so a bad ``--state`` path fails up front
        with nothing written. Creates nothing: it looks for the nearest existing ancestor of
        the file, which must be a directory this process may write (the missing levels are
        created by the first save); an existing file must be a regular, writable file.
        """
        path = self.path.absolute()
        if path.exists():
            if not path.is_file():
                raise StateError(f"state file {self.path}: not a regular file")
            if not os.access(path, os.W_OK):
                raise StateError(f"state file {self.path}: not writable")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise StateError(f"state file {self.path}: cannot be created: {parent} is not a "
                             "directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StateError(f"state file {self.path}: cannot be created: {parent} is not "
                             "writable")

    def _fail(self, reason: str) -> StateError:
        self._broken = reason
        logger.error("State %s: %s; not overwriting it", self.path, reason)
        return StateError(f"state file {self.path}: {reason}; move it aside or fix it "
                          "(it is not overwritten)")

    def _ensure_loaded(self) -> None:
        if self._broken is not None:
            raise StateError(f"state file {self.path}: {self._broken}; refusing to overwrite it")
        if not self._loaded:
            self.load()

    def board(self, code: str) -> dict[str, Any] | None:
        """A copy of one board's record, or ``None`` when the state has never seen it."""
        with self._lock:
            self._ensure_loaded()
            rec = self._data["boards"].get(code)
            return copy.deepcopy(rec) if rec is not None else None

    def boards(self) -> dict[str, dict[str, Any]]:
        """A copy of every board record, keyed by code."""
        with self._lock:
            self._ensure_loaded()
            return copy.deepcopy(self._data["boards"])

    def runs(self) -> list[dict[str, Any]]:
        """A copy of the run records, oldest first."""
        with self._lock:
            self._ensure_loaded()
            return copy.deepcopy(self._data["runs"])

    def current_run(self) -> dict[str, Any] | None:
        """The unfinished (resumable) run's record, or ``None`` when the last run finished."""
        with self._lock:
            self._ensure_loaded()
            run = self._find_run(self._data.get("current_run"))
            return copy.deepcopy(run) if run is not None else None

    def remaining(self, run_id: str) -> list[str]:
        """Codes of the boards that run ``run_id`` took on and did not finish ``ok``, sorted.

        "Took on" means the board record was updated while ``run_id`` was the current run
        (``seen_in_run``); deleted boards are done, not remaining.
        """
        with self._lock:
            self._ensure_loaded()
            return sorted(
                code for code, rec in self._data["boards"].items()
                if rec.get("seen_in_run") == run_id and rec.get("status") not in ("ok", "deleted")
            )

    def _find_run(self, run_id: str | None) -> dict[str, Any] | None:
        if run_id is None:
            return None
        for run in reversed(self._data["runs"]):
            if run.get("id") == run_id:
                return run
        return None

    # -- changing -----------------------------------------------------------------------

    def begin_run(self, run_id: str, mode: str, params: Mapping[str, Any]) -> None:
        """Record a new run (or re-open ``run_id`` when resuming it) and make it current."""
        with self._lock:
            self._ensure_loaded()
            run = self._find_run(run_id)
            if run is None:
                run = {"id": run_id, "mode": mode, "params": redact(dict(params)),
                       "started_at": self._now_iso(), "finished_at": None, "status": "running",
                       "totals": {}, "ips": {}, "errors": {}}
                self._data["runs"].append(run)
            else:
                run.update(status="running", finished_at=None)
            self._data["current_run"] = run_id
            self._dirty = True

    def finish_run(
        self,
        run_id: str,
        status: str,
        totals: Mapping[str, Any],
        ips: Mapping[str, Any] | int | None,
        errors: Mapping[str, Any],
        *,
        resumable: bool = False,
    ) -> None:
        """Close run ``run_id`` with its outcome.

        Args:
            resumable: ``True`` keeps it as ``current_run`` so the next start resumes it
                (interrupted or partial with boards left); ``False`` clears ``current_run``.
        """
        with self._lock:
            self._ensure_loaded()
            run = self._find_run(run_id)
            if run is None:
                run = {"id": run_id, "mode": None, "params": {}, "started_at": None}
                self._data["runs"].append(run)
            run.update(status=status, finished_at=self._now_iso(), totals=redact(dict(totals)),
                       ips=redact(dict(ips)) if isinstance(ips, Mapping) else ips,
                       errors=dict(errors))
            if resumable:
                self._data["current_run"] = run_id
            elif self._data.get("current_run") == run_id:
                self._data["current_run"] = None
            self._dirty = True

    def update_board(self, code: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into board ``code``'s record and return a copy of it.

        Bookkeeping done here so every caller gets it: ``updated_at``; ``seen_in_run`` (the
        current run, for :meth:`remaining`); ``error_counts`` +1 for a non-None
        ``last_error_class`` unless ``error_counts`` is passed; ``written_by`` gains ``run_id``
        when ``status="ok"`` (the runs that wrote the board, newest last); the mirror's
        to-do.

        Raises:
            ValueError: unknown board code, field or status (a bug in the caller).
        """
        if not is_board_code(code):
            raise ValueError(f"not a board code: {code!r}")
        unknown = set(fields) - BOARD_FIELDS
        if unknown:
            raise ValueError(f"unknown board fields: {sorted(unknown)}")
        status = fields.get("status")
        if status is not None and status not in BOARD_STATUSES:
            raise ValueError(f"unknown board status {status!r}")
        with self._lock:
            self._ensure_loaded()
            rec = self._data["boards"].setdefault(code, {"attempts": 0, "error_counts": {}})
            error_class = fields.get("last_error_class")
            if error_class is not None and "error_counts" not in fields:
                counts = rec.setdefault("error_counts", {})
                counts[error_class] = counts.get(error_class, 0) + 1
            rec.update(fields)
            if status == "ok" and fields.get("run_id"):
                written = [r for r in rec.get("written_by", []) if r != fields["run_id"]]
                written.append(fields["run_id"])
                rec["written_by"] = written[-WRITTEN_BY_KEEP:]
            if self._data.get("current_run") is not None:
                rec["seen_in_run"] = self._data["current_run"]
            rec["updated_at"] = self._now_iso()
            self._dirty = True
            self._unmirrored.add(code)
            return copy.deepcopy(rec)

    def bind(self, db_id: str, db_url: str) -> None:
        """Record which database this file mirrors: its identity and URL (password masked)."""
        with self._lock:
            self._ensure_loaded()
            self._data.update(db_id=db_id, db_url=mask_db_url(db_url))
            self._dirty = True

    def replace(self, data: Mapping[str, Any], unmirrored: frozenset[str] = frozenset()) -> None:
        """Take ``data`` (rebuilt from the database) as the whole state, even over a file that
        could not be read; ``unmirrored``: board codes the database does not have yet."""
        with self._lock:
            self._data = _empty() | copy.deepcopy(dict(data))
            self._loaded, self._broken, self._dirty = True, None, True
            self._unmirrored = set(unmirrored)

    def _push_mirror(self, force: bool) -> None:
        """Hand the board records changed since the last push to :attr:`mirror`.

        After a failed push (the database is away) the next one waits for a forced save, so
        a database outage costs one attempt per run boundary, not one per board.
        """
        if self.mirror is None or not self._unmirrored or (self._mirror_failed and not force):
            return
        boards = self._data["boards"]
        records = {c: copy.deepcopy(boards[c]) for c in sorted(self._unmirrored) if c in boards}
        self._mirror_failed = not self.mirror(records)
        if not self._mirror_failed:
            self._unmirrored.clear()

    def _now_iso(self) -> str:
        return iso(self._clock.wall())

    # -- writing ------------------------------------------------------------------------

    def save(self, force: bool = False) -> bool:
        """Write the file atomically; returns whether it wrote.

        Without ``force`` a save within ``debounce_ms`` of the previous write is skipped (the
        data stays dirty and the next save writes it): the sync calls this after every board,
        and fsyncing a few hundred KB per board would dominate small runs. Call
        ``save(force=True)`` at run boundaries.

        Raises:
            StateError: the file could not be written, or it was unreadable when loaded.
        """
        with self._lock:
            self._ensure_loaded()
            now = self._clock.now()
            if (not force and self._last_save is not None
                    and (now - self._last_save) * 1000.0 < self.debounce_ms):
                return False
            self._push_mirror(force)  # the database first: it is the authority
            self._data["updated_at"] = self._now_iso()
            body = json.dumps(self._data, ensure_ascii=False, indent=1, sort_keys=True,
                              default=str).encode("utf-8")
            try:
                write_atomic(self.path, body)
            except OSError as e:
                raise StateError(f"state file {self.path}: cannot write: "
                                 f"{e.strerror or e}") from e
            self._last_save = now
            self._dirty = False
            return True

    @property
    def dirty(self) -> bool:
        """True when there are changes not yet written (a debounced save skipped them)."""
        return self._dirty
