"""How long an IP is kept: our TTL, capped by the provider's stated lifetime, jittered.

Why apart from the manager: a pure function of its arguments (the randomness passed in),
tested as arithmetic without a manager or a clock.
"""

from __future__ import annotations

import random


def jittered_ttl(ttl_s: float, jitter: float, provider_ttl: float | None,
                 rng: random.Random) -> float:
    """How long we keep an IP: ``min(provider_ttl, ttl_s) × U(1-jitter, 1+jitter)``.

    Jitter spreads rotations so workers that started together do not all extract at once
    (they would queue on the bucket). The result never exceeds ``provider_ttl``: upward jitter
    past the provider's stated lifetime would only keep a dead IP.

    Example: ``ttl_s=45, jitter=0.15`` -> somewhere in [38.25, 51.75]; with
    ``provider_ttl=40`` -> in [34, 40].

    Args:
        ttl_s: our configured lifetime in seconds.
        jitter: fraction in [0, 1); 0 = exactly ``ttl_s``.
        provider_ttl: seconds left according to the provider (``None`` = not stated).
        rng: source of randomness (seeded in tests).
    """
    base = ttl_s if provider_ttl is None else min(ttl_s, provider_ttl)
    j = min(max(jitter, 0.0), 0.999)
    ttl = base * rng.uniform(1.0 - j, 1.0 + j)
    if provider_ttl is not None:
        ttl = min(ttl, provider_ttl)
    return max(0.0, ttl)
