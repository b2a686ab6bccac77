"""Render query results as an aligned table, CSV or JSON, for people and for scripts.

Why hand-written: the table is ~40 lines, and the one thing a library would add, wide-character
alignment, matters here because board and stock names are Chinese (two terminal columns per
character); :func:`display_width` handles that with :mod:`unicodedata`. No new dependency.

Formats (``--format``), with stable English column names given by the caller:

``table``
    for people: a header, a rule and left-aligned columns (numbers right-aligned). Default on
    a terminal.
``csv``
    for scripts and spreadsheets: RFC 4180 via :mod:`csv`, a header row, ``None`` as an empty
    field, lists joined with ``;``. **Default when stdout is not a terminal**: it is
    line-oriented (``grep``, ``cut``, ``sort`` and ``wc -l`` work on it), streams, and keeps the
    same columns as the table, so ``boardsync members BK0475 > members.csv`` does the expected
    thing.
``json``
    for programs: an array of objects (or one object for a single record), ``None`` as
    ``null``, numbers as numbers, times as ISO 8601 UTC strings, non-ASCII kept as is.

Times are always ISO 8601 in UTC with a ``Z`` suffix (``2026-05-01T08:00:00Z``) in every
format, so text order is time order and nothing depends on the reader's time zone.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from .clock import as_utc
from .clock import iso as clock_iso

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("table", "csv", "json")


def default_format(is_terminal: bool) -> str:
    """``table`` for a person at a terminal, ``csv`` for a pipe or a file (see module doc)."""
    return "table" if is_terminal else "csv"


def iso(value: datetime | None) -> str | None:
    """A datetime as ISO 8601 UTC with ``Z`` (naive values are taken to be UTC)."""
    if value is None:
        return None
    return clock_iso(as_utc(value)).replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """A JSON-ready value: datetimes as ISO UTC strings, sets/tuples as lists, mappings walked."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


def cell(value: Any) -> str:
    """One value as text for a table or CSV field (``None`` -> empty, lists joined by ``;``)."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide/fullwidth count 2, combining marks 0.

    Example: ``display_width("半导体")`` is 6, ``display_width("BK0475")`` is 6.
    """
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _table_text(value: Any) -> str:
    # a newline or tab inside a name would break the alignment of every following row
    text = cell(value)
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An aligned text table: header, rule of dashes, one line per row, ``(no rows)`` if empty.

    Numeric columns (every non-empty value an int or float) are right-aligned.
    """
    texts = [[_table_text(row.get(c)) for c in columns] for row in rows]
    widths = [display_width(c) for c in columns]
    for line in texts:
        widths = [max(w, display_width(t)) for w, t in zip(widths, line, strict=True)]
    numeric = [bool(rows) and all(_is_number(r.get(c)) or r.get(c) is None for r in rows)
               and any(r.get(c) is not None for r in rows) for c in columns]

    def fmt(line: Sequence[str]) -> str:
        parts = []
        for text, width, right in zip(line, widths, numeric, strict=True):
            pad = " " * (width - display_width(text))
            parts.append(pad + text if right else text + pad)
        return "  ".join(parts).rstrip()

    out = [fmt(list(columns)), "  ".join("-" * w for w in widths)]
    out += [fmt(line) for line in texts]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


def render_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header row; parse it back with ``csv.DictReader``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # With "\n" line ends (friendlier to cut/grep than CRLF) the minimal quoting no longer
    # quotes a lone "\r", which readers then take as a line break; quote such rows fully.
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    for row in rows:
        cells = [cell(row.get(c)) for c in columns]
        (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
    return buf.getvalue().rstrip("\n")


def render_json(data: Any) -> str:
    """Pretty JSON (2-space indent, keys in the given order, non-ASCII kept)."""
    return json.dumps(plain(data), ensure_ascii=False, indent=2)


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """Render ``rows`` restricted to ``columns`` (in that order) as ``fmt``.

    Args:
        rows: mappings from column name to value; a missing key is ``None``.
        columns: the stable column names, in output order.
        fmt: ``table``, ``csv`` or ``json``.

    Raises:
        ValueError: unknown format.
    """
    if fmt == "table":
        return render_table(rows, columns)
    if fmt == "csv":
        return render_csv(rows, columns)
    if fmt == "json":
        return render_json([{c: row.get(c) for c in columns} for row in rows])
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def render_record(record: Mapping[str, Any], fmt: str) -> str:
    """One record: ``key  value`` lines (table), ``field,value`` rows (csv) or an object (json).

    Nested mappings are flattened with dots in table and CSV (``totals.ok``) so each fact is
    one greppable line.
    """
    if fmt == "json":
        return render_json(record)
    flat = list(_flatten(record))
    rows = [{"field": k, "value": v} for k, v in flat]
    if fmt == "csv":
        return render_csv(rows, ("field", "value"))
    if fmt == "table":
        width = max((display_width(k) for k, _ in flat), default=0)
        return "\n".join(f"{k}{' ' * (width - display_width(k))}  {_table_text(v)}".rstrip()
                         for k, v in flat)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def _flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out
