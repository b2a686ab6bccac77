"""boardsync: keep a complete, correct, auditable copy of East Money's sector boards.

The Python API (:mod:`boardsync.api`)::

    import boardsync
    with boardsync.open("sqlite:///data/demo.db") as db:
        db.members("BK0475")

Its names are imported on first use (``__getattr__``), so ``import boardsync`` stays cheap
for the command line and never loads SQLAlchemy before it is needed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .api import BoardInfo, Boardsync, Change, Member, Rows, RunInfo, StockBoard

__all__ = ["BoardInfo", "Boardsync", "Change", "Member", "Rows", "RunInfo", "StockBoard",
           "__version__", "open"]

_API_NAMES = frozenset(__all__) - {"__version__", "open"}


def open(db_url: str | None = None) -> Boardsync:  # noqa: A001 - boardsync.open reads best
    """Open a boardsync database for reading (see :func:`boardsync.api.open_db`)."""
    from .api import open_db

    return open_db(db_url)


def __getattr__(name: str) -> Any:
    """The API's row classes, imported from :mod:`boardsync.api` on first use."""
    if name in _API_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'boardsync' has no attribute {name!r}")
