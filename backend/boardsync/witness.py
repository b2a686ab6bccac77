"""The board directory against the lists, and whole levels replaced (pure).

Why pure: what a run concludes from its two witnesses (which boards exist, which are gone,
whether a whole level was replaced) is the part an auditor has to trust, so it is tested as
data, with no run around it. The run (:mod:`boardsync.lists`) applies the conclusions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

#: A level counts as revamped when more than this share of its boards ended in one run and
#: new boards started on it. Ordinary churn ends a few boards of a kind a day; the 2026
#: revamp replaced every code of the scheme (EASTMONEY_API.md section 13), so any majority
#: tells them apart. It only names what happened in the summary; it decides no write.
REVAMP_SHARE = 0.5


class Witnessed(Protocol):
    """What the comparison needs of a directory entry (:class:`boardsync.upstream.Entry`)."""

    @property
    def kind(self) -> str: ...

    @property
    def level(self) -> int | None: ...


def compare(entries: Mapping[str, Witnessed] | None, listed: Mapping[str, Iterable[str]],
            reason: str = "") -> dict[str, Any]:
    """The run record's directory comparison: per listed kind, the boards each witness has.

    Args:
        entries: the directory by code; None when it could not be read (``reason`` says why).
        listed: the codes of each kind's list that came in.

    Example: ``{"read": True, "boards": 1032, "kinds": {"industry": {"directory": 497,
    "listed": 496, "only_directory": ["BK1362"], "only_listed": []}, ...}}``.
    """
    if entries is None:
        return {"read": False, "reason": reason}
    kinds: dict[str, Any] = {}
    for kind, codes in sorted(listed.items()):
        in_list = set(codes)
        in_dir = {c for c, e in entries.items() if e.kind == kind}
        kinds[kind] = {"directory": len(in_dir), "listed": len(in_list),
                       "only_directory": sorted(in_dir - in_list),
                       "only_listed": sorted(in_list - in_dir)}
    return {"read": True, "boards": len(entries), "kinds": kinds}


def revamps(before: Mapping[str, tuple[str, int | None]], ended: Iterable[str],
            started: Mapping[str, tuple[str, int | None]]) -> dict[str, dict[str, list[str]]]:
    """The levels whose codes were replaced in one run, named for the summary.

    Args:
        before: ``{code: (kind, level)}`` of the boards live before the run.
        ended: codes that ended in the run (marked deleted).
        started: ``{code: (kind, level)}`` of the boards new in the run.

    Returns ``{"industry level 3": {"ended": [...], "started": [...]}}`` for each
    (kind, level) of which more than :data:`REVAMP_SHARE` of the boards ended while new ones
    started; a kind without levels is named by its kind alone.
    """
    live = Counter(before.values())
    gone: dict[tuple[str, int | None], list[str]] = {}
    for code in ended:
        if code in before:
            gone.setdefault(before[code], []).append(code)
    new: dict[tuple[str, int | None], list[str]] = {}
    for code, key in started.items():
        new.setdefault(key, []).append(code)
    out: dict[str, dict[str, list[str]]] = {}
    for key, codes in sorted(gone.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if len(codes) > live[key] * REVAMP_SHARE and new.get(key):
            kind, level = key
            name = f"{kind} level {level}" if level is not None else kind
            out[name] = {"ended": sorted(codes), "started": sorted(new[key])}
    return out
