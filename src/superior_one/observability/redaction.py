"""Rules for secrets in logs, spans and error reports, and their masking.

One set of rules for every signal that leaves the process: the log renderers,
the span exporter wrapper (:mod:`.span_redaction`) and Sentry's event hook all
call :func:`scrub_text` on free text and :func:`is_sensitive_key` on names.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

# Lower-case substrings of keys whose values never reach a log line, a span or Sentry.
SENSITIVE_KEY_PARTS = (
    "password",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "webkey",
    "card",
    "cvc",
)
REDACTED = "[redacted]"


# Secrets found inside free text: exception messages, URLs, values logged by mistake.
_SECRET_IN_TEXT = re.compile(
    r"(?P<jwt>\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*)"
    r"|(?P<bearer>\b[Bb]earer\s+[\w.~+/=-]{8,})"
    r"|(?P<pair>\b[\w-]*?(?i:password|passwd|secret|token|api_?key|web_?key|authorization)[\w-]*"
    r"[\"']?\s*[=:]\s*[\"']?[^\s,;&\"'}]+)"
    r"|(?P<card>(?<![\d.])(?:\d[ -]?){12,18}\d(?![\d.]))"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _replace_secret(match: re.Match[str]) -> str:
    if match.group("card") is not None:
        digits = re.sub(r"[ -]", "", match.group("card"))
        return REDACTED if _luhn_valid(digits) else match.group("card")
    if match.group("pair") is not None:
        name = re.match(r"[\w-]+", match.group("pair"))
        return f"{name.group(0) if name else 'secret'}={REDACTED}"
    return REDACTED


# A cheap first pass: most values contain none of these, and skip the full pattern.
_MAYBE_SECRET = re.compile(
    r"(?i:password|passwd|secret|token|api_?key|web_?key|authorization|bearer|eyJ)|\d{4}"
)


def scrub_text(text: str) -> str:
    """Return ``text`` with tokens, ``password=...`` pairs and card numbers replaced."""
    if len(text) < 8 or _MAYBE_SECRET.search(text) is None:
        return text
    return _SECRET_IN_TEXT.sub(_replace_secret, text)


@lru_cache(maxsize=4096)
def is_sensitive_key(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


# ``name=value`` pairs of a query string.
_QUERY_PAIR = re.compile(r"(?P<lead>^|[&;])(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")


def redact_query(query: str) -> str:
    """Return a query string with the value of every parameter whose name is sensitive
    (``webKey``, ``token``, ``card``...) replaced, then scrubbed like free text."""
    if "=" in query:
        query = _QUERY_PAIR.sub(_replace_query_value, query)
    return scrub_text(query)


def redact_url(url: str) -> str:
    """Return ``url`` with its query redacted as by :func:`redact_query`."""
    path, mark, query = url.partition("?")
    return scrub_text(path) + mark + redact_query(query) if mark else scrub_text(url)


def _replace_query_value(match: re.Match[str]) -> str:
    if not is_sensitive_key(unquote_plus(match.group("name"))):
        return match.group(0)
    return f"{match.group('lead')}{match.group('name')}={REDACTED}"
