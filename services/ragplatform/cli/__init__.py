"""The `ragplatform` command: run the platform, talk to it, administer it."""

from __future__ import annotations

import typer

from ragplatform.cli import admin, dev, serve
from ragplatform.cli import user_commands as client

app = typer.Typer(
    help="RagPlatform: retrieval-augmented generation as gRPC services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("dev")(dev.dev)
app.command("serve")(serve.serve)
app.command("ingest")(client.ingest)
app.command("ask")(client.ask)
app.command("search")(client.search)
app.add_typer(client.jobs_app, name="jobs")
app.add_typer(client.docs_app, name="docs")
app.add_typer(admin.keys_app, name="keys")
app.command("migrate")(admin.migrate)


def main() -> None:
    app()
