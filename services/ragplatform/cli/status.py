"""`ragplatform status`: each service's health and version, and the local data directory.

Addresses default to the layout `ragplatform dev` uses (the gateway's port, the other services
on the next ports); `--service NAME=HOST:PORT` points at any other (e.g. a `kubectl port-forward`).
Health is the standard gRPC health check; the version comes from the metadata each service's
health answer carries (see `ragplatform.core.health`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from ragplatform.cli.dev import DEV_KEY_FILE, OFFSETS, ORDER
from ragplatform.cli.exit_codes import ExitCode
from ragplatform.cli.key_values import parse_pairs
from ragplatform.cli.output import JSON_OPTION, print_json
from ragplatform.core.health import SERVICE_KEY, VERSION_KEY

UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    address: str
    health: str  # SERVING, NOT_SERVING, UNKNOWN, UNREACHABLE
    version: str
    detail: str


def dev_addresses(gateway: str) -> dict[str, str]:
    """Every service's address in the `ragplatform dev` layout around the gateway's address."""
    host, _, port = gateway.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"--gateway {gateway!r} is not HOST:PORT")
    return {name: f"{host}:{int(port) + offset}" for name, offset in sorted(OFFSETS.items(), key=lambda i: i[1])}


async def check(service: str, address: str, timeout: float) -> ServiceStatus:
    async with grpc.aio.insecure_channel(address) as channel:
        call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        try:
            reply = await call
            metadata = dict(await call.initial_metadata() or ())
        except grpc.aio.AioRpcError as exc:
            return ServiceStatus(service, address, UNREACHABLE, "", _why(exc))
    answered_by = str(metadata.get(SERVICE_KEY, ""))
    detail = f"answered as {answered_by!r}" if answered_by and answered_by != service else ""
    health = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return ServiceStatus(service, address, health, str(metadata.get(VERSION_KEY, "")), detail)


def _why(exc: grpc.aio.AioRpcError) -> str:
    """One line a person can act on (the full gRPC detail is long and says the same)."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return "nothing answers there"
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer within --timeout"
    return f"{exc.code().name}: {exc.details()}"


async def check_all(addresses: dict[str, str], timeout: float) -> list[ServiceStatus]:
    return list(await asyncio.gather(*(check(name, addr, timeout) for name, addr in addresses.items())))


def status(
    gateway: str = typer.Option("127.0.0.1:50051", "--gateway", envvar="RAG_GATEWAY", help="Gateway host:port."),
    service: list[str] = typer.Option(
        [], "--service", help="NAME=HOST:PORT for a service not at its dev address (repeatable)."
    ),
    data_dir: Path = typer.Option(
        Path(".ragplatform"), "--data-dir", envvar="RAG_DATA_DIR", help="The embedded backends' directory."
    ),
    timeout: float = typer.Option(2.0, help="Seconds to wait for each health check."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Each service's health and version, and the data directory. Exits 1 unless all are SERVING."""
    addresses = dev_addresses(gateway)
    overrides = parse_pairs(service, "--service")
    if unknown := set(overrides) - set(addresses):
        raise typer.BadParameter(f"unknown service(s) {sorted(unknown)}; choose from {', '.join(ORDER)}")
    addresses.update(overrides)
    results = asyncio.run(check_all(addresses, timeout))
    directory = {
        "path": str(data_dir.resolve()),
        "exists": data_dir.is_dir(),
        "dev_api_key": (data_dir / DEV_KEY_FILE).is_file(),
    }
    healthy = all(r.health == "SERVING" for r in results)
    if json_output:
        print_json({"healthy": healthy, "services": [asdict(r) for r in results], "data_dir": directory})
    else:
        table = Table()
        for column in ("service", "address", "health", "version", "detail"):
            table.add_column(column)
        for r in results:
            shown = r.health if r.health == "SERVING" else f"[red]{r.health}[/red]"
            table.add_row(r.service, r.address, shown, r.version or "-", r.detail)
        console = Console()
        console.print(table)
        state = "" if directory["exists"] else " (does not exist)"
        key = ", dev API key present" if directory["dev_api_key"] else ""
        if any(r.health == UNREACHABLE for r in results):
            console.print(
                "unreachable: start the platform (`ragplatform dev`) or give a service's address with "
                "--service NAME=HOST:PORT",
                highlight=False,
            )
        console.print(f"data directory: {directory['path']}{state}{key}", highlight=False)
    if not healthy:
        raise typer.Exit(ExitCode.FAILED)
