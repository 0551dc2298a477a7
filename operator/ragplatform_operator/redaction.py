"""Credentials out of everything the operator writes: status, Events, logs and its own errors.

`redact_secrets` finds every URL in a text (`scheme://...`) and hides its userinfo
(`user:password@` becomes `***@`) and the values of query parameters whose name says secret
(`?token=`, `password=`, `api_key=`, `X-Amz-Signature=` ... become `***`); the scheme, host,
port and path stay, so a message still says which endpoint failed. The services have the same
rule in `ragplatform.core.redaction`, which the operator may not import (its own package).

The operator meets URLs with credentials in the Redis URL Secret (the queue-depth reader), in
spec fields (vector store, embedding and model endpoints) and in whatever the API server or a
client library echoes back; `redact_strings` runs over a whole status before it is written.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

REDACTED: Final = "***"
# A URL in running text: a scheme, "://", then up to whitespace or a quote/bracket.
_URL_IN_TEXT: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_SECRET_PARAMETER: Final = re.compile(r"token|key|secret|passw|pwd|sig|credential|auth|session", re.IGNORECASE)


def _redacted_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if equals and value and _SECRET_PARAMETER.search(name) else pair)
    return "&".join(pairs)


def _redacted_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host: hide everything after the scheme
        return url.split("://", 1)[0] + "://" + REDACTED
    netloc = parts.netloc
    if "@" in netloc:  # the userinfo ends at the last "@" (an unencoded "@" in a password too)
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, _redacted_query(parts.query), parts.fragment))


def redact_secrets(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***` (idempotent)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: _redacted_url(match.group(0)), text)


def redact_strings(value: Any) -> Any:
    """`value` with `redact_secrets` applied to every string in it (dicts and lists walked)."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, Mapping):
        return {key: redact_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_strings(item) for item in value)
    return value


def redact_log_records() -> None:
    """Make every log record of this process redacted as it is created (message and arguments,
    and a traceback's text), kopf's own included: at debug level kopf logs whole specs and
    patches, which may carry an endpoint URL with a password. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_secrets(message), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            if "://" in text:
                record.exc_text = redact_secrets(text.rstrip("\n"))
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
