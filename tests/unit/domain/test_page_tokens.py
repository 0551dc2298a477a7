"""Page tokens: sealed store cursors that cannot be forged, edited or replayed elsewhere."""

from __future__ import annotations

import base64

import pytest

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Page
from ragplatform.domain.page_tokens import MAX_TOKEN_CHARS, PageTokens, page_token_key

TOKENS = PageTokens(page_token_key("shared-internal-token"))
CURSOR = "WzEsMTcwMDAwMDAwMDAwMDAwMCwiam9iLTEiXQ"


def test_a_sealed_cursor_opens_to_itself_in_its_scope() -> None:
    token = TOKENS.seal(CURSOR, "jobs/acme")
    assert token != CURSOR
    assert TOKENS.open(token, "jobs/acme") == CURSOR


def test_empty_means_first_and_last_page() -> None:
    assert TOKENS.seal("", "jobs/acme") == ""
    assert TOKENS.open("", "jobs/acme") == ""


def test_replicas_sharing_the_secret_accept_each_others_tokens() -> None:
    other_replica = PageTokens(page_token_key("shared-internal-token"))
    assert other_replica.open(TOKENS.seal(CURSOR, "jobs/acme"), "jobs/acme") == CURSOR


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="edited"),
        pytest.param(lambda t: TOKENS.seal(CURSOR, "jobs/other-tenant"), id="other tenant"),
        pytest.param(lambda t: TOKENS.seal(CURSOR, "documents/acme"), id="other listing"),
        pytest.param(lambda t: PageTokens(page_token_key("another-secret")).seal(CURSOR, "jobs/acme"), id="other key"),
        pytest.param(lambda t: PageTokens(page_token_key(None)).seal(CURSOR, "jobs/acme"), id="random key"),
        pytest.param(lambda t: CURSOR, id="raw store cursor"),
        pytest.param(lambda t: "not base64 at all!", id="not base64"),
        pytest.param(lambda t: "A", id="one char"),
        pytest.param(lambda t: base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode(), id="deeply nested JSON"),
        pytest.param(lambda t: "A" * (MAX_TOKEN_CHARS + 1), id="too long"),
    ],
)
def test_a_token_not_sealed_for_this_scope_and_key_is_invalid_argument(forge: object) -> None:
    token = TOKENS.seal(CURSOR, "jobs/acme")
    with pytest.raises(InvalidArgument, match="start again with an empty page_token"):
        TOKENS.open(forge(token), "jobs/acme")  # type: ignore[operator]


async def test_page_opens_the_token_and_seals_the_next_cursor() -> None:
    seen: list[str] = []

    async def fetch(cursor: str) -> Page[int]:
        seen.append(cursor)
        return Page([1, 2], next_cursor="next-cursor")

    first = await TOKENS.page("", "jobs/acme", fetch)
    second = await TOKENS.page(first.next_cursor, "jobs/acme", fetch)
    assert seen == ["", "next-cursor"]
    assert first.items == [1, 2]
    assert second.next_cursor != "next-cursor"
    assert TOKENS.open(second.next_cursor, "jobs/acme") == "next-cursor"
