"""The simulator's 2026 market (``today``) and its board directory, against real sockets where
the HTTP layer is involved; and a pin that keeps the calibrated scenarios' markets unchanged."""

from __future__ import annotations

import hashlib

import pytest

from boardsync.sim import load_scenario
from boardsync.sim.market import Market

#: sha256 of ``_market_digest("reference", 7)``, computed at commit 5c38a08 (before the
#: ``today`` market existed). A change here means the calibrated markets drifted: every
#: figure in ``reference.toml`` would have to be measured again.
REFERENCE_DIGEST = "4fd30a01b4960de2661e57e48dc2556bbabfd344a54dcc33aeb8b061df5bee23"


def _market_digest(name: str, seed: int, days: int = 2) -> str:
    """Everything a scenario's market draws: stocks, quotes, boards, members and ``days`` of
    churn (the reports and the markets after them)."""
    m = Market(load_scenario(name), seed)
    h = hashlib.sha256()

    def feed() -> None:
        for code in sorted(m.stocks):
            s = m.stocks[code]
            q = s.quote
            h.update(repr((code, s.name, s.market, s.shares, q.prev_close, q.base_pct,
                           q.amp_pct, q.period_s, q.phase, q.limit_pct)).encode())
        for code in sorted(m.boards):
            b = m.boards[code]
            q = b.quote
            h.update(repr((code, b.name, b.kind, b.up, b.down, b.leader, b.laggard,
                           q.prev_close, q.base_pct, q.amp_pct, q.period_s, q.phase,
                           sorted(m.members[code]))).encode())

    feed()
    for _ in range(days):
        r = m.advance_day()
        h.update(repr(sorted(
            (k, sorted((b, sorted(v)) for b, v in r[k].items()) if isinstance(r[k], dict)
             else r[k]) for k in r)).encode())
        feed()
    return h.hexdigest()


@pytest.mark.parametrize("name", ["reference", "clean", "hostile"])
def test_calibrated_markets_unchanged(name: str) -> None:
    # clean and hostile share reference's market knobs, so their markets are the same one.
    assert _market_digest(name, 7) == REFERENCE_DIGEST
