"""Write config/boardsync.example.toml from the defaults table (``boardsync.defaults.FIELDS``).

Run ``python tools/gen_example_config.py`` after adding or changing a setting;
``tests/test_example_config.py`` fails while the file is out of date, so the example can
never silently miss a key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from boardsync.defaults import FIELDS

HEADER = """\
# boardsync configuration: every setting with its default.
#
# Copy to config/boardsync.toml (read automatically) or pass --config PATH.
# Precedence: command-line flag > BOARDSYNC_<KEY> environment variable > this file > default.
# Durations are seconds (strings such as "30m" or "20h" are accepted too).
# Keys may also sit under a [sync] table. Unknown keys are an error.
# Secrets (proxy_api_url, proxy_api_key, proxy_tunnel_url, the db_url password) are better
# given through the environment, e.g. BOARDSYNC_PROXY_API_KEY, than written here.
#
# The daemon's schedule is given on its command line, not here:
#   boardsync daemon --cron "30 15 * * 1-5" --timezone Asia/Shanghai --http 127.0.0.1:9108
"""


def toml_value(value: Any) -> str:
    """A TOML literal for a default (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def render() -> str:
    lines = [HEADER]
    for key, field in FIELDS.items():
        secret = " (secret)" if field.secret else ""
        lines.append(f"# {field.help}{secret}. Env: BOARDSYNC_{key.upper()}")
        lines.append(f"{key} = {toml_value(field.default)}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    target = Path(__file__).resolve().parent.parent / "config" / "boardsync.example.toml"
    target.write_text(render(), encoding="utf-8")
    sys.stderr.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()
