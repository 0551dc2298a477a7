"""Which settings class and app builder each `ragplatform serve <service>` name uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ragplatform.core.server import ServiceApp
from ragplatform.core.settings import SETTINGS_BY_SERVICE, CommonSettings


def app_builder(service: str) -> Callable[[Any], ServiceApp]:
    """Import lazily: a process imports only the service it runs."""
    if service == "gateway":
        from ragplatform.gateway.app import build_app as gateway

        return gateway
    if service == "ingestion":
        from ragplatform.ingestion.app import build_app as ingestion

        return ingestion
    if service == "ingestion-worker":
        from ragplatform.ingestion.worker_app import build_worker_app

        return build_worker_app
    if service == "retrieval":
        from ragplatform.retrieval.app import build_app as retrieval

        return retrieval
    if service == "generation":
        from ragplatform.generation.app import build_app as generation

        return generation
    if service == "conversation":
        from ragplatform.conversation.app import build_app as conversation

        return conversation
    raise KeyError(service)


def settings_class(service: str) -> type[CommonSettings]:
    return SETTINGS_BY_SERVICE[service]
