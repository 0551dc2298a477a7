"""A start that fails part-way closes exactly what it had opened (every app.py opens its resources
inside one AsyncExitStack). The gateway's real SQLite store and in-process rate limiter are
opened; the third resource, the answer cache, is replaced by an opener that fails (the one double
here: nothing real fails on demand), and the test records the first two being closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragplatform.backends.cache.factory import open_rate_limiter
from ragplatform.backends.store.factory import open_store
from ragplatform.core.server import start_service
from ragplatform.core.settings import GatewaySettings, load_settings
from ragplatform.domain.errors import Unavailable
from ragplatform.gateway import app as gateway_app


async def test_a_start_that_fails_on_the_third_resource_closes_the_first_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def recording(name: str, opener: Any) -> Any:
        async def open_and_record(settings: GatewaySettings) -> Any:
            resource = await opener(settings)
            close = resource.close

            async def recorded_close() -> None:
                closed.append(name)
                await close()

            resource.close = recorded_close
            return resource

        return open_and_record

    async def failing_cache(settings: GatewaySettings) -> Any:
        raise Unavailable("the answer cache cannot be reached (test)")

    monkeypatch.setattr(gateway_app, "open_store", recording("store", open_store))
    monkeypatch.setattr(gateway_app, "open_rate_limiter", recording("limiter", open_rate_limiter))
    monkeypatch.setattr(gateway_app, "open_answer_cache", failing_cache)
    settings = load_settings(
        GatewaySettings,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_enabled=False,
        data_dir=tmp_path,
        store_url="",
        internal_token="test-internal-token",
    )

    with pytest.raises(Unavailable, match="answer cache"):
        await start_service(gateway_app.build_app(settings), settings)

    assert closed == ["limiter", "store"]  # both, newest first
