"""The one place secrets are hidden: settings, URLs, free text, records on disk, third-party logs.

Why one module: a proxy password, a provider's API key and a database password reach logs,
the state file, run records and error messages by different roads; one set of rules, tested
once, is the only way none of those roads is forgotten. Nothing happens at import time:
:func:`register_secret` attaches the log filter the first time there is a secret to hide.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: What every redaction puts in place of a secret.
REDACTED = "***"

# Name tokens (split on "_", "-", "." and camelCase) that mark a value as secret.
_SECRET_TOKENS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "apikey", "credential", "credentials",
     "authorization", "auth", "cookie", "sessionid"}
)
# Exact key names that look secret by the rules above but are not (documented exceptions).
_ALLOW_KEYS = frozenset({"key_param", "proxy_api_key_param", "token_bucket"})
_URL_USERINFO_RE = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_BARE_USERINFO_RE = re.compile(r"(?<=//)[^/@\s]+@")
_QUERY_SECRET_RE = re.compile(
    r"(?P<name>[?&](?:key|api_?key|token|access_token|secret|password|pwd|sign|signature)=)"
    r"[^&#\s]*",
    re.IGNORECASE,
)
#: Third-party loggers that print request lines (query strings included) at DEBUG.
_LOGGERS = ("urllib3.connectionpool",)


def _key_tokens(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [t for t in re.split(r"[_\-.\s]+", spaced.lower()) if t]


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret.

    Rules, chosen so ordinary keys survive: a key is secret when one of its name tokens is a
    secret word (``password``, ``secret``, ``token``, ``apikey``, ``auth``...) or when its
    *last* token is ``key`` (``key``, ``api_key``, ``proxy_api_key``). So ``max_ips``,
    ``kinds``, ``max_tokens``, ``keyword``, ``key_count`` and ``proxy_api_key_param`` (the
    *name* of the parameter, not its value) are kept; ``_ALLOW_KEYS`` lists the exceptions.
    """
    if key in _ALLOW_KEYS:
        return False
    tokens = _key_tokens(key)
    if not tokens:
        return False
    return tokens[-1] == "key" or any(t in _SECRET_TOKENS for t in tokens)


def redact_text(text: str) -> str:
    """Cut passwords out of ``scheme://user:pass@host`` and secret query values out of URLs."""
    text = _URL_USERINFO_RE.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _QUERY_SECRET_RE.sub(lambda m: f"{m['name']}{REDACTED}", text)


def redact(obj: Any) -> Any:
    """A deep copy of ``obj`` with secrets replaced by ``"***"`` (defence in depth).

    Values of secret-named keys (see :func:`is_secret_key`) become ``"***"`` (empty/None
    values are kept, they hide nothing), and every string has URL passwords and secret query
    values cut out (see :func:`redact_text`). Lists, tuples and dicts are walked.
    """
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = str(k)
            if is_secret_key(key) and v not in (None, "", {}, []):
                out[key] = REDACTED
            else:
                out[key] = redact(v)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def mask_url(url: str) -> str:
    """``url`` in its exact form but with the password and every query value masked.

    ``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; ``sqlite:////tmp/x.db`` is
    returned unchanged (so it can be pasted back). For settings and run records.
    """
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
    if netloc == parts.netloc and not parts.query:
        return url  # nothing to hide: keep the exact spelling (urlunsplit would drop "//")
    query = urlencode([(k, REDACTED) for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_db_url(url: str) -> str:
    """A database URL in its exact form with only the password masked, so it can be pasted
    back: ``postgresql://root@h/db`` stays as it is (a database user name is no secret,
    unlike the bare userinfo of a proxy URL, which :func:`mask_url` hides);
    ``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; query values masked.
    """
    try:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
    except ValueError:
        return REDACTED
    return url if userinfo and ":" not in userinfo and "?" not in url else mask_url(url)


def strip_url(url: str) -> str:
    """``url`` without credentials, query or fragment: scheme, host, port and path only.

    For log lines about an endpoint whose query may carry keys (a provider's extraction URL).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def without_userinfo(url: str) -> str:
    """``url`` without ``user:pass@`` (query kept): for error messages about an upstream."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _BARE_USERINFO_RE.sub(f"{REDACTED}@", url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scrub(text: str, secret_url: str | None = None, limit: int = 300) -> str:
    """``text`` (an exception's message) without any ``//user:pass@`` nor the password of
    ``secret_url`` (passwords under 4 characters are left: replacing them garbles the text),
    cut to ``limit`` characters."""
    text = _BARE_USERINFO_RE.sub(f"{REDACTED}@", text)
    if secret_url:
        try:
            password = urlsplit(secret_url).password
        except ValueError:
            password = None
        if password and len(password) >= 4:
            text = text.replace(password, REDACTED)
    return text[:limit]


class SecretFilter(logging.Filter):
    """Replaces registered secrets in the records of a third-party logger.

    urllib3 logs every request line, query string included, at DEBUG; with ``--log-level
    debug`` that would print a provider's API key. A filter on that one logger is the narrowest
    fix that does not depend on how the CLI configures logging.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            hits = [s for s in self.secrets if s in msg]
            if hits:
                for secret in hits:
                    msg = msg.replace(secret, REDACTED)
                record.msg, record.args = msg, ()
        return True


_FILTER = SecretFilter()
_installed = False
_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Hide ``secret`` (4 characters or more) in third-party request logs from now on."""
    global _installed
    if len(secret) < 4:
        return
    with _lock:
        _FILTER.secrets.add(secret)
        if not _installed:
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True
