"""The one settings object: defaults < config file (TOML) < ``BOARDSYNC_*`` environment < CLI flags.

Every key, its type, default and meaning lives in :data:`FIELDS` (the defaults table). The
loader rejects unknown keys and wrong types with a :class:`ConfigError` that names the key;
:meth:`Settings.validate` then checks values against each other (min delay <= max delay, a
proxy mode has what it needs, ...). Secrets (the provider key, proxy passwords, the database
password) are redacted in ``repr`` and in :meth:`Settings.redacted`, which is what goes into
logs, the state file and run records.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ConfigError
from .models import KINDS, is_board_code

ENV_PREFIX = "BOARDSYNC_"
DEFAULT_CONFIG_PATH = Path("config/boardsync.toml")
REDACTED = "***"

#: Pacing presets: named, documented bundles of pacing values a user can pick with
#: ``--preset``. ``reference`` reproduces the reference run's own settings.
PRESETS: dict[str, dict[str, Any]] = {
    "reference": {
        "workers": 6,
        "req_delay_min": 1.0,
        "req_delay_max": 2.0,
        "ip_ttl": 45.0,
        "extract_interval": 2.0,
        "pacing": "fixed",
        "board_order": "listed",
        "ip_thrift": 0.0,  # the reference script took a new IP whenever it lost one
    },
    # Pace by what the upstream allows (docs/BENCHMARKS.md): AIMD spacing learned down from
    # 1.5 s to a 1.05 s floor (the anti-bot's 1 req/s per IP plus 5 %), the IP's burst used
    # (4 of its 5 tokens), 20 workers fed by one extraction call of 20 IPs (workers 0 and 1
    # list the two kinds first on their own IPs), replacements one at a time, an IP kept up
    # to 55 s of its 60 s life, no stagger, and a 3 s read timeout so a hung request costs
    # 3 s, not 10.
    "fast": {
        "workers": 20,
        "pacing": "adaptive",
        "req_delay_min": 1.05,
        "req_delay_max": 1.5,
        "pacing_floor": 1.05,
        "pacing_burst": 4.0,
        "extract_interval": 2.0,
        "extract_batch": 20,
        "ip_ttl": 55.0,
        "ip_ttl_jitter": 0.0,
        "stagger": 0.0,
        "read_timeout": 3.0,
    },
}


@dataclass(frozen=True)
class Field:
    """One settings key: its type, default, unit/meaning and whether it is a secret."""

    type: type
    default: Any
    help: str
    secret: bool = False


#: The defaults table. Durations are seconds; every key is also ``BOARDSYNC_<KEY>``.
FIELDS: dict[str, Field] = {
    "db_url": Field(str, "sqlite:///data/boardsync.db", "SQLAlchemy database URL"),
    "state_path": Field(str, "data/ext_board_sync_state.json", "state file path"),
    "upstream_url": Field(
        str, "https://push2.eastmoney.com", "East Money push2 base URL (path is appended)"
    ),
    "kinds": Field(tuple, ("industry", "concept"), "board kinds to sync: industry,concept,region"),
    "boards": Field(tuple, (), "only these board codes (empty = all boards of the kinds)"),
    "force": Field(bool, False, "resync every board whatever the state says"),
    "max_age": Field(float, 20 * 3600.0, "skip boards synced less than this many seconds ago"),
    "workers": Field(int, 6, "worker threads; 0 = auto (Little's law from QPS and IP TTL)"),
    "req_delay_min": Field(float, 1.0, "minimum random delay before each request, seconds"),
    "req_delay_max": Field(float, 2.0, "maximum random delay before each request, seconds"),
    "max_retry": Field(int, 10, "attempts after which a board is a permanent failure"),
    "page_retries": Field(int, 6, "attempts per page before the board goes back to the queue "
                          "(above the 4 resets in a row that rotate an IP, so a page that "
                          "made its IP rotate gets tries on the fresh one)"),
    "pacing": Field(str, "fixed", "fixed: random delay in [min, max]; adaptive: AIMD per IP"),
    "pacing_floor": Field(float, 0.5, "adaptive pacing: never space requests on one IP closer"),
    "pacing_burst": Field(float, 1.0, "adaptive pacing: requests a fresh IP may send back to "
                          "back (the upstream's burst minus one; 1 = none)"),
    "breaker_ips": Field(int, 4, "outage breaker: failing IPs in a row that open it"),
    "breaker_cooldown": Field(float, 30.0, "seconds the outage breaker stays open"),
    "proxy": Field(str, "direct", "proxy source: direct, static, api or tunnel"),
    "proxy_file": Field(str, "", "static proxy list file (one [user:pass@]host:port per line)"),
    "proxy_api_url": Field(str, "", "provider extraction API URL", secret=True),
    "proxy_api_key": Field(str, "", "provider API key (sent as the key parameter)", secret=True),
    "proxy_api_key_param": Field(str, "key", "query parameter name of the API key"),
    "proxy_api_num_param": Field(str, "num", "query parameter name of the IP count"),
    "proxy_api_format": Field(str, "txt", "extraction body format: txt or json"),
    "proxy_tunnel_url": Field(str, "", "tunnel gateway URL with user:pass", secret=True),
    "extract_interval": Field(float, 2.0, "minimum seconds between extraction API calls"),
    "extract_batch": Field(int, 1, "most IPs asked per extraction call; > 1: the first call "
                           "asks for workers + 1, later calls for the IPs awaited"),
    "max_ips": Field(int, 200, "never extract more IPs than this in one run"),
    "ip_ttl": Field(float, 45.0, "seconds an IP is used before rotating (capped by provider TTL)"),
    "ip_ttl_jitter": Field(float, 0.15, "TTL jitter fraction so workers do not rotate together"),
    "ip_thrift": Field(float, 15.0, "extraction API: a worker whose IP expired or was evicted "
                       "takes a new one only while the boards waiting are at least this many "
                       "seconds of work per worker still holding an IP; otherwise it stops and "
                       "leaves them to the others (0 = always take a new IP)"),
    "connect_timeout": Field(float, 5.0, "TCP connect timeout, seconds"),
    "read_timeout": Field(float, 10.0, "read timeout, seconds"),
    "stagger": Field(float, 1.0, "seconds between starting consecutive workers"),
    "board_order": Field(str, "largest", "largest: biggest boards first (last known member "
                         "count, else the list's rising+falling count) so no big board is "
                         "left paging alone at the end; listed: upstream list order"),
    "shrink_threshold": Field(float, 0.5, "hold back a board that shrinks by more than this"),
    "accept_shrink": Field(bool, False, "write boards that shrank or came back empty anyway"),
    "shutdown_timeout": Field(float, 30.0, "seconds a graceful stop may take"),
    "write_batch": Field(int, 20, "boards written per database transaction at most"),
    "db_retries": Field(int, 5, "attempts for a database write before the run stops"),
    "progress": Field(str, "auto", "auto (bar on a terminal, log lines otherwise), bar, log, none"),
    "log_interval": Field(float, 10.0, "seconds between progress log lines when not a terminal"),
    "page_size": Field(int, 100, "rows per page requested (the server caps it at 100)"),
}


def _redact_url(url: str) -> str:
    """Remove the password of ``user:pass@`` and every query value from ``url``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = urlencode([(k, REDACTED) for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_value(key: str, value: Any) -> Any:
    """The loggable form of one setting: secrets hidden, passwords cut out of URLs."""
    field = FIELDS.get(key)
    if field is not None and field.secret and value:
        return _redact_url(value) if "url" in key else REDACTED
    if key == "db_url" and isinstance(value, str):
        return _redact_url(value).split("?")[0]
    return value


@dataclass(frozen=True)
class Settings:
    """Typed, frozen, validated settings for one run; build it with :func:`load_settings`."""

    db_url: str
    state_path: str
    upstream_url: str
    kinds: tuple[str, ...]
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
    extract_batch: int
    max_ips: int
    ip_ttl: float
    ip_ttl_jitter: float
    ip_thrift: float
    connect_timeout: float
    read_timeout: float
    stagger: float
    board_order: str
    shrink_threshold: float
    accept_shrink: bool
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
        """Check every value and their combinations; raise :class:`ConfigError` naming the key."""
        _check_url("upstream_url", self.upstream_url)
        _check_db_url(self.db_url)
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
        _check_min("workers", self.workers, 0, "0 means auto")
        _check_min("max_retry", self.max_retry, 0)
        _check_min("page_retries", self.page_retries, 1)
        _check_min("breaker_ips", self.breaker_ips, 0, "0 disables the breaker")
        _check_choice("pacing", self.pacing, ("fixed", "adaptive"))
        _check_choice("board_order", self.board_order, ("largest", "listed"))
        _check_min("max_ips", self.max_ips, 1)
        _check_min("extract_batch", self.extract_batch, 1)
        _check_min("pacing_burst", self.pacing_burst, 1)
        _check_min("write_batch", self.write_batch, 1)
        _check_min("db_retries", self.db_retries, 1)
        _check_min("page_size", self.page_size, 1)
        for key in ("req_delay_min", "req_delay_max", "max_age", "extract_interval", "stagger",
                    "shutdown_timeout", "log_interval", "pacing_floor", "breaker_cooldown",
                    "ip_thrift"):
            _check_min(key, getattr(self, key), 0)
        for key in ("ip_ttl", "connect_timeout", "read_timeout"):
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
        if not 0 < self.shrink_threshold <= 1:
            raise ConfigError(
                f"shrink_threshold: must be in (0, 1], got {self.shrink_threshold}",
                "shrink_threshold",
            )
        _check_choice("progress", self.progress, ("auto", "bar", "log", "none"))
        _check_choice("proxy", self.proxy, ("direct", "static", "api", "tunnel"))
        _check_choice("proxy_api_format", self.proxy_api_format, ("txt", "json"))
        if self.proxy == "static" and not self.proxy_file:
            raise ConfigError("proxy_file: required when proxy = static", "proxy_file")
        if self.proxy == "static" and not Path(self.proxy_file).is_file():
            raise ConfigError(f"proxy_file: no such file {self.proxy_file!r}", "proxy_file")
        if self.proxy == "api":
            if not self.proxy_api_url:
                raise ConfigError("proxy_api_url: required when proxy = api", "proxy_api_url")
            _check_url("proxy_api_url", self.proxy_api_url)
        if self.proxy == "tunnel":
            if not self.proxy_tunnel_url:
                raise ConfigError("proxy_tunnel_url: required when proxy = tunnel",
                                  "proxy_tunnel_url")
            _check_url("proxy_tunnel_url", self.proxy_tunnel_url)


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
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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


def _coerce(key: str, value: Any, source: str) -> Any:
    """Convert ``value`` to the key's type; strings (env, flags) are parsed, others checked."""
    field = FIELDS[key]
    want = field.type
    where = f"{key} (from {source})"
    if want is tuple:
        if isinstance(value, str):
            items = [v.strip() for v in value.replace(";", ",").split(",")]
            return tuple(v for v in items if v)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}", key)
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                        "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}", key)
    if want is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}", key)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            if key == "workers" and value.strip().lower() == "auto":
                return 0
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}", key)
    if want is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}", key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(_parse_duration(value))
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}", key)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}", key)
    return value


