"""Scenario: every knob of the simulator in one frozen dataclass, loaded from TOML.

Durations are in *simulated* seconds; the simulator multiplies each one by its ``time_scale``
before sleeping or comparing with the real clock. Rates are per simulated second.
A scenario file may group keys in any tables (``[market]``, ``[faults]`` ...); the tables are
flattened, so every key name is unique across the file. Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .hosts import RouteTable

#: Allowed values of the scenario's string knobs.
CHOICES: dict[str, tuple[str, ...]] = {
    "ban_signal": ("close_or_403", "close", "403", "null_data", "captcha"),
    "ttl_format": ("seconds", "expire_time", "none"),
}

#: Fault classes drawn per upstream request, in the order the cumulative draw uses.
FAULT_CLASSES: tuple[str, ...] = ("reset", "hang", "http_502", "html", "truncated", "null_data")


@dataclass(frozen=True)
class Scenario:
    """All simulator settings. See ``scenarios/reference.toml`` for the calibration notes."""

    name: str = "custom"
    # -- market ---------------------------------------------------------------------------
    stocks: int = 5320
    industry_boards: int = 86
    industry_memberships: int = 5450
    concept_boards: int = 441
    concept_memberships: int = 55756
    region_boards: int = 0
    largest_board: str = "BK0596"
    largest_board_size: int = 3674
    past_end: str = "empty"  # "empty" diff or "null" data past the last page
    price_period_min_s: float = 60.0
    price_period_max_s: float = 600.0
    churn_joins: int = 30
    churn_leaves: int = 30
    # -- market: today's scheme (EASTMONEY_API.md section 13) -----------------------------
    industry_levels: tuple[int, ...] = ()  # boards per industry level 1, 2, 3; () = one level
    directory_unquoted: int = 0  # directory boards with no quote (their members: rc 100)
    period_concepts: int = 0  # per-period concept boards that come and go across days
    revamp_day: int = 0  # the day (advance_day count) a level's codes are all replaced; 0 never
    revamp_level: int = 3
    # -- hosts and routes: ("29.push2/api", health) pairs; see sim/hosts.py ----------------
    routes: tuple[tuple[str, str], ...] = ()
    # -- latency (lognormal) --------------------------------------------------------------
    latency_median_s: float = 0.35
    latency_p99_s: float = 1.5
    # -- anti-bot -------------------------------------------------------------------------
    rate_per_s: float = 1.0
    burst: float = 5.0
    ban_s: float = 60.0
    ban_close_fraction: float = 0.7
    ban_signal: str = "close_or_403"  # close_or_403 | close | 403 | null_data | captcha
    windows: tuple[tuple[int, float], ...] = ()  # (at most N requests, per W seconds) each
    concurrency_cap: int = 0  # requests in flight per identity at most; 0 = no cap
    # -- random faults (probability per upstream request) ---------------------------------
    fault_reset: float = 0.0
    fault_hang: float = 0.0
    fault_http_502: float = 0.0
    fault_html: float = 0.0
    fault_truncated: float = 0.0
    fault_null_data: float = 0.0
    hang_s: float = 120.0
    # -- proxy provider -------------------------------------------------------------------
    extract_min_interval_s: float = 2.0
    extract_interval_tolerance: float = 0.2
    extract_quota_per_day: int = 200
    extract_max_num: int = 20
    day_length_s: float = 86400.0
    ip_lifetime_s: float = 60.0
    ip_doa_fraction: float = 0.0
    ip_bad_fraction: float = 0.0
    ip_bad_fault_rate: float = 0.0
    tunnel_rotate_s: float = 30.0
    ttl_format: str = "seconds"  # how extraction gives the TTL: seconds | expire_time | none

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` for values the simulator cannot honour."""
        if self.past_end not in ("empty", "null"):
            raise ConfigError(f"scenario {self.name}: past_end must be 'empty' or 'null'")
        for key, choices in CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"scenario {self.name}: {key} must be one of "
                                  f"{', '.join(choices)}, got {getattr(self, key)!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"scenario {self.name}: {f.name} must be >= 0, got {value}")
        fractions = ("ban_close_fraction", "ip_doa_fraction", "ip_bad_fraction",
                     "ip_bad_fault_rate", "extract_interval_tolerance")
        for key in fractions + tuple(f"fault_{c}" for c in FAULT_CLASSES):
            if getattr(self, key) > 1:
                raise ConfigError(f"scenario {self.name}: {key} must be within [0, 1]")
        RouteTable(self.routes)  # raises ConfigError for a bad key or health
        for pair in self.windows:  # each (at most N requests, per W seconds): N >= 1, W > 0
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and isinstance(pair[0], int) and not isinstance(pair[0], bool)
                    and pair[0] >= 1 and isinstance(pair[1], (int, float))
                    and not isinstance(pair[1], bool) and pair[1] > 0):
                raise ConfigError(f"scenario {self.name}: windows must be [N >= 1, W > 0] "
                                  f"pairs (at most N requests per W seconds), got {pair!r}")
        if isinstance(self.concurrency_cap, bool) or not isinstance(self.concurrency_cap, int):
            raise ConfigError(f"scenario {self.name}: concurrency_cap must be an int "
                              "(0 = no cap)")
        if sum(self.fault_rates().values()) > 1:
            raise ConfigError(f"scenario {self.name}: fault rates add up to more than 1")
        if self.latency_median_s > 0 and self.latency_p99_s < self.latency_median_s:
            raise ConfigError(f"scenario {self.name}: latency_p99_s below latency_median_s")
        if self.industry_memberships < self.stocks:
            raise ConfigError(f"scenario {self.name}: every stock needs an industry "
                              "(industry_memberships >= stocks)")
        if self.largest_board_size > self.stocks:
            raise ConfigError(f"scenario {self.name}: largest_board_size > stocks")
        if self.concept_boards and self.concept_memberships < self.largest_board_size + (
                self.concept_boards - 1):
            raise ConfigError(f"scenario {self.name}: concept_memberships too small")
        if self.industry_boards < 1 or self.rate_per_s <= 0 or self.burst < 1:
            raise ConfigError(f"scenario {self.name}: need industry boards, rate > 0, burst >= 1")
        if self.price_period_max_s < self.price_period_min_s or self.price_period_min_s <= 0:
            raise ConfigError(f"scenario {self.name}: bad price period range")
        self._validate_today()

    def _validate_today(self) -> None:
        """The 2026 scheme's knobs (``sim/levels.py``).

        With ``industry_levels`` set, ``industry_boards`` must equal their sum and
        ``industry_memberships`` must be ``stocks`` times their count: both are stated, not
        derived, so a file that changes one and forgets the other is refused rather than
        silently resized. Levels are non-decreasing because they nest (every board of a level
        has at least one child on the next).
        """
        levels = self.industry_levels
        where = f"scenario {self.name}"
        if levels:
            if not 1 <= len(levels) <= 3 or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in levels):
                raise ConfigError(f"{where}: industry_levels must be 1 to 3 positive counts")
            if list(levels) != sorted(levels) or levels[-1] > self.stocks:
                raise ConfigError(f"{where}: industry_levels must nest (non-decreasing, "
                                  "no more boards on a level than stocks)")
            if self.industry_boards != sum(levels):
                raise ConfigError(f"{where}: industry_boards must be sum(industry_levels) = "
                                  f"{sum(levels)}, got {self.industry_boards}")
            if self.industry_memberships != self.stocks * len(levels):
                raise ConfigError(f"{where}: every stock is in one board per level, so "
                                  f"industry_memberships must be {self.stocks * len(levels)}")
            if not 1 <= self.revamp_level <= len(levels):
                raise ConfigError(f"{where}: revamp_level must be a level 1..{len(levels)}")
        else:
            for key in ("revamp_day", "period_concepts", "directory_unquoted"):
                if getattr(self, key):  # only the 2026 scheme builds them (sim/levels.py)
                    raise ConfigError(f"{where}: {key} needs industry_levels")
        if self.period_concepts and self.period_concepts > self.concept_boards - 1:
            raise ConfigError(f"{where}: period_concepts must leave room for {self.largest_board}"
                              " among the concept boards")

    def fault_rates(self) -> dict[str, float]:
        """``{fault class: probability per request}`` in draw order."""
        return {c: float(getattr(self, f"fault_{c}")) for c in FAULT_CLASSES}

    def with_overrides(self, **overrides: Any) -> Scenario:
        """A copy with ``overrides`` applied (unknown keys raise ``ConfigError``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown scenario keys: {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{key: value}`` (for the admin endpoint and logs)."""
        return dataclasses.asdict(self)


