"""`ragplatform dev`: the whole platform on one machine, in one process, on embedded backends.

Each service still runs its own gRPC server on its own port and talks to the others over gRPC,
exactly as in a cluster; only the process is shared. A development API key for tenant `dev` is
created on first start and kept in the data directory, where `ragplatform ingest/ask` find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.core.logging import configure_logging
from ragplatform.core.redaction import redact_text
from ragplatform.core.server import RunningService, start_service
from ragplatform.core.settings import CommonSettings, SettingsError, StoreSettings, load_settings
from ragplatform.core.tracing import TracingConfigError, configure_tracing
from ragplatform.domain.errors import RagError
from ragplatform.services_registry import app_builder, settings_class

DEV_TENANT = "dev"
DEV_KEY_FILE = "dev-api-key"
INTERNAL_TOKEN_FILE = "internal-token"
# Start order: backends before their callers.
ORDER = ("retrieval", "generation", "conversation", "ingestion", "ingestion-worker", "gateway")
OFFSETS = {
    "gateway": 0,
    "ingestion": 1,
    "retrieval": 2,
    "generation": 3,
    "conversation": 4,
    "ingestion-worker": 5,
}


class ServiceFailed(Exception):
    """A service of the dev platform stopped working; the platform stops and exits non-zero."""


def dev_overrides(service: str, data_dir: Path, port_base: int, metrics_base: int) -> dict[str, Any]:
    """Settings for one service of the dev platform (environment variables still apply to the rest)."""
    address = {name: f"127.0.0.1:{port_base + offset}" for name, offset in OFFSETS.items()}
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "grpc_host": "127.0.0.1",
        "grpc_port": port_base + OFFSETS[service],
        "metrics_port": metrics_base + OFFSETS[service] if metrics_base else 0,
        "metrics_enabled": bool(metrics_base),
        "grace_period_seconds": 5.0,
    }
    fields = settings_class(service).model_fields
    for upstream in ("ingestion", "retrieval", "generation", "conversation"):
        if f"{upstream}_addr" in fields:
            overrides[f"{upstream}_addr"] = address[upstream]
    return overrides


def ensure_internal_token(data_dir: Path) -> str:
    """The token the dev services authenticate each other with: RAG_INTERNAL_TOKEN when set, else
    one generated on first start and kept (mode 0600) in the data directory, so page tokens stay
    valid across restarts."""
    configured = load_settings(CommonSettings, data_dir=data_dir).internal_token
    if configured is not None:
        return configured.get_secret_value()
    path = data_dir / INTERNAL_TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


async def ensure_dev_key(data_dir: Path) -> str:
    """The dev tenant's API key: read from the data directory, or created there on first start."""
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    store = await open_store(load_settings(StoreSettings, data_dir=data_dir))
    try:
        key = generate_api_key()
        await store.create_api_key(DEV_TENANT, "ragplatform dev", hash_api_key(key))
    finally:
        await store.close()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


async def run_dev(data_dir: Path, port_base: int, metrics_base: int, console: Console) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    key = await ensure_dev_key(data_dir)
    internal_token = ensure_internal_token(data_dir)
    running: list[RunningService] = []
    try:
        for service in ORDER:
            settings = load_settings(
                settings_class(service),
                **dev_overrides(service, data_dir, port_base, metrics_base),
                internal_token=internal_token,
            )
            running.append(await start_service(app_builder(service)(settings), settings))
        table = Table(title="RagPlatform dev: embedded backends, one process")
        table.add_column("service")
        table.add_column("gRPC")
        table.add_column("metrics")
        for item in sorted(running, key=lambda r: OFFSETS[r.app.name]):
            table.add_row(
                item.app.name,
                item.address,
                f"http://127.0.0.1:{item.metrics_port}/metrics" if item.metrics_port else "-",
            )
        console.print(table)
        console.print(f"data directory: {data_dir.resolve()}")
        console.print(f"API key (tenant '{DEV_TENANT}'): {key}  (also in {data_dir / DEV_KEY_FILE})")
        console.print('try:  ragplatform ingest tests/fixtures/docs/corpus   then   ragplatform ask "..."')
        console.print("Ctrl-C stops it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # Stop on Ctrl-C, or as soon as one service fails: a platform with a dead part must not
        # sit there with its ports bound.
        stopped = asyncio.ensure_future(stop.wait())
        watchers = [asyncio.ensure_future(r.failure()) for r in running]
        done, _ = await asyncio.wait([stopped, *watchers], return_when=asyncio.FIRST_COMPLETED)
        for watcher in (stopped, *watchers):
            watcher.cancel()
        failures = [w.result() for w in watchers if w in done]
        console.print("stopping ...")
        if failures:
            raise ServiceFailed("; ".join(failures))
    finally:
        for item in reversed(running):
            with contextlib.suppress(Exception):
                await item.stop(grace=5.0)


def dev(
    data_dir: Path = typer.Option(
        Path(".ragplatform"), envvar="RAG_DATA_DIR", help="Where the embedded backends keep their files."
    ),
    port_base: int = typer.Option(50051, help="Gateway port; the other services take the next five."),
    metrics_base: int = typer.Option(9464, help="First Prometheus port (0 turns metrics off)."),
    log_format: str = typer.Option("console", help="console or json."),
) -> None:
    """Run the whole platform on this machine (embedded backends, no servers to install)."""
    console = Console()
    try:
        tracing = configure_tracing("dev")
    except TracingConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(os.environ.get("RAG_LOG_LEVEL", "info"), log_format, trace_ids=tracing)
    try:
        asyncio.run(run_dev(data_dir, port_base, metrics_base, console))
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except (RagError, OSError) as exc:
        console.print(f"[red]error:[/red] {redact_text(getattr(exc, 'message', str(exc)))}")
        raise typer.Exit(1) from None
    except ServiceFailed as exc:
        console.print(f"[red]error:[/red] a service failed, so the platform stopped: {exc}")
        raise typer.Exit(1) from None
