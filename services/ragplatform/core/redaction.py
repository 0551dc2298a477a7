"""Secrets out of text: the one way every log line and error message hides credentials in URLs.

`redact_text` finds every URL in a piece of text (`scheme://...`) and replaces its userinfo
(`user:password@`) with `***@` and the values of token-like query parameters (`?token=`,
`api_key=`, `X-Amz-Signature=` ...) with `***`. Everything else of the URL stays, so an operator
still sees which host and port failed. It is pure and cheap on text without `://`, so it runs
on every log line (see `redact_event`, a structlog processor) and every error message a client
receives.

A password must be percent-encoded in a URL (RFC 3986); an unencoded `@` in it is still hidden
(the userinfo ends at the last `@` of the authority), an unencoded `/`, `?` or `#` is not — no
parser can tell where such a password ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

REDACTED: Final = "***"

# scheme "://" then an optional userinfo: everything up to the LAST "@" before the path, query,
# fragment, whitespace or a quote/bracket that ends the URL in running text.
_URL_USERINFO: Final = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"<>`@]*(?:@[^/?#\s'\"<>`@]*)*@)"
)
# A URL as it appears in running text (for the query-parameter pass).
_URL: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# name=value pairs in a query whose name says "secret". Matched as a part of the name, so
# `access_token`, `X-Amz-Security-Token`, `sig`, `client_secret`, `apiKey` all count.
_SECRET_PARAM: Final = re.compile(
    r"(?P<lead>[?&;](?P<name>[^=&#;\s]*?(?:token|key|secret|passw|pwd|sig|credential|auth|session|code)[^=&#;\s]*)=)"
    r"(?P<value>[^&#;\s'\"<>`]*)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***` (idempotent)."""
    if "://" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _URL.sub(_redact_query, text)


def redact_url(url: str) -> str:
    """One URL without its credentials; the same rule as `redact_text`."""
    return redact_text(url)


INTERNAL_ENDPOINT: Final = "[internal endpoint]"
# What names an endpoint in our messages and in gRPC's: URLs, gRPC targets (ipv4:, ipv6:, dns:),
# and a bare IPv4 address with its port.
_ENDPOINT: Final = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`),;]+"
    r"|\b(?:ipv4|ipv6|dns|unix):[^\s'\"<>`),;]+"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}\b"
)


def hide_endpoints(text: str) -> str:
    """`text` for someone outside the platform: every endpoint address replaced by
    `[internal endpoint]` (the operator finds the address, redacted, in the service's log)."""
    return _ENDPOINT.sub(INTERNAL_ENDPOINT, text)


def _redact_query(match: re.Match[str]) -> str:
    url = match.group(0)
    if "=" not in url:
        return url
    return _SECRET_PARAM.sub(lambda m: m["lead"] + (REDACTED if m["value"] else ""), url)


def redact_value(value: Any) -> Any:
    """Strings redacted; lists, tuples and dicts redacted inside; anything else as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the safety net that redacts every value of every log line (run it
    after exceptions are formatted, so tracebacks are redacted too)."""
    for key, value in event_dict.items():
        if type(value) is str:  # most values: a string without a URL is left as it is (no copy)
            if "://" in value:
                event_dict[key] = redact_text(value)
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = redact_value(value)
    return event_dict
