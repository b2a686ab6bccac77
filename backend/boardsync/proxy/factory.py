"""From settings to a ready :class:`~boardsync.proxy.manager.ProxyManager`.

Why apart from the manager: choosing and configuring the source is a question about the
settings, and keeping it here means the manager, the sources and their tests never import
:mod:`boardsync.config`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..clock import SYSTEM, Clock
from .bucket import LeakyBucket
from .manager import ProxyManager
from .sources import (
    DirectSource,
    ExtractionApiSource,
    ProxySource,
    StaticListSource,
    TunnelSource,
)
from .spacing import CallSpacing

if TYPE_CHECKING:
    from ..config import Settings


def build_source(settings: Settings, *, clock: Clock = SYSTEM) -> ProxySource:
    """The configured source: ``proxy`` = static, api, tunnel, or anything else = direct.

    Raises:
        ConfigError: the source's own settings are unusable (unreadable list, bad URL).
    """
    if settings.proxy == "static":
        return StaticListSource(settings.proxy_file)
    if settings.proxy == "api":
        return ExtractionApiSource(
            settings.proxy_api_url,
            key=settings.proxy_api_key,
            key_param=settings.proxy_api_key_param,
            num_param=settings.proxy_api_num_param,
            fmt=settings.proxy_api_format,
            clock=clock,
        )
    if settings.proxy == "tunnel":
        return TunnelSource(settings.proxy_tunnel_url)
    return DirectSource()


def build_proxy_manager(settings: Settings, *, clock: Clock = SYSTEM,
                        rng: random.Random | None = None, workers: int) -> ProxyManager:
    """The ProxyManager for the configured source, its bucket and its clock.

    Args:
        settings: the run's settings (source, ``max_ips``, TTL, extraction pacing, batch).
        clock: one clock for the bucket, the TTLs and the provider's expiry times.
        rng: randomness for the TTL jitter (``None`` = a fresh unseeded one).
        workers: the run's worker count (:func:`boardsync.sizing.resolve_workers`); with
            ``extract_batch > 1`` the first extraction asks for ``workers + 1`` IPs (at most
            the batch), so one call serves the board-list fetch and every worker.
    """
    return ProxyManager(
        build_source(settings, clock=clock),
        max_ips=settings.max_ips,
        ttl_s=settings.ip_ttl,
        ttl_jitter=settings.ip_ttl_jitter,
        bucket=LeakyBucket(settings.extract_interval, clock=clock),
        clock=clock,
        rng=rng,
        # One call for the board list and every worker, then replacements as needed.
        batch=settings.extract_batch,
        demand_sized=settings.extract_batch > 1,
        prefetch=min(settings.extract_batch, workers + 1),
        spacing=CallSpacing(settings.extract_interval, settings.extract_probe),
    )
