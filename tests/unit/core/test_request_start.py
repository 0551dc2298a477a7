"""x-request-start stamps, in the forms proxies and clients write them."""

from __future__ import annotations

import pytest

from ragplatform.core.request_start import parse_request_start, request_age_seconds, request_start_value

NOW = 1_800_000_000.25


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("t=1800000000.125", 1_800_000_000.125),  # nginx: seconds with milliseconds
        ("1800000000125", 1_800_000_000.125),  # Heroku: milliseconds
        ("t=1800000000125000", 1_800_000_000.125),  # microseconds
        (" t=1800000000 ", 1_800_000_000.0),
    ],
)
def test_seconds_milliseconds_and_microseconds_are_told_apart(value: str, expected: float) -> None:
    assert parse_request_start(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "t=", "soon", "t=-5", "nan", "inf", "0"])
def test_what_is_not_a_stamp_is_ignored(value: str) -> None:
    assert parse_request_start(value) is None
    assert request_age_seconds(value, NOW) is None


def test_the_age_is_the_time_since_the_stamp_and_never_negative() -> None:
    assert request_age_seconds(request_start_value(NOW - 0.5), NOW) == pytest.approx(0.5, abs=1e-6)
    assert request_age_seconds(request_start_value(NOW + 0.01), NOW) == 0.0  # clocks a little apart


def test_clocks_far_apart_give_no_age() -> None:
    assert request_age_seconds(request_start_value(NOW - 7200), NOW) is None
    assert request_age_seconds(request_start_value(NOW + 7200), NOW) is None
