"""The `ragplatform` command as scripts use it, against the running platform (separate processes):
`--json` output, `--filter`, `status`, and the documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ragplatform import __version__
from ragplatform.cli.exit_codes import ExitCode
from tests.e2e.conftest import RunningPlatform
from tests.support.platform_processes import SERVICES, free_port

pytestmark = pytest.mark.e2e

QUESTION = "What colour is the Quokka lamp?"


def cli(platform: RunningPlatform, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_GATEWAY": platform.gateway, "RAG_API_KEY": platform.key_a if key is None else key})
    return subprocess.run(
        [sys.executable, "-m", "ragplatform", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def labelled(platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two documents that answer the same question differently, told apart only by a label."""
    folder = tmp_path_factory.mktemp("labelled")
    files = {
        "alpha": ("lamp-alpha.txt", "The Quokka lamp made by Alpha Works is amber coloured."),
        "beta": ("lamp-beta.txt", "The Quokka lamp made by Beta Labs is violet coloured."),
    }
    for team, (name, text) in files.items():
        (folder / name).write_text(text)
        result = cli(platform, "ingest", "--json", "--label", f"team={team}", str(folder / name))
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["failed"] == 0
        assert [f["state"] for f in summary["files"]] == ["SUCCEEDED"]
    return {team: name for team, (name, _text) in files.items()}


@pytest.mark.parametrize("team", ["alpha", "beta"])
def test_ask_json_with_a_filter_streams_json_lines_citing_only_matching_documents(
    platform: RunningPlatform, labelled: dict[str, str], team: str
) -> None:
    result = cli(platform, "ask", "--json", "--filter", f"team={team}", QUESTION)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert list(lines[0]) == ["sources"]
    assert list(lines[-1]) == ["done"]
    assert all(list(line) == ["delta"] for line in lines[1:-1])
    passages = lines[0]["sources"]["passages"]
    assert passages
    assert {p["filename"] for p in passages} == {labelled[team]}
    done = lines[-1]["done"]
    assert {c["filename"] for c in done["citations"]} == {labelled[team]}
    assert done["cached"] is False  # every field is present, defaults included
    assert done["conversation_id"]
    answer = "".join(line["delta"] for line in lines[1:-1])
    assert ("amber" if team == "alpha" else "violet") in answer


def test_search_json_with_two_filters_must_match_all(platform: RunningPlatform, labelled: dict[str, str]) -> None:
    both = cli(platform, "search", "--json", "--filter", "team=alpha", QUESTION)
    assert both.returncode == 0, both.stderr
    assert {p["filename"] for p in json.loads(both.stdout)["passages"]} == {labelled["alpha"]}
    none = cli(platform, "search", "--json", "--filter", "team=alpha", "--filter", "team2=beta", QUESTION)
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout)["passages"] == []


def test_list_commands_print_one_json_object(platform: RunningPlatform, labelled: dict[str, str]) -> None:
    docs = cli(platform, "docs", "--json")
    assert docs.returncode == 0, docs.stderr
    assert set(labelled.values()) <= {d["filename"] for d in json.loads(docs.stdout)["documents"]}
    jobs = cli(platform, "jobs", "--json", "--state", "succeeded")
    assert jobs.returncode == 0, jobs.stderr
    assert {j["state"] for j in json.loads(jobs.stdout)["jobs"]} == {"JOB_STATE_SUCCEEDED"}


def test_status_json_shows_every_service_serving_with_its_version(platform: RunningPlatform, tmp_path: Path) -> None:
    services = [f"{name}={platform.processes.address(name)}" for name in SERVICES]
    args = ["status", "--json", "--data-dir", str(platform.processes.data_dir)]
    result = cli(platform, *args, *(item for s in services for item in ("--service", s)))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert {s["service"]: (s["health"], s["version"]) for s in report["services"]} == {
        name: ("SERVING", __version__) for name in SERVICES
    }
    assert report["data_dir"] == {
        "path": str(platform.processes.data_dir.resolve()),
        "exists": True,
        "dev_api_key": False,
    }

    # Every address given explicitly: the dev layout's "next ports" after a free gateway port may
    # belong to another platform started by the tests.
    nowhere = (item for name in SERVICES for item in ("--service", f"{name}=127.0.0.1:{free_port()}"))
    down = cli(platform, "status", "--json", "--gateway", f"127.0.0.1:{free_port()}", "--timeout", "0.5", *nowhere)
    assert down.returncode == ExitCode.FAILED
    assert {s["health"] for s in json.loads(down.stdout)["services"]} == {"UNREACHABLE"}


def test_exit_codes_tell_scripts_what_went_wrong(platform: RunningPlatform) -> None:
    bad_filter = cli(platform, "ask", "--filter", "no-equals-sign", QUESTION)
    assert bad_filter.returncode == ExitCode.USAGE
    assert "KEY=VALUE" in bad_filter.stderr

    bad_key = cli(platform, "ask", "--json", QUESTION, key="rag_not-a-real-key")
    assert bad_key.returncode == ExitCode.UNAUTHENTICATED
    assert json.loads(bad_key.stderr)["error"]["code"] == "UNAUTHENTICATED"

    gone = cli(platform, "search", "--json", "--gateway", f"127.0.0.1:{free_port()}", QUESTION)
    assert gone.returncode == ExitCode.UNAVAILABLE
    assert json.loads(gone.stderr)["error"]["code"] == "UNAVAILABLE"

    missing = cli(platform, "docs", "delete", "--json", "no-such-document")
    assert missing.returncode == ExitCode.FAILED
    assert json.loads(missing.stderr)["error"]["code"] == "NOT_FOUND"
