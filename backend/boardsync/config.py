"""Building the settings: defaults < preset < config file (TOML) < ``BOARDSYNC_*`` env < flags.

Every key, its type, default and meaning lives in :data:`~boardsync.defaults.FIELDS`; the
settings object and its cross-checks in :mod:`boardsync.settings`. This module reads the
layers: it rejects unknown keys and wrong types with a :class:`ConfigError` that names the
key and where it came from, converts strings (environment, flags) to each key's type, and
hands the result to :meth:`Settings.validate`. ``from boardsync.config import ...`` stays the
one import for callers: the table and the settings class are re-exported here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .defaults import FIELDS, PRESETS, Field
from .durations import parse_duration
from .errors import ConfigError
from .settings import Settings, default_state_path, redact_value

__all__ = ["DEFAULT_CONFIG_PATH", "ENV_PREFIX", "FIELDS", "PRESETS", "Field", "Settings",
           "default_state_path", "load_settings", "read_config_file", "redact_value"]

ENV_PREFIX = "BOARDSYNC_"
DEFAULT_CONFIG_PATH = Path("config/boardsync.toml")

#: ``BOARDSYNC_*`` variables that are not settings keys (test harness, preset, config path).
_ENV_NOT_SETTINGS = frozenset(
    {"BOARDSYNC_TEST_PG_URL", "BOARDSYNC_PRESET", "BOARDSYNC_CONFIG", "BOARDSYNC_LOG_LEVEL",
     "BOARDSYNC_LOG_FORMAT"}
)
#: Spellings of true and false accepted from text (environment, flags).
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _as_tuple(key: str, value: Any, where: str) -> tuple[str, ...]:
    """``"a, b;c"`` or a list of strings -> ``("a", "b", "c")`` (empty items dropped)."""
    if isinstance(value, str):
        items = [v.strip() for v in value.replace(";", ",").split(",")]
        return tuple(v for v in items if v)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of strings, got {value!r}", key)


def _as_bool(key: str, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{where}: expected true or false, got {value!r}", key)


def _as_int(key: str, value: Any, where: str) -> int:
    """An integer; ``workers`` also takes ``"auto"`` (stored as 0)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if key == "workers" and value.strip().lower() == "auto":
            return 0
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected an integer, got {value!r}", key)


def _as_float(key: str, value: Any, where: str) -> float:
    """A number of seconds (or a fraction): ``90``, ``"1.5"``, ``"30s"``, ``"20m"``, ``"2d"``.

    Text goes through the one duration parser (zero allowed: ``max_age = "0"`` means "always
    resync"); plain numbers it does not take (``"-1"``, ``"1e3"``) are read as floats so that
    :meth:`Settings.validate` reports a negative value with its own message, as before.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value, key, allow_zero=True)
        except ConfigError:
            pass
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number, got {value!r}", key)


def _as_str(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}", key)
    return value


_COERCE: dict[type, Callable[[str, Any, str], Any]] = {
    tuple: _as_tuple, bool: _as_bool, int: _as_int, float: _as_float, str: _as_str,
}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Convert ``value`` to the key's type; strings (env, flags) are parsed, others checked."""
    return _COERCE[FIELDS[key].type](key, value, f"{key} (from {source})")


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


def _preset_values(preset: str | None) -> dict[str, Any]:
    if not preset:
        return {}
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r} (choose from "
                          f"{', '.join(PRESETS)})", "preset")
    return dict(PRESETS[preset])


def _file_values(config_path: str | Path | None) -> dict[str, Any]:
    """The config file's settings; no path means ``config/boardsync.toml`` when it exists."""
    path = Path(config_path) if config_path else None
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is None:
        return {}
    values: dict[str, Any] = {}
    for key, value in read_config_file(path).items():
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown key in {str(path)!r}", key)
        values[key] = _coerce(key, value, str(path))
    return values


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown setting in environment variable {name}", key)
        values[key] = _coerce(key, value, name)
    return values


def _flag_values(flags: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown setting", key)
        values[key] = _coerce(key, value, "command line")
    return values


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
        preset: a name from :data:`PRESETS`, applied above defaults and below the file;
            ``None`` falls back to ``BOARDSYNC_PRESET``.

    Raises:
        ConfigError: unknown key, wrong type or invalid value, naming the key.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {k: f.default for k, f in FIELDS.items()}
    values.update(_preset_values(preset or env.get(ENV_PREFIX + "PRESET")))
    values.update(_file_values(config_path))
    values.update(_env_values(env))
    values.update(_flag_values(flags or {}))
    values["state_path"] = values["state_path"] or default_state_path(values["db_url"])
    settings = Settings(**values)
    settings.validate()
    return settings
