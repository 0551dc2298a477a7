"""The operator's redaction: URL credentials out of any text, everything else kept."""

from __future__ import annotations

import pytest

from ragplatform_operator.queue_depth import QueueDepthReader, QueueDepthUnavailable
from ragplatform_operator.redaction import redact_secrets, redact_strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw123@redis:6379/0", "redis://***@redis:6379/0"),
        (
            "cannot read queue q from Redis at redis://user:pw@r:6379/0: refused.",
            "cannot read queue q from Redis at redis://***@r:6379/0: refused.",
        ),
        (
            "postgresql://rag:s3cret@db.rag.svc:5432/rag?sslmode=require",
            "postgresql://***@db.rag.svc:5432/rag?sslmode=require",
        ),
        ("https://u:p@ss@qdrant.example:6333/collections", "https://***@qdrant.example:6333/collections"),
        ("http://llm:8000/v1?api_key=abc&model=x", "http://llm:8000/v1?api_key=***&model=x"),
        (
            "https://s3.example/b/o?X-Amz-Signature=ff00&X-Amz-Credential=AK%2F1&X-Amz-Date=1",
            "https://s3.example/b/o?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Date=1",
        ),
        ("rediss://default:tok@a.example:6380 and redis://b:6379", "rediss://***@a.example:6380 and redis://b:6379"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
        ("http://[::1:6333/", "http://***"),
    ],
)
def test_credentials_are_hidden_and_the_endpoint_kept(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected
    assert redact_secrets(expected) == expected  # idempotent


def test_every_string_in_a_status_is_redacted() -> None:
    status = {"conditions": [{"message": "at redis://:pw@r:6379/0", "status": "False"}], "depth": 3, "x": None}
    assert redact_strings(status) == {
        "conditions": [{"message": "at redis://***@r:6379/0", "status": "False"}],
        "depth": 3,
        "x": None,
    }


async def test_the_queue_reader_never_puts_the_redis_password_in_its_error() -> None:
    # A real client against a closed loopback port (nothing listens on port 1).
    reader = QueueDepthReader()
    try:
        with pytest.raises(QueueDepthUnavailable) as caught:
            await reader.depth("redis://rag:PLANTED-PW@127.0.0.1:1/0?password=PLANTED-Q", "default")
    finally:
        await reader.aclose()
    assert "PLANTED" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


async def test_an_unknown_redis_url_parameter_is_an_invalid_url_not_a_crash() -> None:
    reader = QueueDepthReader()
    try:
        with pytest.raises(QueueDepthUnavailable, match=r"Redis URL in spec\.redis\.urlSecretRef is not valid"):
            await reader.depth("redis://127.0.0.1:1/0?token=PLANTED-T", "default")
    finally:
        await reader.aclose()