def _parse_duration(text: str) -> float:
    """``"90"``, ``"1.5"``, ``"30s"``, ``"20m"``, ``"12h"``, ``"2d"`` -> seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file: flat keys, or keys under a ``[sync]``/``[boardsync]`` table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config: no such file {str(path)!r}", "config") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config: cannot read {str(path)!r}: {e}", "config") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {str(path)!r} is not valid TOML: {e}", "config") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("sync", "boardsync", "daemon") and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    preset: str | None = None,
) -> Settings:
    """Build validated :class:`Settings` from every layer, highest last.

    Args:
        flags: CLI values; ``None`` values mean "not given" and are ignored.
        config_path: TOML file; ``None`` uses ``config/boardsync.toml`` when it exists.
        env: environment; ``None`` reads ``os.environ``. Only ``BOARDSYNC_<KEY>`` is read.
        preset: a name from :data:`PRESETS`, applied above defaults and below the file.

    Raises:
        ConfigError: unknown key, wrong type or invalid value, naming the key.
    """
    values: dict[str, Any] = {k: f.default for k, f in FIELDS.items()}
    env = os.environ if env is None else env
    preset = preset or env.get(ENV_PREFIX + "PRESET")
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {preset!r} (choose from "
                              f"{', '.join(PRESETS)})", "preset")
        values.update(PRESETS[preset])
    path = Path(config_path) if config_path else None
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        for key, value in read_config_file(path).items():
            if key not in FIELDS:
                raise ConfigError(f"{key}: unknown key in {str(path)!r}", key)
            values[key] = _coerce(key, value, str(path))
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown setting in environment variable {name}", key)
        values[key] = _coerce(key, value, name)
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown setting", key)
        values[key] = _coerce(key, value, "command line")
    settings = Settings(**values)
    settings.validate()
    return settings


#: ``BOARDSYNC_*`` variables that are not settings keys (test harness, preset, config path).
_ENV_NOT_SETTINGS = frozenset(
    {"BOARDSYNC_TEST_PG_URL", "BOARDSYNC_PRESET", "BOARDSYNC_CONFIG", "BOARDSYNC_LOG_LEVEL",
     "BOARDSYNC_LOG_FORMAT"}
)
