"""Fuzz the gateway with N hypothesis cases (default 10,000) and print the count of every status.

The platform runs as separate processes on the embedded backends (as `ragplatform dev` would),
one fresh data directory per run. Every GatewayService method gets odd-valued requests, raw random
bytes and mixed upload streams, with valid, missing and wrong API keys (see
`tests/support/gateway_fuzz.py`). Exit status 1 when any call ended INTERNAL, UNKNOWN or
DEADLINE_EXCEEDED (no status before the deadline), a service logged a traceback, or the gateway
is not SERVING at the end.

    PYTHONPATH=services:operator python bench/fuzz_gateway.py [--examples 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.gateway_fuzz import FUZZ_ENV, Outcome, fuzz
from tests.support.platform_processes import PlatformProcesses


def _last_traceback(log: str) -> str:
    """The last log line mentioning a traceback, with what follows it (at most 40 lines)."""
    at = log.rfind("Traceback")
    if at < 0:
        return ""
    start = log.rfind("\n", 0, at) + 1
    return "\n".join(log[start:].splitlines()[:40])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()
    outcome = Outcome({}, [])
    with tempfile.TemporaryDirectory(prefix="ragplatform-fuzz-") as data_dir:
        processes = PlatformProcesses(Path(data_dir), extra_env=FUZZ_ENV)
        try:
            processes.start_all()
            key = processes.create_api_key("fuzz")
            started = time.monotonic()
            with grpc.insecure_channel(processes.gateway) as channel:
                fuzz(channel, key, args.examples, outcome, stop_at_first=False)
                serving = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            elapsed = time.monotonic() - started
            tracebacks = {s: _last_traceback(processes.log_text(s)) for s in processes.processes}
            tracebacks = {s: text for s, text in tracebacks.items() if text}
        finally:
            processes.stop_all()
    total = sum(outcome.counts.values())
    print(f"{total} calls in {elapsed:.0f} s ({total / elapsed:.0f}/s)")
    for code, count in sorted(outcome.counts.items(), key=lambda item: -item[1]):
        print(f"  {code:<20} {count:>7}")
    print(f"gateway health at the end: {health_pb2.HealthCheckResponse.ServingStatus.Name(serving.status)}")
    print(f"services that logged a traceback: {sorted(tracebacks) or 'none'}")
    for service, text in tracebacks.items():
        print(f"--- last traceback in the {service} log ---\n{text}")
    for case, code in outcome.broken[:20]:
        print(f"BROKEN {code.name}: {case}")
    ok = not outcome.broken and not tracebacks and serving.status == health_pb2.HealthCheckResponse.SERVING
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
