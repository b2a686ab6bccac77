"""The one settings object: typed, frozen, validated, and secret-free when shown.

:class:`Settings` is what every component receives; :func:`boardsync.config.load_settings`
builds it from the layers. :meth:`Settings.validate` checks values against each other (min
delay <= max delay, a proxy mode has what it needs, ...) and raises a :class:`ConfigError`
naming the key. Secrets (the provider key, proxy passwords, the database password) are
redacted in ``repr`` and in :meth:`Settings.redacted`, which is what goes into logs, the
state file and run records.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .defaults import FIELDS
from .errors import ConfigError
from .models import KINDS, is_board_code
from .redact import REDACTED, mask_db_url, mask_url

#: Integer and float keys with their minimum value (and why it is that minimum, if not obvious).
_MINIMUMS: tuple[tuple[str, float, str], ...] = (
    ("workers", 0, "0 means auto"),
    ("max_retry", 0, ""),
    ("page_retries", 1, ""),
    ("breaker_ips", 0, "0 disables the breaker"),
    ("max_ips", 1, ""),
    ("extract_batch", 1, ""),
    ("pacing_burst", 1, ""),
    ("write_batch", 1, ""),
    ("db_retries", 1, ""),
    ("page_size", 1, ""),
    *((key, 0, "") for key in ("req_delay_min", "req_delay_max", "max_age",
                                "extract_interval", "stagger", "shutdown_timeout",
                                "log_interval", "pacing_floor", "breaker_cooldown",
                                "ip_thrift", "upstream_cooldown")),
)
#: Durations that must be strictly positive (a zero TTL or timeout cannot work).
_POSITIVE = ("ip_ttl", "ip_life", "connect_timeout", "read_timeout")
#: String keys with a fixed set of values.
CHOICES: dict[str, tuple[str, ...]] = {
    "pacing": ("learn", "fixed", "adaptive"),
    "board_order": ("largest", "listed"),
    "progress": ("auto", "bar", "log", "none"),
    "proxy": ("direct", "static", "api", "tunnel"),
    "proxy_api_format": ("txt", "json"),
    "transport": ("auto", "requests", "browser"),
}


def redact_value(key: str, value: Any) -> Any:
    """The loggable form of one setting: secrets hidden, passwords cut out of URLs."""
    field = FIELDS.get(key)
    if field is not None and field.secret and value:
        return mask_url(value) if "url" in key else REDACTED
    if key == "db_url" and isinstance(value, str):
        return mask_db_url(value).split("?")[0]
    return value


def default_state_path(db_url: str) -> str:
    """The state file of ``db_url`` when none is given: one per database, never shared.

    A SQLite file's sits beside it (``data/boardsync.db`` -> ``data/boardsync.state.json``);
    a PostgreSQL database's is named after its host, port and name under ``data/``
    (``data/127.0.0.1-5432-test.state.json``); an in-memory database's is
    ``data/memory.state.json``. So two databases with default settings never mix their
    records in one file (the file also records the database's identity, which is checked).
    """
    try:
        url = make_url(db_url)
    except ArgumentError:
        return "data/boardsync.state.json"  # validate() reports the URL itself
    if url.get_backend_name() == "sqlite":
        db = url.database or ""
        if not db or db == ":memory:" or db.startswith("file:"):
            return "data/memory.state.json"
        return str(Path(db).with_suffix(".state.json"))
    name = "-".join(str(p) for p in (url.host or "localhost", url.port or 5432,
                                     url.database or "postgres"))
    return f"data/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.state.json"


@dataclass(frozen=True)
class Settings:
    """Typed, frozen, validated settings for one run; build it with :func:`load_settings`."""

    db_url: str
    state_path: str
    upstreams: tuple[str, ...]
    upstream_url: str
    transport: str
    upstream_cooldown: float
    ca_bundle: str
    kinds: tuple[str, ...]
    directory_url: str
    boards: tuple[str, ...]
    force: bool
    max_age: float
    workers: int
    req_delay_min: float
    req_delay_max: float
    max_retry: int
    page_retries: int
    pacing: str
    pacing_floor: float
    pacing_burst: float
    breaker_ips: int
    breaker_cooldown: float
    proxy: str
    proxy_file: str
    proxy_api_url: str
    proxy_api_key: str
    proxy_api_key_param: str
    proxy_api_num_param: str
    proxy_api_format: str
    proxy_tunnel_url: str
    extract_interval: float
    extract_probe: bool
    extract_batch: int
    max_ips: int
    ip_ttl: float
    ip_life: float
    ip_ttl_jitter: float
    ip_thrift: float
    connect_timeout: float
    read_timeout: float
    stagger: float
    board_order: str
    shrink_threshold: float
    accept_shrink: bool
    list_shrink_threshold: float
    grow_factor: float
    shutdown_timeout: float
    write_batch: int
    db_retries: int
    progress: str
    log_interval: float
    page_size: int

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__

    def redacted(self) -> dict[str, Any]:
        """All settings as a plain dict with every secret hidden (for logs, state, run records)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else redact_value(f.name, value)
        return out

    def secrets(self) -> list[str]:
        """The secret strings in these settings (tests grep outputs for them)."""
        found = [getattr(self, k) for k, f in FIELDS.items() if f.secret and getattr(self, k)]
        for url in (self.db_url, self.proxy_tunnel_url):
            parts = urlsplit(url)
            if parts.password:
                found.append(parts.password)
        return found

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        """Check every value and their combinations; raise :class:`ConfigError` naming the key.

        Each value is checked alone first (endpoints, board selection, choices, numbers), then
        the combinations (min <= max, what the proxy mode needs).
        """
        self._validate_upstreams()
        if self.directory_url:
            _check_url("directory_url", self.directory_url)
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigError(f"ca_bundle {self.ca_bundle!r} is not a file (want a PEM file of "
                              "CA certificates, or '' for certifi's)", key="ca_bundle")
        _check_db_url(self.db_url)
        self._validate_selection()
        for key, choices in CHOICES.items():
            _check_choice(key, getattr(self, key), choices)
        self._validate_numbers()
        self._validate_proxy()

    def _validate_upstreams(self) -> None:
        """The endpoints (``upstream_url``, when set, is a one-entry pool) and the transport:
        asking for the browser transport without curl_cffi fails here, before any request."""
        if self.upstream_url:
            _check_url("upstream_url", self.upstream_url)
        elif not self.upstreams:
            raise ConfigError("upstreams: at least one endpoint is needed", "upstreams")
        for url in self.upstreams:
            _check_url("upstreams", url)
        if self.transport == "browser" and importlib.util.find_spec("curl_cffi") is None:
            raise ConfigError("transport = browser needs curl_cffi: pip install "
                              "'boardsync[browser]'", "transport")

    def endpoints(self) -> tuple[str, ...]:
        """The upstream pool a run uses: ``upstream_url`` alone when set, else ``upstreams``."""
        return (self.upstream_url,) if self.upstream_url else self.upstreams

    def _validate_selection(self) -> None:
        """The board kinds and codes to sync."""
        for kind in self.kinds:
            if kind not in KINDS:
                raise ConfigError(
                    f"kinds: unknown board kind {kind!r} (choose from {', '.join(KINDS)})", "kinds"
                )
        if not self.kinds:
            raise ConfigError("kinds: at least one board kind is needed", "kinds")
        for code in self.boards:
            if not is_board_code(code):
                raise ConfigError(f"boards: {code!r} is not a board code like BK0475", "boards")

    def _validate_numbers(self) -> None:
        """Minimums, strictly positive durations, fractions and min <= max."""
        for key, minimum, note in _MINIMUMS:
            _check_min(key, getattr(self, key), minimum, note)
        for key in _POSITIVE:
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)!r}", key)
        if self.req_delay_min > self.req_delay_max:
            raise ConfigError(
                f"req_delay_min ({self.req_delay_min}) is greater than req_delay_max "
                f"({self.req_delay_max})",
                "req_delay_min",
            )
        if not 0 <= self.ip_ttl_jitter < 1:
            raise ConfigError(f"ip_ttl_jitter: must be in [0, 1), got {self.ip_ttl_jitter}",
                              "ip_ttl_jitter")
        if not 0 < self.list_shrink_threshold <= 1:
            raise ConfigError(f"list_shrink_threshold: must be in (0, 1], got "
                              f"{self.list_shrink_threshold}", "list_shrink_threshold")
        if not self.grow_factor > 1:
            raise ConfigError(f"grow_factor: must be > 1, got {self.grow_factor}", "grow_factor")
        if not 0 < self.shrink_threshold <= 1:
            raise ConfigError(
                f"shrink_threshold: must be in (0, 1], got {self.shrink_threshold}",
                "shrink_threshold",
            )

    def _validate_proxy(self) -> None:
        """What the chosen proxy source needs: a list file, an API URL or a tunnel URL."""
        if self.proxy == "static" and not self.proxy_file:
            raise ConfigError("proxy_file: required when proxy = static", "proxy_file")
        if self.proxy == "static" and not Path(self.proxy_file).is_file():
            raise ConfigError(f"proxy_file: no such file {self.proxy_file!r}", "proxy_file")
        for mode, key in (("api", "proxy_api_url"), ("tunnel", "proxy_tunnel_url")):
            if self.proxy == mode:
                if not getattr(self, key):
                    raise ConfigError(f"{key}: required when proxy = {mode}", key)
                _check_url(key, getattr(self, key))


def _check_min(key: str, value: float, minimum: float, note: str = "") -> None:
    if value < minimum:
        extra = f" ({note})" if note else ""
        raise ConfigError(f"{key}: must be >= {minimum}{extra}, got {value!r}", key)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}", key)


def _check_url(key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise ConfigError(f"{key}: malformed URL ({e})", key) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: malformed URL {redact_value(key, url)!r} (need http(s)://host)",
                          key)


def _check_db_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"db_url: malformed database URL {redact_value('db_url', url)!r}",
                          "db_url") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"db_url: unsupported database {parsed.get_backend_name()!r} (sqlite or postgresql)",
            "db_url",
        )
