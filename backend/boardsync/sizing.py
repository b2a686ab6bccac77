"""How many worker threads a run uses: the one rule, for the sync, the CLI and the docs.

Why one module: the count depends on the proxy source (one identity for direct, a rotating
tunnel or a fixed list, or IPs bought from a throttled provider) and, for bought IPs, on the
provider's rate and the IP lifetime. Written once here, a run and ``boardsync sync
--explain-workers`` cannot disagree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .config import Settings


class Learned(Protocol):
    """What sizing reads of the learned allowance (:class:`boardsync.learner.Learner`)."""

    def current(self) -> tuple[float, float, int]: ...

    def per_life(self, life_s: float) -> float: ...


#: Most worker threads a learning crew over bought IPs starts (:func:`workers_learned`):
#: threads are cheap, an idle one takes no IP (the crew admits one while the work waiting
#: exceeds what the IPs held can serve), so this caps only the IPs in use at once.
MAX_WORKERS_LEARNED = 64

#: Workers for ``proxy = direct``: every request leaves from this host's one IP, so each
#: extra worker adds to the request rate that one identity shows the upstream.
DEFAULT_WORKERS_DIRECT = 2

#: Workers when there is no extraction rate to size by (a tunnel, a static list, or no
#: finite rate and IP lifetime): a small fixed pool keeps the request rate per exit IP low.
DEFAULT_WORKERS_UNPACED = 4

#: Extraction calls per second assumed when ``extract_interval`` is 0 (no spacing asked).
DEFAULT_QPS_UNSPACED = 10.0

#: Dividing the IPs that can be in flight by this leaves room for dead-on-arrival IPs,
#: evictions and throttled calls.
DEFAULT_SAFETY = 2.0

#: Most workers the automatic count ever picks.
MAX_WORKERS_AUTO = 32


def workers_auto(provider_qps: float, ip_ttl_s: float, safety: float = DEFAULT_SAFETY,
                 max_workers: int = MAX_WORKERS_AUTO) -> tuple[int, str]:
    """A safe worker count from the provider's rate and the IP lifetime (Little's law).

    Each worker holds one IP for its TTL, and IPs arrive at most ``provider_qps`` per second,
    so at most ``L = λ × W = qps × ttl`` IPs can be in use at once; dividing by ``safety``
    leaves room for dead-on-arrival IPs, evictions and throttled calls. Example: 0.5 calls/s
    × 45 s = 22.5 IPs in flight; / 2.0 -> 11 workers.

    Args:
        provider_qps: extraction calls per second the provider allows (``0``, negative or
            infinite = no rate to size by: :data:`DEFAULT_WORKERS_UNPACED`).
        ip_ttl_s: seconds a worker keeps an IP (``0`` or less: as for no rate).
        safety: divisor, at least 1.
        max_workers: the cap.

    Returns:
        ``(workers, explanation)`` with a one-paragraph explanation of the arithmetic.
    """
    if not provider_qps > 0 or math.isinf(provider_qps) or not ip_ttl_s > 0:
        n = min(DEFAULT_WORKERS_UNPACED, max_workers)
        return n, (f"{n} workers: no finite extraction rate and IP lifetime to size by "
                   f"(qps={provider_qps}, ttl={ip_ttl_s} s); using a small fixed pool.")
    safety = max(safety, 1.0)
    in_flight = provider_qps * ip_ttl_s
    raw = in_flight / safety
    n = max(1, min(max_workers, math.floor(raw)))
    capped = " (capped)" if math.floor(raw) > max_workers else ""
    floored = " (at least 1)" if math.floor(raw) < 1 else ""
    return n, (
        f"{n} workers{capped}{floored}: each worker keeps one proxy IP for about "
        f"{ip_ttl_s:g} s and the provider hands out at most {provider_qps:g} IPs per second, "
        f"so by Little's law (L = λ × W) at most {provider_qps:g} × {ip_ttl_s:g} = "
        f"{in_flight:g} IPs can be in use at once; dividing by a safety factor of "
        f"{safety:g} (dead-on-arrival IPs, evictions, throttled calls) gives "
        f"{raw:.2f}, rounded down to {math.floor(raw)}, within [1, {max_workers}]."
    )


def workers_learned(settings: Settings, learned: Learned) -> tuple[int, str]:
    """Workers from the learned allowance and the provider's supply (pacing ``learn``).

    One identity shared by every worker (direct, tunnel): twice the concurrency learned (at
    least 2, at most :data:`DEFAULT_WORKERS_UNPACED` x 2) -- the extra workers wait, and let a
    concurrency probe be tried. Bought IPs: the count is not fixed here but live
    (:meth:`boardsync.crew.Crew.admit`): up to :data:`MAX_WORKERS_LEARNED` threads (at most
    ``max_ips``) start, and an idle one takes an IP only while the pages waiting exceed
    what the IPs held can still serve (IPs needed = work / per-IP allowance, re-read as the
    allowance, the lists and the IPs' lifetime are learned). Example: 1.0/s, burst 5, IPs
    living 60 s -> 65 requests per IP; 900 pages waiting -> 14 IPs.
    """
    rate, burst, conc = learned.current()
    if settings.proxy in ("direct", "tunnel"):
        n = min(2 * DEFAULT_WORKERS_UNPACED, max(2, 2 * conc))
        return n, (f"{n} workers: one identity ({settings.proxy}) shared by all; the learned "
                   f"allowance lets {conc} request(s) be in flight, so {n} workers keep it "
                   f"busy and the others wait (they are never sent beyond it)")
    life = settings.ip_life
    per_ip = max(1.0, learned.per_life(life))
    n = max(1, min(MAX_WORKERS_LEARNED, settings.max_ips))
    return n, (
        f"up to {n} workers, sized live: the learned allowance admits {rate:.3g} req/s with a "
        f"burst of {burst:g} per IP, so one IP serves about {burst:g} + {rate:.3g} x "
        f"{life:g} s = {per_ip:.0f} requests in the {life:g} s an IP is taken to live "
        f"(ip_life, until the provider states a lifetime or IPs are seen to die); an idle "
        f"worker takes an IP only while the pages waiting exceed what the IPs held can still "
        f"serve, so IPs needed = pages / {per_ip:.0f}. Each extraction call asks for the "
        f"IPs awaited (at most {settings.extract_batch}), "
        + (f"{settings.extract_interval:g} s apart to start with; closer while workers "
           f"wait for IPs a call did not cover, and at once farther after a 'too fast' "
           f"refusal (extract_probe)." if settings.extract_probe else
           f"never closer than {settings.extract_interval:g} s apart."))


def resolve_workers(settings: Settings, learned: Learned | None = None) -> tuple[int, str]:
    """The worker count and why: configured, a fixed pool, or Little's law for bought IPs.

    ``workers > 0`` is used as given. ``workers = 0`` (auto): :data:`DEFAULT_WORKERS_DIRECT`
    for direct, :data:`DEFAULT_WORKERS_UNPACED` for a tunnel or a static list (no extraction
    rate to size by), else :func:`workers_auto` with ``1 / extract_interval`` calls per second
    (:data:`DEFAULT_QPS_UNSPACED` when the interval is 0) and ``ip_ttl``.

    Returns:
        ``(workers, explanation)``; the explanation is one line or one paragraph.
    """
    if settings.workers > 0:
        return settings.workers, f"{settings.workers} workers (configured)"
    if learned is not None and settings.proxy != "static":
        return workers_learned(settings, learned)
    if settings.proxy in ("direct", "tunnel", "static"):
        n = DEFAULT_WORKERS_DIRECT if settings.proxy == "direct" else DEFAULT_WORKERS_UNPACED
        return n, (
            f"proxy = {settings.proxy}: no extraction rate to size by; using a small fixed pool"
        )
    interval = settings.extract_interval
    qps = 1.0 / interval if interval > 0 else DEFAULT_QPS_UNSPACED
    return workers_auto(qps, settings.ip_ttl)


#: Above this many configured workers the count is a typo or a misunderstanding: each worker
#: is a thread holding its own IP, and no provider plan or upstream limit seen feeds more.
MAX_WORKERS_PLAUSIBLE = 64


def implausible_workers(settings: Settings) -> str | None:
    """Why the configured worker count is implausible (a warning, not an error), or None.

    More than :data:`MAX_WORKERS_PLAUSIBLE`, or more workers than the run may extract IPs
    (``max_ips``) when IPs are bought one by one: the extra workers can only wait.
    """
    n = settings.workers
    if n > MAX_WORKERS_PLAUSIBLE:
        return (f"--workers {n} is implausible: each worker is a thread holding its own IP; "
                f"more than {MAX_WORKERS_PLAUSIBLE} only adds threads waiting for IPs and "
                "requests the upstream bans for (try --workers auto --explain-workers)")
    if settings.proxy == "api" and 0 < settings.max_ips < n:
        return (f"--workers {n} is more than --max-ips {settings.max_ips}: at most "
                f"{settings.max_ips} workers can ever hold an IP")
    return None
