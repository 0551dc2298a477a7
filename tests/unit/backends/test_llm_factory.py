"""`make_answer_generator` picks the adapter RAG_LLM names and refuses an unusable setup."""

from __future__ import annotations

import pytest

from ragplatform.backends.llms.extractive import ExtractiveAnswerGenerator
from ragplatform.backends.llms.factory import make_answer_generator
from ragplatform.backends.llms.openai_compatible import OpenAIAnswerGenerator
from ragplatform.core.settings import GenerationSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition


def test_extractive_is_the_default() -> None:
    generator = make_answer_generator(load_settings(GenerationSettings, llm="extractive"))
    assert isinstance(generator, ExtractiveAnswerGenerator)
    assert generator.name == "extractive"


async def test_openai_with_a_url() -> None:
    settings = load_settings(GenerationSettings, llm="openai", llm_url="http://127.0.0.1:9/v1")
    generator = make_answer_generator(settings)
    assert isinstance(generator, OpenAIAnswerGenerator)
    await generator.close()


def test_openai_without_url_or_key_is_refused_at_start_up() -> None:
    settings = load_settings(GenerationSettings, llm="openai", llm_url="", llm_api_key=None)
    with pytest.raises(FailedPrecondition, match="RAG_LLM_URL"):
        make_answer_generator(settings)
