"""No planted secret reaches the operator's status, its Events or its logs (issue 10).

Secrets are planted in every URL the operator sees: the Redis URL in its Secret (the operator
reads it for the queue depth; Redis is unreachable, so the error is reported in status, as an
Event and in the log) and the spec's endpoint URLs (embedding, model, object storage, an
external vector store). The spec is also made invalid once, so its error message is written.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from tests.operator.behaviour.harness import Cluster, eventually, free_port, minimal_platform

PLANTED = "PLANTED-7f3a"


def _everything_written(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> str:
    status = json.dumps(cluster.platform().get("status") or {})
    events = json.dumps(cluster.events())
    # The operator's log (kopf's records included); not the emulator's own access log.
    logs = "\n".join(
        r.getMessage() + (r.exc_text or "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in caplog.records
        if not r.name.startswith(("aiohttp", "kmock"))
    )
    return "\n".join((status, events, logs))


async def test_planted_secrets_never_reach_status_events_or_logs(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed_port = free_port()  # nothing listens there: the queue cannot be read
    await cluster.create_secret(
        "ragplatform-redis", {"url": f"redis://rag:{PLANTED}-redis@127.0.0.1:{closed_port}/0?password={PLANTED}-q"}
    )
    endpoint = f"http://user:{PLANTED}-model@ollama.models.svc:11434/v1?api_key={PLANTED}-key"
    body = minimal_platform(
        workers={"autoscaling": {"minReplicas": 1, "maxReplicas": 3, "pollingIntervalSeconds": 1}},
        embedding={"url": endpoint, "model": "all-minilm", "dimension": 384},
        llm={"url": endpoint, "model": "llama3.2:3b"},
        vectorStore={"external": {"url": f"https://vec:{PLANTED}-vec@qdrant.example:6333"}},
    )
    await cluster.create_platform(body)
    unreachable = await eventually(
        lambda: [e for e in cluster.events() if e.get("reason") == "QueueUnreachable"], what="QueueUnreachable Event"
    )
    assert f"127.0.0.1:{closed_port}" in unreachable[0]["message"]  # the endpoint is still named
    await eventually(
        lambda: "Redis" in json.dumps((cluster.platform().get("status") or {}).get("conditions")),
        what="the queue error in status",
    )

    # An invalid spec: its error is written to status, an Event and the log.
    await cluster.patch_platform_spec("demo", {"llm": {"url": f"ftp://x:{PLANTED}-ftp@h/", "model": "m"}})
    await eventually(lambda: "InvalidSpec" in cluster.event_reasons(), what="InvalidSpec Event")

    written = _everything_written(cluster, caplog)
    # The messages were written, without the secrets.
    assert "Redis" in written
    assert "invalid RagPlatform spec" in written
    assert PLANTED not in written, [line for line in written.splitlines() if PLANTED in line][:5]
