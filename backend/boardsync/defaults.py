"""The defaults table: every settings key with its type, default, unit and meaning.

Why a module of its own: the table is read by the loader (types, defaults), by
:class:`~boardsync.settings.Settings` (which keys are secret), by the example-config
generator and by the docs; none of them needs the others. Durations are seconds; every key
is also the environment variable ``BOARDSYNC_<KEY>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The default upstream pool, best first (``EASTMONEY_API.md`` §13; why this order:
#: :data:`boardsync.upstream.pool.DEFAULT_UPSTREAMS`): the numbered push2 hosts that answered
#: 6/6 (29, 79, 91), then 17 (2/6), each on ``/api/`` and the web page's ``/webguest/``; bare
#: push2 only on ``/webguest/`` (0/6 on ``/api/``); push2delay last (reliable, but stale).
DEFAULT_UPSTREAMS: tuple[str, ...] = (
    *(f"https://{n}.push2.eastmoney.com{path}" for n in (29, 79, 91, 17)
      for path in ("/api/qt/clist/get", "/webguest/api/qt/clist/get")),
    "https://push2.eastmoney.com/webguest/api/qt/clist/get",
    "https://push2delay.eastmoney.com/api/qt/clist/get",
)

#: Pacing presets: named, documented bundles of pacing values a user can pick with
#: ``--preset``. ``reference`` reproduces the reference run's own settings; ``fast`` is a name
#: for the defaults (the learner), kept so scripts that name it still run.
PRESETS: dict[str, dict[str, Any]] = {
    "reference": {
        "workers": 6,
        "req_delay_min": 1.0,
        "req_delay_max": 2.0,
        "ip_ttl": 45.0,
        "extract_interval": 2.0,
        "extract_probe": False,  # the reference script called every 2 s, no closer
        "pacing": "fixed",
        "board_order": "listed",
        "ip_thrift": 0.0,  # the reference script took a new IP whenever it lost one
        "extract_batch": 1,  # one IP per extraction call, as the reference script asked
        "stagger": 1.0,
        "ip_ttl_jitter": 0.15,
    },
    # The defaults under their old name: issue 14 replaced the constants fitted to the
    # reference world (20 workers, a 1.05 s floor, a 55 s TTL) by the learner, which finds
    # them (or the limits of any other upstream) by itself.
    "fast": {},
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
    "state_path": Field(str, "", "state file path ('' = follows the database: beside a SQLite "
                        "file, data/boardsync.db -> data/boardsync.state.json; for PostgreSQL "
                        "data/<host>-<port>-<db>.state.json)"),
    "upstreams": Field(tuple, DEFAULT_UPSTREAMS, "the pool of clist endpoints (host and "
                       "route path), best first by the 2026 field evidence; requests go to "
                       "the healthiest"),
    "upstream_url": Field(str, "", "one endpoint used as a one-entry pool instead of "
                          "upstreams (a base URL gets /api/qt/clist/get; '' = use upstreams)"),
    "transport": Field(str, "auto", "requests; browser (curl_cffi's Chrome impersonation, "
                       "the boardsync[browser] extra); auto: requests until a route refuses "
                       "it, then the browser transport there where installed, else the next "
                       "route"),
    "upstream_cooldown": Field(float, 30.0, "seconds an endpoint rests after a failure "
                               "(stock-sdk's per-host cool-down)"),
    "ca_bundle": Field(str, "", "PEM file of CA certificates to verify the upstream's HTTPS "
                       "against ('' = certifi's roots); verification is never turned off"),
    "kinds": Field(tuple, ("industry", "concept", "region"),
                   "board kinds to sync: industry,concept,region"),
    "directory_url": Field(str, "https://quote.eastmoney.com/center/api/sidemenu_new.json",
                           "the board directory, read once per run as a second witness of the "
                           "lists (kinds, industry levels, boards without a quote); '' = not read"),
    "boards": Field(tuple, (), "only these board codes (empty = all boards of the kinds)"),
    "force": Field(bool, False, "resync every board whatever the state says"),
    "max_age": Field(float, 20 * 3600.0, "skip boards synced less than this many seconds ago"),
    "workers": Field(int, 0, "worker threads; 0 = auto (with learn pacing: sized live from "
                     "the learned allowance, the work waiting and the IPs' lifetime)"),
    "req_delay_min": Field(float, 1.0, "minimum random delay before each request, seconds"),
    "req_delay_max": Field(float, 2.0, "maximum random delay before each request, seconds"),
    "max_retry": Field(int, 10, "attempts after which a board is a permanent failure"),
    "page_retries": Field(int, 6, "attempts per page before the board goes back to the queue "
                          "(above the 4 resets in a row that rotate an IP, so a page that "
                          "made its IP rotate gets tries on the fresh one)"),
    "pacing": Field(str, "learn", "learn: the upstream's allowance (rate, burst, windows, "
                    "concurrency) is learned per identity and stored for the next run; fixed: "
                    "random delay in [req_delay_min, req_delay_max]; adaptive: AIMD per IP"),
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
    "extract_interval": Field(float, 2.0, "seconds between extraction API calls to start from "
                              "(your plan's documented minimum, when you know it); a 'too "
                              "fast' refusal lengthens it"),
    "extract_probe": Field(bool, True, "while workers wait for IPs a call did not cover, try "
                           "calls closer than extract_interval (each try may cost one 'too "
                           "fast' refusal, whose wait is honoured); false: never closer"),
    "extract_batch": Field(int, 20, "most IPs asked per extraction call; > 1: each call asks "
                           "for the IPs awaited (with fixed pacing the first asks for workers "
                           "+ 1)"),
    "max_ips": Field(int, 200, "never extract more IPs than this in one run"),
    "ip_ttl": Field(float, 300.0, "most seconds an IP is used before rotating (capped by the "
                    "provider's stated lifetime; with learn pacing an IP is otherwise kept "
                    "until it dies)"),
    "ip_life": Field(float, 60.0, "learn pacing, extraction API: seconds an IP is assumed to "
                     "live until the provider states its lifetime or IPs are seen to die "
                     "(the crew sizes itself by it; plans of 30 s to 25 min are documented, "
                     "60 s the common short-lived one)"),
    "ip_ttl_jitter": Field(float, 0.15, "TTL jitter fraction so workers do not rotate together"),
    "ip_thrift": Field(float, 15.0, "extraction API: a worker whose IP expired or was evicted "
                       "takes a new one only while the boards waiting are at least this many "
                       "seconds of work per worker still holding an IP; otherwise it stops and "
                       "leaves them to the others (0 = always take a new IP)"),
    "connect_timeout": Field(float, 5.0, "TCP connect timeout, seconds"),
    "read_timeout": Field(float, 10.0, "read timeout, seconds"),
    "stagger": Field(float, 0.0, "seconds between starting consecutive workers (learn pacing "
                     "spaces each identity itself)"),
    "board_order": Field(str, "largest", "largest: biggest boards first (last known member "
                         "count, else the list's rising+falling count) so no big board is "
                         "left paging alone at the end; listed: upstream list order"),
    "shrink_threshold": Field(float, 0.5, "hold back a board that shrinks by more than this"),
    "accept_shrink": Field(bool, False, "write boards that shrank, grew too much or came back "
                           "empty anyway, and apply the deletions of a board list that shrank"),
    "list_shrink_threshold": Field(float, 0.1, "a board list shorter than its last good one by "
                                   "more than this fraction is not applied as deletions (daily "
                                   "churn is a few boards of ~500; a revamp replaces codes "
                                   "without shortening the list)"),
    "grow_factor": Field(float, 5.0, "hold back a board that grows beyond this factor in one run "
                         "(the fastest growth reported is ~4x in 18 months, BK1184)"),
    "shutdown_timeout": Field(float, 30.0, "seconds a graceful stop may take"),
    "write_batch": Field(int, 20, "boards written per database transaction at most"),
    "db_retries": Field(int, 5, "attempts for a database write before the run stops"),
    "progress": Field(str, "auto", "auto (bar on a terminal, log lines otherwise), bar, log, none"),
    "log_interval": Field(float, 10.0, "seconds between progress log lines when not a terminal"),
    "page_size": Field(int, 100, "rows per page requested (the server caps it at 100)"),
}
