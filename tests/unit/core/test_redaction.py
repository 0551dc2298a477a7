"""URL credentials never reach a log line or an error message."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from ragplatform.core.logging import configure_logging
from ragplatform.core.redaction import hide_endpoints, redact_text, redact_url
from ragplatform.core.settings import SettingsError, StoreSettings, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://rag:s3cr%40t@db:5432/rag", "postgresql://***@db:5432/rag"),
        ("postgresql://rag:p@ss@db/rag", "postgresql://***@db/rag"),  # an unencoded @ in the password
        ("redis://:pw@redis:6379/0", "redis://***@redis:6379/0"),
        ("https://ghp_token@github.com/x", "https://***@github.com/x"),
        (
            "cannot reach http://llm:hunter2@llm:8000/v1 (model 'm')",
            "cannot reach http://***@llm:8000/v1 (model 'm')",
        ),
        ("RAG_STORE_URL='mysql://u:pw@h/db': bad", "RAG_STORE_URL='mysql://***@h/db': bad"),
        (
            "https://s3/b/k?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&part=2",
            "https://s3/b/k?X-Amz-Signature=***&X-Amz-Credential=***&part=2",
        ),
        ("http://h/v1?api_key=zzz#top", "http://h/v1?api_key=***#top"),
        ("http://h/search?q=pumps&access_token=t", "http://h/search?q=pumps&access_token=***"),
        ("a http://x:y@one b http://z:w@two", "a http://***@one b http://***@two"),
    ],
)
def test_credentials_are_replaced_and_the_rest_kept(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text", ["no url here", "http://host:8080/path?q=1", "https://medium.com/@user", "user@example.com", ""]
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_redact_url_is_the_same_rule() -> None:
    assert redact_url("http://u:p@h:1/v1?token=x") == "http://***@h:1/v1?token=***"


def test_a_settings_error_never_repeats_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_STORE_URL", "mysql://rag:hunter2@db/rag")
    with pytest.raises(SettingsError) as error:
        load_settings(StoreSettings)
    assert "hunter2" not in str(error.value)
    assert "RAG_STORE_URL='mysql://***@db/rag'" in str(error.value)


def test_every_log_line_is_redacted_ours_and_libraries_tracebacks_too(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", "json")
    try:
        structlog.get_logger("test").warning(
            "connecting", url="redis://:hunter2@r:6379/0", nested={"u": ["http://a:hunter2@b"]}
        )
        try:
            raise ConnectionError("cannot open postgresql://rag:hunter2@db/rag")
        except ConnectionError:
            logging.getLogger("some.library").exception("request to http://x:hunter2@y failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "hunter2" not in stream.getvalue()
    assert lines[0]["url"] == "redis://***@r:6379/0"
    assert lines[1]["event"] == "request to http://***@y failed"
    assert "postgresql://***@db/rag" in lines[1]["exception"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Qdrant at http://qdrant:6333 could not search (ConnectError); check RAG_VECTOR_URL",
            "Qdrant at [internal endpoint] could not search (ConnectError); check RAG_VECTOR_URL",
        ),
        (
            "the retrieval service is unavailable (last error: UNKNOWN: ipv4:10.0.0.7:50053 refused); retry",
            "the retrieval service is unavailable (last error: UNKNOWN: [internal endpoint] refused); retry",
        ),
        (
            "Error 111 connecting to 10.0.0.5:6379. Connection refused.",
            "Error 111 connecting to [internal endpoint]. Connection refused.",
        ),
        (
            "version 1.2.3 at 12:30; ratio 3:1; see RAG_STORE_URL",
            "version 1.2.3 at 12:30; ratio 3:1; see RAG_STORE_URL",
        ),
    ],
)
def test_callers_never_see_internal_endpoints(text: str, expected: str) -> None:
    assert hide_endpoints(text) == expected
