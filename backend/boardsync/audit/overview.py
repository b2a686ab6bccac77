"""The state file at a glance: boards by kind and status, stale boards, failures, last run."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..clock import SYSTEM, Clock, parse_utc
from ..report import iso, render_table


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None


def state_overview(data: Mapping[str, Any], *, max_age_s: float,
                   now: datetime | None = None, clock: Clock = SYSTEM) -> dict[str, Any]:
    """A machine-readable overview of a state file's data (``state show --json``).

    Args:
        data: what :func:`load_state` returned.
        max_age_s: boards whose last successful sync is older than this are ``stale`` (the
            same rule an incremental sync uses to refetch them).
        now: the reference time (default: ``clock.wall()``).
        clock: where the reference time comes from when ``now`` is not given.
    """
    now = now or clock.wall()
    boards: Mapping[str, Mapping[str, Any]] = data.get("boards") or {}
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    stale, failures, never = [], [], []
    for code, rec in sorted(boards.items()):
        kind = rec.get("kind") or "unknown"
        status = rec.get("status") or "unknown"
        by_kind[kind][status] += 1
        synced = _parse_iso(rec.get("synced_at"))
        if status == "deleted":
            continue
        if synced is None:
            never.append(code)
        elif (now - synced).total_seconds() > max_age_s:
            stale.append({"code": code, "kind": kind, "name": rec.get("name"),
                          "status": status, "synced_at": synced,
                          "age_h": round((now - synced).total_seconds() / 3600, 1)})
        if status in ("failed", "suspicious", "fetched_unwritten", "retrying"):
            failures.append({"code": code, "kind": kind, "name": rec.get("name"),
                             "status": status, "attempts": rec.get("attempts"),
                             "last_error_class": rec.get("last_error_class"),
                             "error_counts": rec.get("error_counts") or {},
                             "run_id": rec.get("run_id")})
    runs = data.get("runs") or []
    return {
        "updated_at": data.get("updated_at"),
        "boards_total": len(boards),
        "boards_by_kind": {k: dict(sorted(c.items())) for k, c in sorted(by_kind.items())},
        "max_age_s": max_age_s,
        "stale": stale,
        "never_synced": never,
        "failures": failures,
        "runs_total": len(runs),
        "last_run": runs[-1] if runs else None,
        "current_run": data.get("current_run"),
    }


def format_overview(ov: Mapping[str, Any], path: str | Path) -> str:
    """The readable ``state show`` text for an overview from :func:`state_overview`."""
    lines = [f"State file {path} (updated {ov.get('updated_at') or 'never'})"]
    by_kind: Mapping[str, Mapping[str, int]] = ov["boards_by_kind"]
    statuses = sorted({s for c in by_kind.values() for s in c},
                      key=lambda s: (s != "ok", s))
    lines.append(f"\nBoards: {ov['boards_total']}")
    if by_kind:
        rows = [{"kind": k, **{s: c.get(s, 0) for s in statuses}, "total": sum(c.values())}
                for k, c in by_kind.items()]
        lines.append(_indent(render_table(rows, ("kind", *statuses, "total"))))
    hours = ov["max_age_s"] / 3600
    lines.append(f"\nStale (last synced more than {hours:g}h ago): {len(ov['stale'])}")
    for s in ov["stale"]:
        lines.append(f"  {s['code']}  {s['kind']}  {s['name'] or ''}  synced "
                     f"{iso(s['synced_at'])} ({s['age_h']:g}h ago)")
    if ov["never_synced"]:
        shown = ", ".join(ov["never_synced"][:20])
        more = len(ov["never_synced"]) - 20
        lines.append(f"Never synced: {len(ov['never_synced'])}: {shown}"
                     + (f" and {more} more" if more > 0 else ""))
    lines.append(f"\nFailures: {len(ov['failures'])}")
    for f in ov["failures"]:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(f["error_counts"].items()))
        lines.append(f"  {f['code']}  {f['kind']}  {f['status']}  attempts {f['attempts']}  "
                     f"last error {f['last_error_class']}" + (f"  ({counts})" if counts else ""))
    run = ov["last_run"]
    lines.append(f"\nRuns recorded: {ov['runs_total']}")
    if run is None:
        lines.append("Last run: none")
    else:
        t = run.get("totals") or {}
        errors = ", ".join(f"{k}={v}" for k, v in sorted((run.get("errors") or {}).items()))
        lines.append(f"Last run: {run.get('id')} ({run.get('mode')}) {run.get('status')}, "
                     f"started {run.get('started_at')}, finished {run.get('finished_at')}")
        if t:
            lines.append(f"  boards {t.get('ok', 0)} ok, {t.get('failed', 0)} failed, "
                         f"{t.get('skipped', 0)} skipped; rows {t.get('rows_written', 0)} "
                         f"({t.get('joined', 0)} joined, {t.get('left', 0)} left)")
        if errors:
            lines.append(f"  errors {errors}")
    lines.append(f"Unfinished run (resumes next): {ov['current_run'] or 'none'}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
