"""Administrative commands that reach the backends directly (run where the store is reachable,
e.g. `kubectl exec` into a gateway pod): API keys, migrations, dead-letter replay."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.cli.exit_codes import ExitCode
from ragplatform.cli.output import JSON_OPTION, print_json, print_json_error
from ragplatform.core.redaction import redact_text
from ragplatform.core.settings import QueueSettings, SettingsError, StoreSettings, load_settings
from ragplatform.domain.errors import RagError
from ragplatform.domain.models import ApiKey

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once, at creation).", no_args_is_help=True)

DATA_DIR_OPTION = typer.Option(
    None, "--data-dir", help="Embedded backends' directory (default: RAG_DATA_DIR or ./.ragplatform)."
)


def _overrides(data_dir: Path | None) -> dict[str, object]:
    return {"data_dir": data_dir} if data_dir else {}


def _error(message: str, code: ExitCode, json_output: bool) -> typer.Exit:
    message = redact_text(message)
    if json_output:
        print_json_error(code.name, message)
    else:
        err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _run(coro: Coroutine[Any, Any, T], json_output: bool = False) -> T:
    try:
        return asyncio.run(coro)
    except SettingsError as exc:
        raise _error(str(exc), ExitCode.USAGE, json_output) from None
    except RagError as exc:
        raise _error(exc.message, ExitCode.FAILED, json_output) from None


@keys_app.command("create")
def create_key(
    tenant: str = typer.Option(..., "--tenant", help="Tenant the key acts for."),
    name: str = typer.Option("", help="A label to recognise the key by."),
    data_dir: Path | None = DATA_DIR_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Create an API key for a tenant and print it (only its hash is stored)."""
    if not tenant.strip():
        raise _error("--tenant must not be empty", ExitCode.USAGE, json_output)

    async def main() -> tuple[str, str]:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            key = generate_api_key()
            record = await store.create_api_key(tenant.strip(), name or f"key for {tenant}", hash_api_key(key))
            return key, record.key_id
        finally:
            await store.close()

    key, key_id = _run(main(), json_output)
    if json_output:
        print_json({"key_id": key_id, "tenant": tenant.strip(), "api_key": key})
        return
    console.print(f"API key {key_id} for tenant {tenant!r} (shown once, store it now):")
    print(key)


@keys_app.command("list")
def list_keys(
    tenant: str = typer.Option("", help="Only this tenant's keys."),
    data_dir: Path | None = DATA_DIR_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """List API keys (ids and tenants; never the keys)."""

    async def main() -> list[ApiKey]:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            return list(await store.list_api_keys(tenant or None))
        finally:
            await store.close()

    keys = _run(main(), json_output)
    if json_output:
        print_json(
            {"keys": [{"key_id": k.key_id, "tenant": k.tenant_id, "name": k.name, "revoked": k.revoked} for k in keys]}
        )
        return
    for k in keys:
        console.print(f"{k.key_id}  tenant={k.tenant_id}  name={k.name!r}  {'REVOKED' if k.revoked else 'active'}")


@keys_app.command("revoke")
def revoke_key(
    key_id: str = typer.Argument(...), data_dir: Path | None = DATA_DIR_OPTION, json_output: bool = JSON_OPTION
) -> None:
    """Revoke an API key (every gateway stops accepting it within a second)."""

    async def main() -> None:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            await store.revoke_api_key(key_id)
        finally:
            await store.close()

    _run(main(), json_output)
    if json_output:
        print_json({"revoked": key_id})
        return
    console.print(f"revoked {key_id}")


def migrate(data_dir: Path | None = DATA_DIR_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Apply the store's schema migrations (RAG_STORE_URL) and exit."""

    async def main() -> None:
        store = await open_store(load_settings(StoreSettings, store_migrate=True, **_overrides(data_dir)))
        await store.close()

    _run(main(), json_output)
    if json_output:
        print_json({"schema": "up to date"})
        return
    console.print("schema is up to date")


def replay(data_dir: Path | None = DATA_DIR_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Re-enqueue every dead-lettered ingestion job (after fixing what made them fail)."""

    async def main() -> int:
        settings = load_settings(QueueSettings, **_overrides(data_dir))
        store = await open_store(settings)
        queue = await open_queue(settings)
        try:
            for message, _reason in await queue.dead_letters():
                await store.requeue_job(message.job_id, "replayed from the dead-letter queue")
            return await queue.replay_dead_letters()
        finally:
            await queue.close()
            await store.close()

    count = _run(main(), json_output)
    if json_output:
        print_json({"replayed": count})
        return
    console.print(f"replayed {count} job(s)")
