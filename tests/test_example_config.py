"""config/boardsync.example.toml lists every setting, with its default, and loads cleanly."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from boardsync.config import FIELDS, default_state_path, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "boardsync.example.toml"


def test_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data) == set(FIELDS), "run: python tools/gen_example_config.py"
    for key, field in FIELDS.items():
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert data[key] == default, key


def test_every_key_has_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"no comment above {line!r}"


def test_loads_as_a_config_file() -> None:
    settings = load_settings(config_path=EXAMPLE, env={})
    for key, field in FIELDS.items():
        # state_path '' means "follows the database": the settings hold the derived path
        want = default_state_path(settings.db_url) if key == "state_path" else field.default
        assert getattr(settings, key) == want, key


def test_up_to_date_with_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "gen_example_config.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert EXAMPLE.read_text(encoding="utf-8") == gen.render()
