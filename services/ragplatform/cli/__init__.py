"""The `ragplatform` command: run the platform, talk to it, administer it."""

from __future__ import annotations

import typer

from ragplatform.cli import admin, dev, eval_command, serve, status
from ragplatform.cli import user_commands as client
from ragplatform.cli.exit_codes import EXIT_CODES_HELP

app = typer.Typer(
    help="RagPlatform: retrieval-augmented generation as gRPC services.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("dev")(dev.dev)
app.command("serve")(serve.serve)
app.command("status", epilog=EXIT_CODES_HELP)(status.status)
app.command("ingest", epilog=EXIT_CODES_HELP)(client.ingest)
app.command("ask", epilog=EXIT_CODES_HELP)(client.ask)
app.command("search", epilog=EXIT_CODES_HELP)(client.search)
app.command("eval", epilog=EXIT_CODES_HELP)(eval_command.eval_command)
app.add_typer(client.jobs_app, name="jobs", epilog=EXIT_CODES_HELP)
app.add_typer(client.docs_app, name="docs", epilog=EXIT_CODES_HELP)
app.add_typer(admin.keys_app, name="keys", epilog=EXIT_CODES_HELP)
app.command("migrate", epilog=EXIT_CODES_HELP)(admin.migrate)


def main() -> None:
    app()
