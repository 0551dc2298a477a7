"""The conversation rules both writers apply (the conversation service and the gateway)."""

from __future__ import annotations

import pytest

from ragplatform.domain.conversation_rules import (
    MAX_TITLE_CHARS,
    MAX_TURN_CHARS,
    check_turns,
    conversation_title,
    require_tenant,
)
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Role, Turn


def test_a_title_has_its_whitespace_collapsed_and_is_cut_with_an_ellipsis() -> None:
    assert conversation_title("  Where\n is   the pump? ") == "Where is the pump?"
    long = conversation_title("word " * 100)
    assert len(long) == MAX_TITLE_CHARS
    assert long.endswith("…")


def test_a_blank_title_becomes_untitled() -> None:
    assert conversation_title(" \t\n") == "Untitled"


def test_no_turns_or_an_over_long_turn_is_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidArgument, match="turns must not be empty"):
        check_turns([])
    with pytest.raises(InvalidArgument, match="shorten it"):
        check_turns([Turn(role=Role.USER, content="x" * (MAX_TURN_CHARS + 1))])
    check_turns([Turn(role=Role.USER, content="x" * MAX_TURN_CHARS)])


def test_a_tenant_is_required() -> None:
    with pytest.raises(InvalidArgument, match="tenant_id is required"):
        require_tenant("")
    assert require_tenant("acme") == "acme"
