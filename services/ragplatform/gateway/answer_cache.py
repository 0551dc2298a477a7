"""The answer cache's key: exact match on tenant, normalised question, corpus version, model and
retrieval options. The corpus version changes whenever the tenant's documents change, so a
cached answer never outlives the documents it cites."""

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
        ],
        separators=(",", ":"),
    )
    return "answer:" + hashlib.sha256(material.encode()).hexdigest()
