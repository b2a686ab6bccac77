"""The pure ``clist`` page parser: bytes in, a :class:`Page` or :class:`InvalidResponse` out.

Why pure: the parser is tested on real captures and fuzzed with arbitrary bytes
(``tests/test_parser_properties.py``); anything malformed is an
:class:`~boardsync.errors.InvalidResponse`, never a ``KeyError``/``TypeError`` that would
escape the classifier as "unexpected" and keep a bad IP in use.

Decisions:

* **``rc != 0``.** With ``data: null`` it is read like ``data: null`` (sibling push2
  endpoints answer ``rc=102, data=null`` for unknown codes, so a deleted board may look like
  this); with non-null data it is :class:`InvalidResponse`. A missing ``rc`` counts as 0 (only
  ``data`` is required: we do not validate undocumented metadata).
* **Market ``f13`` of ``"-"``/missing** is inferred from the code: ``6xxxxx`` and ``900xxx``
  are Shanghai (1); everything else (Shenzhen 0/3/2xxxxx, Beijing 4/8/92xxxx) is 0, which is
  exactly East Money's own ``f13`` split (0 = SZ and BJ, 1 = SH).
* **Names of ``"-"``** are kept verbatim (it is what the upstream shows); a missing or null
  name becomes ``"-"`` too. A name containing NUL is rejected (PostgreSQL text cannot store
  it, and it is never a real name).
* **HTML with HTTP 200** is :class:`InvalidResponse`, or :class:`Captcha` (a ban signal)
  when it is the slider-captcha page (:data:`CAPTCHA_MARKERS`); ``rc != 0`` with data is
  :class:`RcError`.
* **Empty body with HTTP 200** is :class:`InvalidResponse` (the HTTP exchange completed; the
  body is what is wrong), unlike an empty *reply*, which the client reports as
  :class:`~boardsync.errors.ConnectionFailed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest, Captcha, InvalidResponse, RcError
from ..models import KIND_FILTERS, Board, Member, is_board_code, is_stock_code

#: A ``data.total`` above this is absurd (all A-shares are ~5,500; boards < 1,000).
MAX_TOTAL = 100_000

_JSONP_RE = re.compile(r"^[A-Za-z_$][\w$.]*\s*\(")


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded ``clist`` page.

    ``total is None`` means ``data`` was null (unknown/deleted board, past the last page, or
    a soft ban); ``rows`` are the raw ``diff`` dicts in server order. ``rc`` is kept for logs.
    """

    total: int | None
    rows: tuple[dict[str, Any], ...]
    rc: int = 0


#: Words of East Money's slider-captcha page (``emcaptcha``, "安全验证", "拖动...滑块"): an HTML
#: page with one of them is a ban signal, any other HTML a garbled answer.
CAPTCHA_MARKERS = ("captcha", "安全验证", "滑块")


def _is_captcha(text: str) -> bool:
    head = text[:4000].lower()
    return any(marker in head for marker in CAPTCHA_MARKERS)


def _invalid(message: str) -> InvalidResponse:
    return InvalidResponse(message)


def _strip_jsonp(text: str) -> str:
    """``cb({...});`` -> ``{...}``: from the first ``(`` to the *last* ``)``.

    The last ``)``, not the first, because names may contain ``)``; only whitespace and one
    optional ``;`` may follow it.
    """
    match = _JSONP_RE.match(text)
    if match is None:
        return text
    end = text.rfind(")")
    if end < match.end():
        raise _invalid("JSONP callback without a closing parenthesis")
    tail = text[end + 1 :].strip()
    if tail not in ("", ";"):
        raise _invalid("unexpected text after the JSONP callback")
    return text[match.end() : end]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    """An integer in ``[0, MAX_TOTAL]``: what a row or member count can sanely be."""
    return _is_int(value) and 0 <= value <= MAX_TOTAL  # type: ignore[operator]


def parse_page(body: bytes) -> Page:
    """Decode one ``clist`` response body (plain JSON or JSONP) into a :class:`Page`.

    Args:
        body: the raw HTTP body. ``str`` is accepted too (tests, the simulator).

    Returns:
        ``Page(total=None, rows=())`` when ``data`` is null; otherwise the total and the rows,
        with ``diff`` given either as a list (``np=1``) or as an object keyed ``"0"``,
        ``"1"``, ... (``np=2``/no ``np``), which is ordered by the integer key.

    Raises:
        InvalidResponse: empty, non-UTF-8, HTML, truncated or non-JSON bodies; a non-object
            envelope; a missing ``data``; ``rc`` or ``total`` of the wrong type; a negative
            total or one above :data:`MAX_TOTAL`; ``diff`` or rows of the wrong shape.
    """
    if isinstance(body, str):
        text = body
    elif isinstance(body, bytes | bytearray | memoryview):
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _invalid(f"body is not UTF-8: {e.reason} at byte {e.start}") from e
    else:
        raise _invalid(f"body must be bytes, not {type(body).__name__}")
    text = text.strip()
    if not text:
        raise _invalid("empty body")
    if text[0] == "<":
        if _is_captcha(text):
            raise Captcha(f"captcha page instead of JSON: {text[:60]!r}")
        raise _invalid(f"HTML instead of JSON: {text[:60]!r}")
    text = _strip_jsonp(text).strip()
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _invalid(f"body is not JSON ({type(e).__name__}): {text[:60]!r}") from e
    if not isinstance(envelope, dict):
        raise _invalid(f"envelope is a {type(envelope).__name__}, not an object")
    rc = envelope.get("rc", 0)
    if not _is_int(rc):
        raise _invalid(f"rc is not an integer: {rc!r}"[:120])
    if "data" not in envelope:
        raise _invalid("envelope has no 'data'")
    data = envelope["data"]
    if data is None:
        return Page(total=None, rows=(), rc=rc)
    if rc != 0:
        raise RcError(f"rc={rc} with non-null data")
    if not isinstance(data, dict):
        raise _invalid(f"data is a {type(data).__name__}, not an object")
    total = data.get("total")
    if not _is_int(total):
        raise _invalid(f"data.total is not an integer: {total!r}"[:120])
    if not _is_count(total):
        raise _invalid(f"data.total out of range: {total}")
    return Page(total=total, rows=_parse_diff(data.get("diff")), rc=rc)


