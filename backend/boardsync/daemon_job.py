"""What the daemon runs at each tick: one fresh sync with the current settings.

Kept apart from :class:`~boardsync.daemon.Daemon`, which only needs a callable returning
something with a ``status``: the scheduler is then tested with fake runs and never imports
the sync machinery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .clock import SYSTEM, Clock
from .health import Telemetry
from .outcomes import Summary
from .progress import format_summary, summary_record
from .run import Run
from .settings import Settings

logger = logging.getLogger(__name__)


class SyncJob:
    """The real ``run_once``: a fresh :class:`~boardsync.run.Run` per run, current settings.

    Args:
        load: builds validated settings (re-run on reload; raises ``ConfigError``).
        stop, force: the daemon's events, so a stop request reaches the running sync.
        telemetry: the sync's progress object and the latency histogram's home.
        adapt: applied to the settings of each run (the simulator points them at itself).
        clock: handed to each run.
    """

    def __init__(self, load: Callable[[], Settings], *, stop: threading.Event,
                 force: threading.Event, telemetry: Telemetry,
                 adapt: Callable[[Settings], Settings] | None = None,
                 clock: Clock = SYSTEM) -> None:
        self.load = load
        self.clock = clock
        self.stop = stop
        self.force = force
        self.telemetry = telemetry
        self.adapt = adapt or (lambda s: s)
        self.settings = load()

    def reload(self) -> None:
        """Re-read the configuration; on error the current settings stay (the caller logs)."""
        new = self.load()
        self.adapt(new)  # fail here, not at the next run, if the adapted form is invalid
        changed = {k: v for k, v in new.redacted().items() if self.settings.redacted()[k] != v}
        self.settings = new
        logger.info("Daemon: reloaded settings, changed: %s", changed or "nothing")

    def shutdown_timeout(self) -> float:
        return self.adapt(self.settings).shutdown_timeout

    def __call__(self) -> Summary:
        run = Run(self.adapt(self.settings), clock=self.clock, stop=self.stop,
                  force_stop=self.force, progress=self.telemetry)
        try:
            summary = run.run()
        finally:
            self.telemetry.observe_latencies(run.metrics.latencies)
        logger.info("Daemon: run summary\n%s", format_summary(summary),
                    extra={"summary": summary_record(summary)})
        return summary
