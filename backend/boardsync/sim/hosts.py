"""The simulated upstream's named hosts and routes, and the health a scenario gives each pair.

East Money serves the same ``clist`` data from several hosts (``push2``, ``17.push2`` ...) and
two routes (``/api/`` and the web page's ``/webguest/``), and in 2026 they differ a lot in
health by network (``EASTMONEY_API.md`` section 13). A scenario's ``[routes]`` table gives each
``"host/route"`` pair one health; ``*`` matches any host or any route, the most specific key
wins (host and route named > host named > route named > ``*/*``), and a pair no key matches
is healthy::

    [routes]
    "push2/api" = "refuse"             # closes every request before any response
    "17.push2/*" = "intermittent:0.33" # answers a third of the requests, drops the rest
    "29.push2/api" = "refuse:library"  # drops clients whose fingerprint is a library's
    "push2delay/*" = "stale:30"        # answers, with quotes 30 simulated seconds old

Each host listens on a loopback port of its own; its real name (``29.push2.eastmoney.com``)
is what a client asks a proxy gateway to ``CONNECT`` to, and the gateway maps it to that port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError

#: The hosts the simulator serves, short names; the real name adds ``DOMAIN``.
HOSTS: tuple[str, ...] = ("push2", "17.push2", "29.push2", "79.push2", "91.push2",
                          "push2delay", "quote")
DOMAIN = "eastmoney.com"
#: The hosts that serve ``clist`` (``quote`` serves the board directory only).
CLIST_HOSTS: tuple[str, ...] = tuple(h for h in HOSTS if h != "quote")
#: Route name -> path of the ``clist`` endpoint on it.
ROUTES: dict[str, str] = {
    "api": "/api/qt/clist/get",
    "webguest": "/webguest/api/qt/clist/get",
    "weblogin": "/weblogin/api/qt/clist/get",
}
ROUTE_OF_PATH: dict[str, str] = {path: name for name, path in ROUTES.items()}
#: The board directory's path on the ``quote`` host.
DIRECTORY_PATH = "/center/api/sidemenu_new.json"
#: Fingerprint classes a ``refuse:<class>`` health may name (see ``sim/tls.py``).
CLIENT_CLASSES: tuple[str, ...] = ("library", "browser")
HEALTH_KINDS: tuple[str, ...] = ("ok", "refuse", "intermittent", "stale")


def real_name(host: str) -> str:
    """``"29.push2"`` -> ``"29.push2.eastmoney.com"``."""
    return f"{host}.{DOMAIN}"


def short_name(name: str) -> str | None:
    """The short host name for a real one (``"29.push2.eastmoney.com"`` -> ``"29.push2"``)."""
    suffix = "." + DOMAIN
    if name.lower().endswith(suffix):
        short = name[: -len(suffix)].lower()
        return short if short in HOSTS else None
    return None


@dataclass(frozen=True, slots=True)
class Health:
    """What one (host, route) does with a request.

    ``kind``: ``ok``; ``refuse`` (close before any response; only the clients of
    ``refused`` classes when that is set); ``intermittent`` (answer a ``share`` of requests,
    close on the rest); ``stale`` (answer with quotes ``lag_s`` simulated seconds old).
    """

    kind: str = "ok"
    share: float = 1.0
    lag_s: float = 0.0
    refused: tuple[str, ...] = ()

    def refuses(self, client_class: str) -> bool:
        """True when a client of ``client_class`` is closed on without an answer, always."""
        return self.kind == "refuse" and (not self.refused or client_class in self.refused)

    def describe(self) -> str:
        """The health as a scenario writes it (``"intermittent:0.33"``)."""
        if self.kind == "refuse" and self.refused:
            return "refuse:" + "+".join(self.refused)
        if self.kind == "intermittent":
            return f"intermittent:{self.share:g}"
        if self.kind == "stale":
            return f"stale:{self.lag_s:g}"
        return self.kind


OK = Health()


def parse_health(text: str) -> Health:
    """``"ok"``, ``"refuse"``, ``"refuse:library"``, ``"intermittent:0.5"``, ``"stale:30"``.

    Raises:
        ConfigError: an unknown kind or a bad argument.
    """
    kind, _, arg = text.strip().partition(":")
    if kind not in HEALTH_KINDS:
        raise ConfigError(f"route health {text!r}: kind must be one of {', '.join(HEALTH_KINDS)}")
    try:
        if kind == "refuse":
            classes = tuple(c for c in arg.split("+") if c) if arg else ()
            unknown = sorted(set(classes) - set(CLIENT_CLASSES))
            if unknown:
                raise ConfigError(f"route health {text!r}: unknown client class "
                                  f"{', '.join(unknown)} (known: {', '.join(CLIENT_CLASSES)})")
            return Health("refuse", refused=classes)
        if kind == "intermittent":
            share = float(arg)
            if not 0 <= share <= 1:
                raise ConfigError(f"route health {text!r}: share must be within [0, 1]")
            return Health("intermittent", share=share)
        if kind == "stale":
            lag = float(arg)
            if lag < 0:
                raise ConfigError(f"route health {text!r}: lag must be >= 0")
            return Health("stale", lag_s=lag)
    except ValueError as e:
        raise ConfigError(f"route health {text!r}: {e}") from e
    if arg:
        raise ConfigError(f"route health {text!r}: 'ok' takes no argument")
    return OK


def _parse_key(key: str) -> tuple[str, str]:
    host, sep, route = key.partition("/")
    if not sep or (host != "*" and host not in HOSTS) or (route != "*" and route not in ROUTES):
        raise ConfigError(f"route key {key!r}: want 'host/route' with host one of "
                          f"{', '.join(HOSTS)} or '*', route one of {', '.join(ROUTES)} or '*'")
    return host, route


class RouteTable:
    """Health per (host, route) from a scenario's ``routes`` pairs (validated on build)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._rules: dict[tuple[str, str], Health] = {}
        for key, value in pairs:
            self._rules[_parse_key(key)] = parse_health(value)

    def health(self, host: str, route: str) -> Health:
        """The most specific rule for ``host``/``route``; healthy when none matches."""
        for key in ((host, route), (host, "*"), ("*", route), ("*", "*")):
            rule = self._rules.get(key)
            if rule is not None:
                return rule
        return OK

    def describe(self) -> dict[str, str]:
        """``{"host/route": health}`` for every clist host and route (for the admin API)."""
        return {f"{h}/{r}": self.health(h, r).describe() for h in CLIST_HOSTS for r in ROUTES}
