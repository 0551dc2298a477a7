"""The `ragplatform-operator` command itself: kubeconfig login, liveness, JSON logs, SIGTERM.

It runs as a separate process against the API emulator (cluster-wide, as the chart's default),
so this also proves the kopf settings main() applies and that it stops cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.operator.behaviour.emulator import ApiServerEmulator
from tests.operator.behaviour.harness import Cluster, eventually, free_port, minimal_platform

COMMAND = Path(sys.executable).parent / "ragplatform-operator"


def write_kubeconfig(path: Path, server: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def test_the_command_runs_the_operator_and_stops_on_sigterm(emulator: ApiServerEmulator, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, str(emulator.url))
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "RAGPLATFORM_OPERATOR_LIVENESS_ENDPOINT": liveness,
        "RAGPLATFORM_OPERATOR_LOG_FORMAT": "json",
        "RAGPLATFORM_OPERATOR_RECONCILE_INTERVAL_SECONDS": "2",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)  # never the in-cluster config, even inside a pod
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        # Popen returns at once (it does not wait for the process), so it does not block the loop.
        process = subprocess.Popen([str(COMMAND)], env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            await eventually(lambda: asyncio.to_thread(healthy, liveness), timeout=30, what="/healthz")
            cluster = Cluster(emulator)
            await cluster.create_platform(minimal_platform())
            await eventually(lambda: cluster.get("apps/v1/deployments", "demo-workers"), what="children")
            await eventually(lambda: cluster.condition("Ready"), what="status")
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(process.wait, 30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    assert exit_code == 0, "\n".join(lines[-20:])
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("message" in record for record in records)
    # A clean stop: no traceback (kopf's watch streams closing at exit used to log one each).
    tracebacks = [line[:300] for line in lines if "Traceback" in line or "athrow" in line]
    assert tracebacks == []


async def test_without_credentials_the_command_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    result = await asyncio.to_thread(
        subprocess.run, [str(COMMAND)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "no Kubernetes credentials" in result.stderr
    assert "kubeconfig" in result.stderr


async def test_bad_configuration_is_refused_with_the_variable_named(tmp_path: Path) -> None:
    env = {**os.environ, "RAGPLATFORM_OPERATOR_RECONCILE_INTERVAL_SECONDS": "-1"}
    result = await asyncio.to_thread(
        subprocess.run, [str(COMMAND)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "RAGPLATFORM_OPERATOR_" in result.stderr
    assert "reconcile_interval_seconds" in result.stderr