BUILTIN = ("reference", "clean", "hostile", "today")
#: Keys whose TOML value is a table of their own (not a group of keys to flatten).
TABLE_KEYS = frozenset({"routes"})


def _tupled(value: Any) -> Any:
    """TOML arrays (lists, nested) as tuples, tables as sorted ``(key, value)`` pairs."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _tupled(v)) for k, v in value.items()))
    return value


def _flatten(table: dict[str, Any], into: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if isinstance(value, dict) and key not in TABLE_KEYS:
            _flatten(value, into, f"{where}[{key}]")
        elif key in into:
            raise ConfigError(f"scenario key {key!r} appears twice ({where})")
        else:
            into[key] = value


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name (``reference``, ``clean``, ``hostile``, ``today``) or a
    TOML path.

    Raises:
        ConfigError: unknown keys, bad values, or a name that is neither built in nor a file.
        FileNotFoundError: a path that does not exist.
    """
    text: str
    name = str(name_or_path)
    if name in BUILTIN:
        text = (resources.files("boardsync") / "scenarios" / f"{name}.toml").read_text("utf-8")
    else:
        path = Path(name)
        if path.suffix != ".toml" and not path.exists():
            raise ConfigError(f"unknown scenario {name!r} (built in: {', '.join(BUILTIN)}, "
                              "or a path to a .toml file)")
        text = path.read_text("utf-8")
        name = path.stem
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"scenario {name}: {e}") from e
    flat: dict[str, Any] = {}
    _flatten(raw, flat, "top level")
    flat.setdefault("name", name)
    known = {f.name: f for f in fields(Scenario)}
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise ConfigError(f"scenario {name}: unknown keys {', '.join(unknown)}")
    for key, value in flat.items():
        flat[key] = value = _tupled(value)
        default = getattr(Scenario, key, None)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            flat[key] = float(value)
        elif default is not None and not isinstance(flat[key], type(default)):
            raise ConfigError(f"scenario {name}: {key} must be {type(default).__name__}")
    return Scenario(**flat)
