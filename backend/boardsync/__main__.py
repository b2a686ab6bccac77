"""``python -m boardsync`` is the same as the ``boardsync`` command."""

from __future__ import annotations

from .cli import main

main()
