"""URLs without their credentials: what may be stored, printed, logged or exported.

A URL leaves the process (evidence provenance and payloads, run errors, logs, CLI output, bundles) only after
:func:`redact_url`: its userinfo (``user:password@``, a token as user name) is removed and the values of query
parameters named like secrets (``password``, ``token``, ``X-Amz-Signature``, ``sig``, ``key`` …) are replaced.
Free text that may quote URLs (exception messages) goes through :func:`redact_text`.
"""

from __future__ import annotations

import re
from typing import Any, overload
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "REDACTED",
    "SECRET_KEY_PATTERN",
    "is_secret_name",
    "redact_text",
    "redact_url",
    "redact_urls_in",
    "url_credentials",
]

SECRET_KEY_PATTERN = re.compile(
    r"password|passwd|secret|token|api[_-]?key|private[_-]?key|credential|signature|jwt"
    r"|^(key|sig|pass|pwd|auth|authorization)$",
    re.I,
)
"""Names (settings, log fields, query parameters) whose values are secrets."""

REDACTED = "redacted"

_ABSOLUTE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}\\,]+")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s'\"]+)=(?P<value>[^&;#\s'\"<>]*)")


def is_secret_name(name: str) -> bool:
    return SECRET_KEY_PATTERN.search(name) is not None


def url_credentials(url: str) -> list[str]:
    """What in ``url`` is a credential (``"user info"``, ``"query parameter 'token'"``); empty when nothing."""
    if "@" not in url and "=" not in url:
        return []
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found = ["user info"] if parts.netloc and "@" in parts.netloc else []
    found += [f"query parameter {name!r}" for name, value in parse_qsl(parts.query, keep_blank_values=True)
              if is_secret_name(name) and value not in ("", REDACTED)]  # fmt: skip
    return found


def redact_url(url: str) -> str:
    """``url`` without user info and with secret query parameter values replaced by ``redacted``.

    A string that does not parse as a URL is returned with its secret-looking parts replaced as free text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_query_parameters(_USERINFO.sub(r"\g<scheme>", url))
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(name) for name, _ in pairs):
            query = urlencode([(name, REDACTED if is_secret_name(name) else value) for name, value in pairs])
    if netloc != parts.netloc:
        url = url.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


def _redact_query_parameters(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if not is_secret_name(match["name"]):
            return match[0]
        return f"{match['lead']}{match['name']}={REDACTED}"

    return _QUERY_PARAMETER.sub(replace, text)


@overload
def redact_text(text: str) -> str: ...
@overload
def redact_text(text: None) -> None: ...
def redact_text(text: str | None) -> str | None:
    """Every URL quoted in ``text`` (an error message, a log value) passed through :func:`redact_url`, and
    secret query parameters of relative URLs (``url: /api?token=…``) replaced."""
    if not text:
        return text
    if "://" in text:
        text = _ABSOLUTE_URL.sub(lambda m: redact_url(m[0]), text)
    if "=" in text:
        text = _redact_query_parameters(text)
    return text


def redact_urls_in(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with :func:`redact_text` applied to every string."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_urls_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_urls_in(v) for v in value]
    return value
