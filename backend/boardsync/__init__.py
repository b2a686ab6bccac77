"""boardsync: keep a complete, correct, auditable copy of East Money's sector boards."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
