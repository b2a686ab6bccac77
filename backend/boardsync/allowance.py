"""What the upstream allows one identity, as learned: the value, its JSON and its decay.

Why apart from the learner (:mod:`boardsync.learner`): this is what is stored in the
database and read back by the next run and by ``sync --explain``, so it is plain data with
pure functions, readable without a learner running.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

#: A learner with no stored allowance starts at one request per 2 s (the reference script's
#: slowest delay, the pace its users ran unbanned), no burst, one in flight; a run starts at
#: one per ``req_delay_max`` (:func:`boardsync.pacing.learner_for`), which is scaled with the
#: simulator's time like every other duration.
START_RATE = 0.5
#: Seconds of age in which a stored value loses half its excess over the start (a quota day).
HALF_LIFE_S = 86400.0


@dataclass(frozen=True)
class Allowance:
    """One identity's allowance: proven values, refuted ones (0 = none), ``learned_at`` the
    wall-clock epoch of the last change (0 = never learned)."""

    rate: float = START_RATE
    burst: int = 1
    concurrency: int = 1
    windows: tuple[tuple[int, float], ...] = ()
    rate_refuted: float = 0.0
    burst_refuted: int = 0
    #: the burst is proven as far as asking request after request can show, and probed no
    #: more; unlike ``burst_refuted`` no ban bounds it, so a larger one may still hide
    burst_closed: bool = False
    concurrency_refuted: int = 0
    bans: int = 0
    learned_at: float = 0.0
    #: a faster rate proven for identities up to ``young_span`` s after their first
    #: request: a prober's history that long unbanned bounds the upstream's bucket on
    #: every interval so long, whatever burst may hide a lower ``rate``
    young_rate: float = 0.0
    young_span: float = 0.0

    def rate_at(self, age_s: float) -> float:
        """The proven rate for an identity ``age_s`` seconds after its first request."""
        return self.young_rate if self.young_rate > self.rate and age_s <= self.young_span \
            else self.rate

    def young_within(self, age_s: float) -> float:
        """Seconds of an identity's first ``age_s`` paced at the young rate (0: none faster)."""
        return min(age_s, self.young_span) if self.young_rate > self.rate else 0.0

    def served_between(self, start_s: float, end_s: float) -> float:
        """Requests the rates allow one identity between two ages (its burst not counted).
        Example: 1/s young to 30 s, else 0.5/s; ages 20 to 40 -> 10 + 5 = 15."""
        young = max(0.0, self.young_within(end_s) - self.young_within(start_s))
        return self.young_rate * young + self.rate * max(0.0, end_s - start_s - young)

    def per_life(self, life_s: float) -> float:
        """Requests one identity may send in ``life_s``: ``burst + rate * life`` (the rate for
        its age), or a window's ``N * ceil(life / W)`` when smaller. Example: burst 5, 1/s,
        45 s -> 50."""
        bounds = [self.burst + self.served_between(0.0, life_s)]
        bounds += [n * max(1, math.ceil(life_s / w)) for n, w in self.windows]
        return min(bounds)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Allowance:
        values = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        values["windows"] = tuple((int(n), float(w)) for n, w in values.get("windows", ()))
        return cls(**values)


def decayed(a: Allowance, age_s: float, half_life_s: float = HALF_LIFE_S,
            start: Allowance | None = None) -> Allowance:
    """``a`` trusted less with age: the proven excess over ``start`` halves per half-life,
    and refuted values older than a half-life are forgotten (the limit may have been raised).

    Example: rate 2.0 learned a day ago (start 0.5): 0.5 + 1.5 / 2 = 1.25.
    """
    if age_s <= 0:
        return a
    f = 0.5 ** (age_s / half_life_s)
    start = start or Allowance()
    keep = age_s < half_life_s
    return dataclasses.replace(
        a, rate=start.rate + (a.rate - start.rate) * f,
        young_rate=start.rate + (a.young_rate - start.rate) * f if a.young_rate else 0.0,
        burst=max(1, math.floor(1 + (a.burst - 1) * f)),
        concurrency=max(1, math.floor(1 + (a.concurrency - 1) * f)),
        windows=a.windows if keep else (),
        rate_refuted=a.rate_refuted if keep else 0.0,
        burst_refuted=a.burst_refuted if keep else 0,
        burst_closed=a.burst_closed and keep,
        concurrency_refuted=a.concurrency_refuted if keep else 0)
