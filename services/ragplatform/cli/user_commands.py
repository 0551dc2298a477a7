"""Commands that talk to a running gateway: ingest, ask, search, jobs, docs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragplatform.cli import admin
from ragplatform.cli.dev import DEV_KEY_FILE
from ragplatform.cli.exit_codes import ExitCode, exit_code_for
from ragplatform.cli.key_values import parse_pairs
from ragplatform.cli.output import JSON_OPTION, message_dict, print_json, print_json_error
from ragplatform.client import DEFAULT_RATE_LIMIT_RETRIES, TERMINAL_STATES, GatewayClient, job_state_name
from ragplatform.v1 import common_pb2

console = Console()
err_console = Console(stderr=True)
jobs_app = typer.Typer(help="Ingestion jobs.", no_args_is_help=False, invoke_without_command=True)
docs_app = typer.Typer(help="Documents.", invoke_without_command=True)
T = TypeVar("T")

GATEWAY_OPTION = typer.Option("127.0.0.1:50051", "--gateway", envvar="RAG_GATEWAY", help="Gateway host:port.")
KEY_OPTION = typer.Option(
    "", "--api-key", envvar="RAG_API_KEY", help="API key (default: the dev key in ./.ragplatform)."
)
FILTER_HELP = "Only passages of documents labelled KEY=VALUE (repeatable; all must match)."


def fail(message: str, code: ExitCode, json_output: bool, status: str = "USAGE") -> typer.Exit:
    """Report an error (as JSON on stderr under --json) and return the Exit to raise."""
    if json_output:
        print_json_error(status, message)
    else:
        err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def resolve_api_key(api_key: str, json_output: bool = False) -> str:
    if api_key:
        return api_key
    dev_key = Path(".ragplatform") / DEV_KEY_FILE
    if dev_key.exists():
        return dev_key.read_text().strip()
    raise fail(
        "no API key: pass --api-key or set RAG_API_KEY (create one with `ragplatform keys create --tenant NAME`)",
        ExitCode.USAGE,
        json_output,
    )


def run_client(
    gateway: str,
    api_key: str,
    action: Callable[[GatewayClient], Awaitable[T]],
    json_output: bool = False,
    rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
) -> T:
    key = resolve_api_key(api_key, json_output)

    async def main() -> T:
        async with GatewayClient(gateway, key, rate_limit_retries=rate_limit_retries) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        hint = " (is `ragplatform dev` running?)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        raise fail(
            f"{exc.code().name}: {exc.details()}{hint}", exit_code_for(exc.code()), json_output, exc.code().name
        ) from None


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def collect_files(paths: list[Path], json_output: bool = False) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise fail(f"{path} does not exist", ExitCode.USAGE, json_output)
    return files


FAILED_STATES = ("FAILED", "REJECTED", "TIMED OUT")


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders (folders are read recursively)."),
    wait: bool = typer.Option(True, help="Wait for the jobs to finish and print a summary."),
    label: list[str] = typer.Option([], "--label", help="Metadata label KEY=VALUE (repeatable)."),
    timeout: float = typer.Option(600.0, help="Seconds to wait for the jobs."),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Upload documents and wait until they are searchable."""
    files = collect_files(paths, json_output)
    labels = parse_pairs(label, "--label")

    async def action(client: GatewayClient) -> int:
        rows: list[tuple[str, str, str]] = []  # (file, state, detail)
        jobs: dict[str, str] = {}
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=json_output,
        ) as progress:
            task = progress.add_task("uploading", total=len(files))
            for path in files:
                try:
                    reply = await client.ingest_file(path, labels)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        raise
                    rows.append((display_path(path), "REJECTED", f"{exc.code().name}: {exc.details()}"))
                else:
                    if reply.deduplicated and reply.job.state == common_pb2.JOB_STATE_SUCCEEDED:
                        rows.append((display_path(path), "UNCHANGED", "already ingested"))
                    else:
                        jobs[reply.job.job_id] = display_path(path)
                progress.advance(task)
            if wait and jobs:
                wait_task = progress.add_task("ingesting", total=len(jobs))
                pending = dict(jobs)
                deadline = time.monotonic() + timeout
                while pending and time.monotonic() < deadline:
                    found = await client.find_jobs(set(pending))
                    for job_id in list(pending):
                        job = found.get(job_id)
                        if job is None:  # deleted while we waited (its document was deleted)
                            rows.append((pending.pop(job_id), "FAILED", "the job no longer exists"))
                            progress.advance(wait_task)
                        elif job.state in TERMINAL_STATES:
                            ok = job.state == common_pb2.JOB_STATE_SUCCEEDED
                            rows.append(
                                (
                                    pending.pop(job_id),
                                    job_state_name(job.state),
                                    f"{job.chunks_done} chunks" if ok else job.error,
                                )
                            )
                            progress.advance(wait_task)
                    if pending:
                        await asyncio.sleep(0.5)
                rows.extend((path, "TIMED OUT", f"job {job_id} still running") for job_id, path in pending.items())
            elif jobs:
                rows.extend((path, "QUEUED", f"job {job_id}") for job_id, path in jobs.items())
        failed = sum(state in FAILED_STATES for _file, state, _detail in rows)
        if json_output:
            files_out = [{"file": file, "state": state, "detail": detail} for file, state, detail in rows]
            print_json({"files": files_out, "ok": len(rows) - failed, "failed": failed})
            return failed
        table = Table(title="ingest summary")
        for column in ("file", "state", "detail"):
            table.add_column(column)
        for file, state, detail in rows:
            table.add_row(file, f"[red]{state}[/red]" if state in FAILED_STATES else state, detail)
        console.print(table)
        console.print(f"{len(rows) - failed} ok, {failed} failed")
        return failed

    failed = run_client(gateway, api_key, action, json_output)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def ask(
    question: str = typer.Argument(..., help="The question."),
    conversation: str = typer.Option("", help="Continue this conversation id."),
    top_k: int = typer.Option(0, help="Passages to retrieve (0: the platform default)."),
    filter_: list[str] = typer.Option([], "--filter", help=FILTER_HELP),
    timeout: float = typer.Option(120.0, help="Deadline in seconds."),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Ask a question: the answer streams, then its citations.

    With --json, one JSON object per line as the answer streams: {"sources": ...}, then
    {"delta": "..."} pieces, then {"done": ...} with citations, usage and the conversation id."""
    filters = parse_pairs(filter_, "--filter")

    async def action(client: GatewayClient) -> None:
        stream = client.ask(question, conversation_id=conversation, top_k=top_k, filters=filters, timeout=timeout)
        async for message in stream:
            if json_output:
                print_json(message_dict(message))
                continue
            kind = message.WhichOneof("event")
            if kind == "delta":
                console.print(message.delta, end="", soft_wrap=True, highlight=False, markup=False)
            elif kind == "done":
                done = message.done
                console.print()
                if done.citations:
                    console.print("\n[bold]Citations[/bold]")
                    for c in done.citations:
                        inferred = ", inferred from the wording" if c.inferred else ""
                        console.print(f"  [{c.index}] {c.filename}  (score {c.score:.2f}{inferred})", markup=False)
                console.print(
                    f"\nmodel {done.model}{' (extractive)' if done.extractive else ''}"
                    f"{' · cached' if done.cached else ''} · tokens {done.usage.total_tokens}"
                    f" · conversation {done.conversation_id}",
                    style="dim",
                )
                if done.query_rewriter:
                    console.print(f"searched for: {done.search_query} ({done.query_rewriter} rewrite)", style="dim")

    run_client(gateway, api_key, action, json_output)


def search(
    query: str = typer.Argument(..., help="The query."),
    top_k: int = typer.Option(5, help="Passages to return."),
    filter_: list[str] = typer.Option([], "--filter", help=FILTER_HELP),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Search passages without generating an answer."""
    filters = parse_pairs(filter_, "--filter")
    reply = run_client(gateway, api_key, lambda c: c.search(query, top_k, filters), json_output)
    if json_output:
        print_json(message_dict(reply))
        return
    for p in reply.passages:
        console.print(f"[bold]{p.score:.3f}[/bold] {p.filename} #{p.chunk_index}: {p.text[:200]}", markup=True)


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    state: str = typer.Option("", help="Only QUEUED, RUNNING, SUCCEEDED or FAILED."),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """List ingestion jobs, newest first."""
    if ctx.invoked_subcommand:
        return
    wanted = common_pb2.JOB_STATE_UNSPECIFIED
    if state:
        try:
            wanted = common_pb2.JobState.Value(f"JOB_STATE_{state.upper()}")
        except ValueError:
            raise fail("--state must be QUEUED, RUNNING, SUCCEEDED or FAILED", ExitCode.USAGE, json_output) from None
    reply = run_client(gateway, api_key, lambda c: c.list_jobs(wanted), json_output)
    if json_output:
        print_json(message_dict(reply))
        return
    table = Table()
    for column in ("job", "file", "state", "progress", "attempts", "error"):
        table.add_column(column)
    for j in reply.jobs:
        table.add_row(
            j.job_id,
            j.filename,
            job_state_name(j.state),
            f"{j.chunks_done}/{j.chunks_total}",
            str(j.attempts),
            j.error,
        )
    console.print(table)


jobs_app.command("replay")(admin.replay)


@docs_app.callback()
def docs(
    ctx: typer.Context, gateway: str = GATEWAY_OPTION, api_key: str = KEY_OPTION, json_output: bool = JSON_OPTION
) -> None:
    """List documents, newest first."""
    if ctx.invoked_subcommand:
        return
    reply = run_client(gateway, api_key, lambda c: c.list_documents(), json_output)
    if json_output:
        print_json(message_dict(reply))
        return
    table = Table()
    for column in ("document", "file", "type", "bytes", "chunks"):
        table.add_column(column)
    for d in reply.documents:
        table.add_row(d.document_id, d.filename, d.content_type, str(d.size_bytes), str(d.chunk_count))
    console.print(table)


@docs_app.command("delete")
def delete_doc(
    document_id: str = typer.Argument(...),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Delete a document and its chunks."""
    reply = run_client(gateway, api_key, lambda c: c.delete_document(document_id), json_output)
    if json_output:
        print_json(message_dict(reply))
        return
    console.print(f"deleted {reply.document.filename} ({reply.document.document_id})")
