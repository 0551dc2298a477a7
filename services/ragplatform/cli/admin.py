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
from ragplatform.core.settings import QueueSettings, SettingsError, StoreSettings, load_settings
from ragplatform.domain.errors import RagError

console = Console()
T = TypeVar("T")
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once, at creation).", no_args_is_help=True)

DATA_DIR_OPTION = typer.Option(
    None, "--data-dir", help="Embedded backends' directory (default: RAG_DATA_DIR or ./.ragplatform)."
)


def _overrides(data_dir: Path | None) -> dict[str, object]:
    return {"data_dir": data_dir} if data_dir else {}


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except RagError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


@keys_app.command("create")
def create_key(
    tenant: str = typer.Option(..., "--tenant", help="Tenant the key acts for."),
    name: str = typer.Option("", help="A label to recognise the key by."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Create an API key for a tenant and print it (only its hash is stored)."""
    if not tenant.strip():
        console.print("[red]error:[/red] --tenant must not be empty")
        raise typer.Exit(2)

    async def main() -> tuple[str, str]:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            key = generate_api_key()
            record = await store.create_api_key(tenant.strip(), name or f"key for {tenant}", hash_api_key(key))
            return key, record.key_id
        finally:
            await store.close()

    key, key_id = _run(main())
    console.print(f"API key {key_id} for tenant {tenant!r} (shown once, store it now):")
    print(key)


@keys_app.command("list")
def list_keys(
    tenant: str = typer.Option("", help="Only this tenant's keys."), data_dir: Path | None = DATA_DIR_OPTION
) -> None:
    """List API keys (ids and tenants; never the keys)."""

    async def main() -> None:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            for k in await store.list_api_keys(tenant or None):
                console.print(
                    f"{k.key_id}  tenant={k.tenant_id}  name={k.name!r}  {'REVOKED' if k.revoked else 'active'}"
                )
        finally:
            await store.close()

    _run(main())


@keys_app.command("revoke")
def revoke_key(key_id: str = typer.Argument(...), data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Revoke an API key (gateways stop accepting it within 30 s)."""

    async def main() -> None:
        store = await open_store(load_settings(StoreSettings, **_overrides(data_dir)))
        try:
            await store.revoke_api_key(key_id)
        finally:
            await store.close()

    _run(main())
    console.print(f"revoked {key_id}")


def migrate(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Apply the store's schema migrations (RAG_STORE_URL) and exit."""

    async def main() -> None:
        store = await open_store(load_settings(StoreSettings, store_migrate=True, **_overrides(data_dir)))
        await store.close()

    _run(main())
    console.print("schema is up to date")


def replay(data_dir: Path | None = DATA_DIR_OPTION) -> None:
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

    count = _run(main())
    console.print(f"replayed {count} job(s)")
