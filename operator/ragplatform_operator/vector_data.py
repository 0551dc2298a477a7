"""The operator's twin of the CRD's transition rules: no live change may orphan stored vectors.

The API server refuses such changes with CEL rules on `oldSelf` (spec.py). A spec can still
reach the operator without them (a CRD from before the rules: Helm never upgrades CRDs), so
the operator records what the vectors were made with in `status.storedVectors` and refuses, as
an invalid spec, any spec that differs — with the same messages. Pure functions.
"""

from __future__ import annotations

from ragplatform_operator.spec import (
    COLLECTION_FROZEN,
    EMBEDDING_DIMENSION_FROZEN,
    EMBEDDING_MODEL_FROZEN,
    STORE_KIND_FROZEN,
    PlatformSpec,
)
from ragplatform_operator.status_model import StoredVectors


def stored_vectors_of(spec: PlatformSpec) -> StoredVectors:
    """What vectors made under `spec` depend on."""
    return StoredVectors(
        model=spec.embedding.model,
        dimension=spec.embedding.dimension,
        collection=spec.vector_store.collection,
        store="managed" if spec.vector_store.managed is not None else "external",
    )


def orphaning_changes(spec: PlatformSpec, stored: StoredVectors | None) -> list[str]:
    """Why `spec` would orphan the vectors recorded in `stored` (empty: it would not)."""
    if stored is None:
        return []
    wanted = stored_vectors_of(spec)
    checks = (
        (wanted.model != stored.model, EMBEDDING_MODEL_FROZEN, "embedding.model", stored.model, wanted.model),
        (
            wanted.dimension != stored.dimension,
            EMBEDDING_DIMENSION_FROZEN,
            "embedding.dimension",
            stored.dimension,
            wanted.dimension,
        ),
        (
            wanted.collection != stored.collection,
            COLLECTION_FROZEN,
            "vectorStore.collection",
            stored.collection,
            wanted.collection,
        ),
        (wanted.store != stored.store, STORE_KIND_FROZEN, "vectorStore", stored.store, wanted.store),
    )
    return [
        f"spec.{field}: {message} (stored vectors: {old!r}; spec now: {new!r}; set it back to {old!r})"
        for changed, message, field, old, new in checks
        if changed
    ]
