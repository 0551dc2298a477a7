"""Fixtures for every operator test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_log_record_factory() -> Iterator[None]:
    # The operator installs a process-wide log-record factory that redacts secrets
    # (`redaction.redact_log_records`): right for the operator's own process, but in this shared
    # pytest process it would go on rewriting every later test's records (the services' JSON log
    # test then read a plain-text traceback).
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)
