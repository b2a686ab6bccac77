"""A worker's current proxy IP, swapped when it expires or is evicted.

Why apart from the worker: the slot is the worker's one view of the proxy manager (hold,
evict, give back), and the crew reads it (is the IP still live?) without knowing workers.
"""

from __future__ import annotations

import threading

from .manager import ProxyManager
from .values import Proxy


class ProxySlot:
    """A worker's current IP, swapped when it expires or is evicted.

    The client reads ``key``/``url`` at each request, so a long board keeps paging on a fresh
    IP when the old one's TTL runs out mid-board instead of failing and starting over.
    """

    def __init__(self, proxies: ProxyManager) -> None:
        self._proxies = proxies
        self.current: Proxy | None = None

    @property
    def key(self) -> str:
        return self.current.key if self.current else "none"

    @property
    def url(self) -> str | None:
        return self.current.url if self.current else None

    @property
    def live(self) -> bool:
        """True while the IP held has not expired (read by other threads too: one attribute
        read, at worst a step stale)."""
        current = self.current
        return current is not None and self._proxies.is_alive(current)

    def ensure(self, stop: threading.Event | None = None) -> Proxy:
        """Make sure a live proxy is held; may block on the extraction bucket or raise quota."""
        if self.current is not None and not self.live:
            self._proxies.release(self.current)
            self.current = None
        if self.current is None:
            self.current = self._proxies.acquire(stop_event=stop)
        return self.current

    def fail(self, reason: str) -> None:
        """Evict the current IP (it will never be handed out again)."""
        if self.current is not None:
            self._proxies.mark_failed(self.current, reason)
            self.current = None

    def drop(self) -> None:
        """Give the IP back at the end (counts as expired/released, never reused)."""
        if self.current is not None:
            self._proxies.release(self.current)
            self.current = None
