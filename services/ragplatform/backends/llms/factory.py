"""Pick the answer generator RAG_LLM names and the query rewriter RAG_QUERY_REWRITE names. The
`openai` adapters are imported only when chosen."""

from __future__ import annotations

from ragplatform.backends.llms.base import AnswerGenerator
from ragplatform.backends.llms.query_rewriter import LexicalQueryRewriter, QueryRewriter, UnchangedQuery
from ragplatform.core.settings import GenerationSettings
from ragplatform.domain.errors import FailedPrecondition


def make_answer_generator(settings: GenerationSettings) -> AnswerGenerator:
    """The configured generator: `extractive` (no model; the embedded default) or `openai`.

    Raises `FailedPrecondition` at start-up when `openai` is chosen with neither RAG_LLM_URL (a
    self-hosted server) nor RAG_LLM_API_KEY (api.openai.com): no request could ever succeed.
    """
    if settings.llm == "openai":
        if not settings.llm_url and settings.llm_api_key is None:
            raise FailedPrecondition(
                "RAG_LLM=openai needs RAG_LLM_URL (the base URL of an OpenAI-compatible server, e.g. "
                "http://vllm:8000/v1) or RAG_LLM_API_KEY (for api.openai.com). Set one, or use RAG_LLM=extractive."
            )
        from ragplatform.backends.llms.openai_compatible import OpenAIAnswerGenerator

        return OpenAIAnswerGenerator(settings)
    from ragplatform.backends.llms.extractive import ExtractiveAnswerGenerator

    return ExtractiveAnswerGenerator()


def make_query_rewriter(settings: GenerationSettings) -> QueryRewriter:
    """The configured rewriter of follow-up questions: the chat model (`llm`, or `auto` with
    RAG_LLM=openai), `lexical` (`auto` without a model), or none (`off`)."""
    mode = settings.query_rewrite
    if mode == "auto":
        mode = "llm" if settings.llm == "openai" else "lexical"
    if mode == "llm":
        from ragplatform.backends.llms.openai_query_rewriter import OpenAIQueryRewriter

        return OpenAIQueryRewriter(settings)
    if mode == "lexical":
        return LexicalQueryRewriter()
    return UnchangedQuery()
