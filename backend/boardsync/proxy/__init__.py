"""Proxy IPs: where they come from, how fast we may ask for them, and who holds which.

The upstream bans an identity that asks too fast, so workers fetch through proxy IPs bought
from a provider whose *extraction API* is itself throttled (a minimum interval between calls)
and rationed (a daily quota; each IP lives about a minute). One concept per module:

- :mod:`.values` - :class:`Proxy`, :class:`ProxyEndpoint`, :class:`ProxyStats`;
- :mod:`.bucket` - :class:`LeakyBucket`, the spacing of extraction calls across threads;
- :mod:`.extraction` - the pure parser of extraction replies and the error-body classifier;
- :mod:`.sources` - :class:`ProxySource` and the direct, static-list, extraction-API and
  tunnel sources;
- :mod:`.manager` - :class:`ProxyManager`, which hands each worker its own IP;
- :mod:`.factory` - :func:`build_proxy_manager`, from settings to a manager.

The public names are re-exported here. Not carried over from the single ``proxy.py``:
``redact_url`` (now :func:`boardsync.redact.strip_url`), ``workers_auto`` (now in
:mod:`boardsync.sizing`, without ``source=``), the ``now=``/``sleep=``/``wall=`` arguments (one
:class:`~boardsync.clock.Clock` instead) and the sources' ``rotates_itself``/``unlimited``/
``size`` (now ``shared()`` and ``supply()``).
"""

from __future__ import annotations

from .bucket import LeakyBucket
from .extraction import PROVIDER_TZ, classify_error_body, parse_extraction_body
from .factory import build_proxy_manager, build_source
from .manager import ProxyManager
from .sources import (
    DirectSource,
    ExtractionApiSource,
    ProxySource,
    StaticListSource,
    TunnelSource,
)
from .ttl import jittered_ttl
from .values import Proxy, ProxyEndpoint, ProxyStats

__all__ = [
    "PROVIDER_TZ",
    "DirectSource",
    "ExtractionApiSource",
    "LeakyBucket",
    "Proxy",
    "ProxyEndpoint",
    "ProxyManager",
    "ProxySource",
    "ProxyStats",
    "StaticListSource",
    "TunnelSource",
    "build_proxy_manager",
    "build_source",
    "classify_error_body",
    "jittered_ttl",
    "parse_extraction_body",
]