def _parse_diff(diff: object) -> tuple[dict[str, Any], ...]:
    """``diff`` as a list, or as ``{"0": row, "1": row, ...}`` ordered by int key; null = ()."""
    if diff is None:
        return ()
    if isinstance(diff, list):
        rows = diff
    elif isinstance(diff, dict):
        keyed: list[tuple[int, object]] = []
        for key, row in diff.items():
            if not (key.isascii() and key.isdigit()) or len(key) > 9:
                raise _invalid(f"data.diff object key is not an index: {key[:20]!r}")
            keyed.append((int(key), row))
        keyed.sort(key=lambda item: item[0])
        rows = [row for _, row in keyed]
    else:
        raise _invalid(f"data.diff is a {type(diff).__name__}, not a list or object")
    for row in rows:
        if not isinstance(row, dict):
            raise _invalid(f"data.diff row is a {type(row).__name__}, not an object")
    return tuple(rows)


def _parse_name(row: Mapping[str, Any]) -> str:
    """``f14``: kept verbatim (``"-"`` included); missing/null -> ``"-"``; NUL rejected."""
    name = row.get("f14")
    if name is None:
        return "-"
    if not isinstance(name, str):
        raise _invalid(f"name f14 is not a string: {name!r}"[:120])
    name = name.strip()
    if "\x00" in name:
        raise _invalid("name f14 contains NUL")
    return name or "-"


def infer_market(code: str) -> int:
    """East Money market id from a 6-digit code: 1 (Shanghai) for 6xxxxx/900xxx, else 0.

    0 covers Shenzhen and Beijing, as in the upstream's own ``f13``.
    """
    return 1 if code.startswith("6") or code.startswith("900") else 0


def _parse_market(value: object, code: str) -> int:
    """``f13``: an int 0..999 (or its digit string); ``"-"``/missing -> inferred from code."""
    if value is None or value == "-" or value == "":
        return infer_market(code)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
        return value
    raise _invalid(f"market f13 is not a market id: {value!r}"[:120])


def parse_member_row(row: object) -> Member:
    """One constituent row -> :class:`Member`, by key (``f12`` code, ``f14`` name, ``f13``).

    Raises:
        InvalidResponse: the row is not an object, the code is not 6 digits (an integer code
            is rejected: its leading zeros are already lost), or the name/market is malformed.
    """
    if not isinstance(row, Mapping):
        raise _invalid(f"member row is a {type(row).__name__}, not an object")
    code = row.get("f12")
    if not is_stock_code(code):
        raise _invalid(f"member code f12 is not a 6-digit string: {code!r}"[:120])
    assert isinstance(code, str)
    return Member(code=code, name=_parse_name(row), market=_parse_market(row.get("f13"), code))


def parse_board_row(row: object, kind: str) -> Board:
    """One board-list row -> :class:`Board` of ``kind``, by key (``f12`` code, ``f14`` name).

    Raises:
        BadRequest: ``kind`` is not one of :data:`~boardsync.models.KIND_FILTERS`.
        InvalidResponse: the row is not an object, the code is not ``BK`` + 4 digits, or the
            name is malformed.
    """
    if kind not in KIND_FILTERS:
        raise BadRequest(f"unknown board kind {kind!r}")
    if not isinstance(row, Mapping):
        raise _invalid(f"board row is a {type(row).__name__}, not an object")
    code = row.get("f12")
    if not is_board_code(code):
        raise _invalid(f"board code f12 is not BK + 4 digits: {code!r}"[:120])
    assert isinstance(code, str)
    return Board(code=code, name=_parse_name(row), kind=kind, size_hint=_size_hint(row))


def _size_hint(row: Mapping[str, object]) -> int | None:
    """``f104 + f105`` (rising + falling members) when both are sane counts, else ``None``.

    Only a scheduling hint, so a missing or odd value is ignored rather than rejected.
    """
    up, down = row.get("f104"), row.get("f105")
    if _is_count(up) and _is_count(down):
        return up + down  # type: ignore[operator]
    return None
