"""docs/configuration.md is generated from the settings classes and must not go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ragplatform.core.settings import SETTINGS_BY_SERVICE, env_var_names

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_config_docs.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_doc_matches_the_settings() -> None:
    generator = load_generator()
    assert generator.DOC_PATH.read_text(encoding="utf-8") == generator.render(), (
        "docs/configuration.md is stale: run `python scripts/gen_config_docs.py` and commit the result"
    )


def test_every_variable_any_service_reads_has_exactly_one_row() -> None:
    documented = [row[0] for row in load_generator().rows()]
    expected = set().union(*(env_var_names(cls) for cls in SETTINGS_BY_SERVICE.values()))
    assert sorted(documented) == sorted(expected)


def test_secrets_are_marked_and_services_named() -> None:
    by_name = {row[0]: row for row in load_generator().rows()}
    assert "**secret**" in by_name["RAG_STORE_PASSWORD"][3]
    assert "**secret**" not in by_name["RAG_STORE_URL"][3]
    assert by_name["RAG_LOG_LEVEL"][2] == "all"
    assert by_name["RAG_QUEUE_URL"][2] == "ingestion, ingestion-worker"
