"""`ragplatform serve SERVICE`: one service per process, configured from RAG_* variables."""

from __future__ import annotations

import typer

from ragplatform.core.event_loop import run
from ragplatform.core.logging import configure_logging, get_logger
from ragplatform.core.redaction import redact_text
from ragplatform.core.server import serve as serve_app
from ragplatform.core.settings import SERVICE_NAMES, SettingsError, load_settings
from ragplatform.core.tracing import TracingConfigError, configure_tracing
from ragplatform.domain.errors import RagError
from ragplatform.services_registry import app_builder, settings_class

log = get_logger("ragplatform.serve")


def serve(
    service: str = typer.Argument(..., help=f"One of: {', '.join(SERVICE_NAMES)}."),
) -> None:
    """Run one service until SIGTERM/SIGINT (then drain in-flight calls and stop)."""
    if service not in SERVICE_NAMES:
        typer.echo(f"error: unknown service {service!r}; choose one of: {', '.join(SERVICE_NAMES)}", err=True)
        raise typer.Exit(2)
    try:
        settings = load_settings(settings_class(service))
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        tracing = configure_tracing(service)
    except TracingConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format, service=service, trace_ids=tracing)
    app = app_builder(service)(settings)
    try:
        run(serve_app(app, settings), settings.event_loop)
    except SettingsError as exc:  # e.g. no internal token
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (RagError, OSError) as exc:
        typer.echo(f"error: {service} could not start: {redact_text(getattr(exc, 'message', str(exc)))}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        # Not ours to explain (a library rejected a setting): the traceback goes to the log,
        # redacted like every line, instead of Python printing it with the URL's password.
        log.exception("could not start", service=service)
        typer.echo(f"error: {service} could not start: {redact_text(f'{type(exc).__name__}: {exc}')}", err=True)
        raise typer.Exit(1) from None
