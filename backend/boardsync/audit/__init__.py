"""Audits: answer "what was stored, when, by which run, and do the state file and database agree".

The questions an auditor asks (issue 4) and where each answer comes from:

* what did board X contain on date D -> :func:`member_rows` (history validity intervals);
* who joined or left, when, in which run -> :func:`change_rows`;
* which boards does/did a stock belong to -> :func:`stock_rows`;
* which runs happened, with what parameters and outcome -> :func:`run_rows`, :func:`run_detail`;
* what does the state file say (by kind and status, stale, failed, last run) ->
  :func:`state_overview`; one board's audit trail -> :func:`board_trail`;
* do the state file and the database agree -> :func:`verify` (pure) / :func:`verify_store`.

Everything here returns plain rows and dicts with stable English keys; rendering is
:mod:`boardsync.report`, printing and exit codes are the CLI's. Bad input (a malformed board
or stock code, an unparseable date, a missing state file or SQLite file) raises
:class:`ConfigError` (a ``ValueError``; the CLI maps it to exit code 2) *before* any query,
so a typo never reads as "no rows". Dates: see :mod:`boardsync.audit.inputs`.

Modules: :mod:`~boardsync.audit.inputs` (dates, codes, opening the sources),
:mod:`~boardsync.audit.queries` (history and run queries), :mod:`~boardsync.audit.overview`
(the state file at a glance), :mod:`~boardsync.audit.trail` (one board's trail) and
:mod:`~boardsync.audit.verification` (``state verify``). Import from here.
"""

from __future__ import annotations

from .inputs import (
    as_of_instant,
    check_board_code,
    check_stock_code,
    load_state,
    open_store,
    parse_time,
)
from .overview import format_overview, state_overview
from .queries import (
    BOARD_COLUMNS,
    CHANGE_COLUMNS,
    LATEST,
    MEMBER_COLUMNS,
    RUN_COLUMNS,
    STOCK_COLUMNS,
    board_rows,
    change_rows,
    member_note,
    member_rows,
    run_detail,
    run_rows,
    stock_rows,
)
from .trail import board_digests_for, board_trail, format_trail
from .verification import PROBLEMS, Problem, VerifyResult, verify, verify_store

__all__ = [
    "BOARD_COLUMNS", "CHANGE_COLUMNS", "LATEST", "MEMBER_COLUMNS", "PROBLEMS", "RUN_COLUMNS",
    "STOCK_COLUMNS", "Problem", "VerifyResult", "as_of_instant", "board_digests_for",
    "board_rows", "board_trail", "change_rows", "check_board_code", "check_stock_code",
    "format_overview", "format_trail", "load_state", "member_note", "member_rows", "open_store",
    "parse_time", "run_detail", "run_rows", "state_overview", "stock_rows", "verify",
    "verify_store",
]
