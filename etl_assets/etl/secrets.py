"""Database secrets: find them in every spelling, and keep them out of every output.

A password reaches this package in one of these ways, and each is handled here:

- the userinfo of a URL (``postgresql://user:pw@host/db``), raw or percent-encoded;
- a query parameter of a URL (``?password=pw``, ``?sslpassword=pw``);
- a key=value connection string (``host=h password='p w'``), quoted or escaped;
- the ``PGPASSWORD`` environment variable, with a URL that has no password;
- a passfile (``passfile=`` or ``PGPASSFILE``): only its path is ever handled; this
  module never opens it, so its contents cannot reach any output.

``redact`` turns a URL or connection string into something fit to show; ``scrub``
removes every known secret from any text (error messages, log lines, tracebacks);
``parse`` checks a URL with libpq's own parser and fails with one line that names what
is wrong, without the secret. ``psql_connection`` gives psql a connection string without
any secret (the command line of a process is visible to every local user).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote

from .errors import InvalidDatabaseUrl

MASK = "***"
PASSWORD_ENV = "PGPASSWORD"

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# key = value pairs of a libpq connection string; an unterminated quote runs to the end.
_DSN_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*(?:'|\\?$)|(?:[^\s\\]|\\.)*\\?)", re.S)
_remembered: set[str] = set()


def is_secret_key(key: str) -> bool:
    """Whether a connection parameter holds a secret (``password``, ``sslpassword`` and the like)."""
    key = key.strip().lower()
    return key != "passfile" and any(word in key for word in ("pass", "secret", "token"))


def is_url(target: str) -> bool:
    return bool(_URL_SCHEME.match(target))


def _libpq_params(target: str) -> dict[str, str] | None:
    """The parameters as libpq reads them, or None when libpq cannot parse ``target``."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(target).items() if v is not None}
    except Error:
        return None


def _url_secret_spans(url: str, *, libpq_parsed: bool) -> list[tuple[int, int]]:
    """Where the secrets of a URL are, as ``(start, end)`` of their raw text.

    libpq's userinfo ends before any ``/``; an unencoded ``@`` in the password counts as part
    of it here. For a URL libpq cannot parse, the userinfo runs to the last ``@`` anywhere:
    that may hide more than needed, never less.
    """
    start = _URL_SCHEME.match(url).end()
    rest = url[start:]
    at = rest.rfind("@", 0, rest.find("/") % (len(rest) + 1)) if libpq_parsed else rest.rfind("@")
    spans: list[tuple[int, int]] = []
    if at >= 0:
        colon = rest.find(":", 0, at)
        if colon >= 0 and colon + 1 < at:
            spans.append((start + colon + 1, start + at))
    query_at = rest.find("?", max(at, 0))
    if query_at >= 0:
        offset = start + query_at + 1
        for param in url[offset:].split("&"):
            key, eq, value = param.partition("=")
            if eq and value and is_secret_key(unquote(key)):
                value_start = offset + len(key) + 1
                spans.append((value_start, value_start + len(value)))
            offset += len(param) + 1
    return spans


def _dsn_secret_spans(dsn: str) -> list[tuple[int, int]]:
    """Where the secret values of a key=value connection string are (quotes included)."""
    return [m.span(2) for m in _DSN_PAIR.finditer(dsn) if is_secret_key(m.group(1)) and m.group(2)]


def _spans(target: str) -> list[tuple[int, int]]:
    if is_url(target):
        return _url_secret_spans(target, libpq_parsed=_libpq_params(target) is not None)
    return _dsn_secret_spans(target)


def _spellings(secret: str) -> set[str]:
    """A secret as it may appear in text: as is, percent-encoded, and quoted for libpq."""
    escaped = secret.replace("\\", "\\\\").replace("'", "\\'")
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), escaped, f"'{escaped}'"}
    return {form for form in forms if form}


def secrets_in(target: str | None) -> set[str]:
    """Every spelling of every secret ``target`` holds, and of ``PGPASSWORD``."""
    found: set[str] = set()
    password = os.environ.get(PASSWORD_ENV)
    if password:
        found |= _spellings(password)
    if not target:
        return found
    for start, end in _spans(target):
        raw = target[start:end]
        found.add(raw)
        if is_url(target):
            found |= _spellings(unquote(raw))
        else:
            inner = raw[1:-1] if len(raw) > 1 and raw.startswith("'") and raw.endswith("'") else raw.lstrip("'")
            found |= _spellings(re.sub(r"\\(.)", r"\1", inner, flags=re.S))
    # What libpq read, unless it is a piece of a value found above (a password with an
    # unencoded "@" is cut short by libpq; masking that piece everywhere would garble text).
    params = _libpq_params(target) or {}
    for key, value in params.items():
        if is_secret_key(key) and value and not any(value in known and value != known for known in found):
            found |= _spellings(value)
    return found


def redact(target: str | None) -> str:
    """``target`` (a URL or key=value string) with every secret replaced by ``***``, to show it."""
    if not target:
        return ""
    out, last = [], 0
    for start, end in sorted(_spans(target)):
        if start >= last:
            out += [target[last:start], MASK]
            last = end
    out.append(target[last:])
    return scrub("".join(out), extra=secrets_in(target))


def remember(*targets: str | None) -> None:
    """Keep the secrets of ``targets`` so that every later ``scrub`` removes them too."""
    for target in targets:
        _remembered.update(secrets_in(target))


def scrub(text: str, *targets: str | None, extra: set[str] | None = None) -> str:
    """``text`` with every target shown redacted and every known secret, in any spelling, as ``***``.

    Known secrets: those of ``targets``, of ``PGPASSWORD``, ``extra`` and those remembered.
    """
    for target in targets:
        if target and target in text:
            text = text.replace(target, redact(target))
    secrets = set(extra or ()) | _remembered | secrets_in(None)
    for target in targets:
        secrets |= secrets_in(target)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret != MASK:
            text = text.replace(secret, MASK)
    return text


def parse(target: str) -> dict[str, str]:
    """The connection parameters of ``target`` as libpq reads them; one clear error otherwise."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    shown = redact(target)
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(target).items() if v is not None}
    except Error as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidDatabaseUrl(f"invalid database URL {shown}: {scrub(reason, target)}") from None
    for port in params.get("port", "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidDatabaseUrl(
                f"invalid database URL {shown}: port {scrub(repr(port), target)} is not a number from 1 to 65535"
            )
    return params


@dataclass(frozen=True)
class PsqlConnection:
    """What psql needs: a connection string without secrets, and the environment carrying them."""

    conninfo: str
    env: dict[str, str]


def psql_connection(target: str) -> PsqlConnection:
    """Split ``target`` into a secret-free connection string and ``PGPASSWORD`` for psql.

    Only ``password`` has an environment variable; any other secret parameter would have
    to go on psql's command line, so it is refused with a clear error instead.
    """
    from psycopg.conninfo import make_conninfo

    params = parse(target)
    others = sorted(k for k in params if is_secret_key(k) and k != "password")
    if others:
        raise InvalidDatabaseUrl(
            f"cannot open psql on {redact(target)}: {', '.join(others)} would have to go on psql's command line, "
            "which every local user can read"
        )
    password = params.pop("password", None)
    env = {PASSWORD_ENV: password} if password else {}
    return PsqlConnection(make_conninfo("", **params), env)


class ScrubbingFormatter(logging.Formatter):
    """Wraps a log formatter so that its lines (tracebacks included) never show a known secret."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record))


def scrub_logging(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (the root logger by default) scrub what it writes."""
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, ScrubbingFormatter):
            handler.setFormatter(ScrubbingFormatter(handler.formatter))
