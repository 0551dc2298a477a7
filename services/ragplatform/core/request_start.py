"""When a call began, as whoever sent it stamped it: the `x-request-start` header that proxies
(nginx `t=${msec}`, Heroku, Envoy configurations) and clients set, and APM tools read to show
"request queueing". The time between that stamp and a process picking the call up is the wait in
front of it — for a grpc.aio server mostly gRPC's own queue of calls not yet picked up, which no
interceptor can see otherwise.

Pure functions, no I/O. Accepted forms: `t=` optional, then seconds, milliseconds or microseconds
since the Unix epoch (told apart by magnitude, as New Relic does), with or without a fraction.
"""

from __future__ import annotations

import time

REQUEST_START_HEADER = "x-request-start"
# An age past this, or a stamp in the future past this, is a clock apart, not a queue.
MAX_PLAUSIBLE_AGE_SECONDS = 3600.0


def parse_request_start(value: str) -> float | None:
    """Seconds since the epoch of an `x-request-start` value, or None when it is not one."""
    text = value.strip()
    if text.startswith("t="):
        text = text[2:]
    try:
        stamp = float(text)
    except ValueError:
        return None
    if not 0 < stamp < float("inf"):  # also NaN
        return None
    if stamp > 1e14:  # microseconds
        return stamp / 1e6
    if stamp > 1e11:  # milliseconds
        return stamp / 1e3
    return stamp


def request_age_seconds(value: str, now: float) -> float | None:
    """How long ago (at `now`, seconds since the epoch) the call was stamped as begun; None when
    the value is not a stamp or implausible (clocks apart). A stamp slightly ahead counts as 0."""
    began = parse_request_start(value)
    if began is None:
        return None
    age = now - began
    if not -MAX_PLAUSIBLE_AGE_SECONDS < age < MAX_PLAUSIBLE_AGE_SECONDS:
        return None
    return max(0.0, age)


def request_start_value(now: float | None = None) -> str:
    """The header's value for a call beginning now (microseconds since the epoch, as `t=...`)."""
    return f"t={int((time.time() if now is None else now) * 1e6)}"
