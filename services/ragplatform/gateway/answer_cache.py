"""The answer cache's key: exact match on tenant, normalised question, corpus version, model,
retrieval options and answer length limit. The corpus version changes whenever the tenant's
documents change, so a cached answer never outlives the documents it cites."""

from __future__ import annotations

import hashlib
import json
import unicodedata


def normalise_question(question: str) -> str:
    """Case-folded, NFKC, whitespace collapsed, trailing punctuation dropped."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = " ".join(text.split())
    return text.rstrip(" ?!.")


def answer_cache_key(
    tenant_id: str,
    question: str,
    corpus_version: int,
    model: str,
    top_k: int,
    filters: dict[str, str],
    score_threshold: float,
    max_tokens: int = 0,
) -> str:
    material = json.dumps(
        [
            tenant_id,
            normalise_question(question),
            corpus_version,
            model,
            top_k,
            sorted(filters.items()),
            score_threshold,
            max_tokens,  # a length-limited answer must not answer the unlimited question
        ],
        separators=(",", ":"),
    )
    return "answer:" + hashlib.sha256(material.encode()).hexdigest()
