"""The routes of the ``clist`` endpoint and what each needs sent with it, in one place.

East Money serves the same ``clist/get`` on two kinds of route (``EASTMONEY_API.md`` §2, §13):

* ``/api/qt/clist/get`` - what akshare, efinance and stock-sdk call; a public ``ut`` token is
  optional there (efinance and adata omit it), so none is sent unless configured.
* ``/webguest/api/qt/clist/get`` (and ``/weblogin/...`` when logged in) - what
  quote.eastmoney.com itself calls, and what several 2026 modules switched to when ``/api/``
  was refused ("2026-06: 原 /api/ 路径被封，webguest/weblogin 仍可用"). A client on it should
  look like that page: the page's token ``ut=fa5fd1943c7b386f172d6893dbfba10b``, ``dect=1``,
  ``wbp2u=|0|0|0|web`` and a ``Referer`` of quote.eastmoney.com, as captured with it
  (fundpulse curl, 2026; adata ``stock_index.py``).

``fltt`` stays ``2`` on every route: the page sends ``fltt=1`` (scaled integers: ``f3=323``
is 3.23 %), but ``fltt=2`` (real decimals) is also seen on ``/webguest/`` and is what the
parser reads; boardsync stores codes and names only, so nothing depends on the scaling, and
one value everywhere keeps one parser. ``invt=2`` goes with it, as every client sends it.
"""

from __future__ import annotations

from typing import Final

#: Route name -> path of ``clist/get`` on it.
ROUTE_PATHS: Final[dict[str, str]] = {
    "api": "/api/qt/clist/get",
    "webguest": "/webguest/api/qt/clist/get",
    "weblogin": "/weblogin/api/qt/clist/get",
}
#: The routes the web page calls (and that want the page's parameters and Referer).
WEB_ROUTES: Final = frozenset({"webguest", "weblogin"})
#: The public page token the quote.eastmoney.com page sends on ``/webguest/`` (2026).
WEB_UT: Final = "fa5fd1943c7b386f172d6893dbfba10b"
#: The web page's extra parameters, sent on the web routes only.
WEB_PARAMS: Final[dict[str, str]] = {"ut": WEB_UT, "dect": "1", "wbp2u": "|0|0|0|web"}
#: The page the web routes are called from (sent as ``Referer`` on every route: harmless on
#: ``/api/``, expected on ``/webguest/``).
WEB_REFERER: Final = "https://quote.eastmoney.com/center/gridlist.html"
#: What every route gets: decimals (``fltt=2``), as the parser expects.
COMMON_PARAMS: Final[dict[str, str | int]] = {"fltt": 2, "invt": 2}


def route_of(path: str) -> str:
    """The route name of an endpoint path: ``"/webguest/api/qt/clist/get"`` -> ``"webguest"``;
    a path not known here is named by its first segment (``"/x/y"`` -> ``"x"``), or ``"api"``
    for an empty one."""
    for name, known in ROUTE_PATHS.items():
        if path.rstrip("/") == known:
            return name
    first = path.strip("/").split("/", 1)[0]
    return first or "api"


def route_params(route: str, ut: str | None = None) -> dict[str, str | int]:
    """The parameters ``route`` needs beyond the query's own.

    Args:
        route: a route name from :func:`route_of`.
        ut: a configured ``ut`` token (None or ``""`` = the route's own: none on ``/api/``,
            the page's on the web routes).
    """
    params: dict[str, str | int] = dict(COMMON_PARAMS)
    if route in WEB_ROUTES:
        params.update(WEB_PARAMS)
    if ut:
        params["ut"] = ut
    return params
