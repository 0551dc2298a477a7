"""Which embedding model filled a vector store: recorded when the store is first opened with a
model, checked on every open after.

The dimension check alone cannot catch a change of model: all-MiniLM-L6-v2 and
multilingual-e5-small both make 384-dimensional vectors, and a store holding one model's vectors
searched with the other's query vectors returns near-random passages without any error. So each
store keeps the model's name (`Embedder.name`) beside its vectors (the embedded store in a file
in its directory, a Qdrant collection in its metadata), and opening it with another model fails
with `FailedPrecondition` naming RAG_EMBEDDER.

A store made before the record existed has none. It was filled by whatever embedder was configured
then; the one model that cannot have done so is a model added with the record (`RECORD_ERA_MODELS`):
opening an unrecorded store that holds vectors with such a model fails (the store was most likely
filled by all-MiniLM-L6-v2, the default then); any other model is taken to be the one that filled it
and recorded.
"""

from __future__ import annotations

from ragplatform.domain.errors import FailedPrecondition

# Embedders that did not exist before stores recorded their model (`Embedder.name`).
RECORD_ERA_MODELS = frozenset({"multilingual-e5-small-q4"})
# RAG_EMBEDDER settings by the model name they make, for the error messages.
SETTING_OF_MODEL = {"all-MiniLM-L6-v2": "minilm", "multilingual-e5-small-q4": "e5-small"}


def _setting(model: str) -> str:
    setting = SETTING_OF_MODEL.get(model)
    if setting is not None:
        return f"RAG_EMBEDDER={setting}"
    if model.startswith("hashing-"):
        return f"RAG_EMBEDDER=hashing with RAG_EMBEDDING_DIMENSION={model.removeprefix('hashing-')}"
    if model.startswith("openai:"):
        return f"RAG_EMBEDDER=openai with RAG_EMBEDDING_MODEL={model.removeprefix('openai:')}"
    return "the RAG_EMBEDDER settings that filled it"


def model_to_record(where: str, recorded: str | None, configured: str, has_vectors: bool, remedy: str) -> str:
    """The model name the store `where` should record once opened with the `configured` embedder
    (pure; see the module docstring). Raises `FailedPrecondition` naming the setting that keeps
    the store usable, and `remedy` (how to start over with the configured model), when the
    store's vectors come, or most likely come, from another model."""
    if recorded is not None and recorded != configured:
        raise FailedPrecondition(
            f"{where} holds vectors of the embedding model {recorded}, but the configured embedder is "
            f"{configured}: their vectors cannot be compared. Set {_setting(recorded)} to keep using "
            f"it, or {remedy}."
        )
    if recorded is None and has_vectors and configured in RECORD_ERA_MODELS:
        raise FailedPrecondition(
            f"{where} was filled before stores recorded their embedding model, most likely by "
            f"all-MiniLM-L6-v2 (the default then), but the configured embedder is {configured}: "
            f"their vectors cannot be compared. Set RAG_EMBEDDER=minilm (or the embedder that filled "
            f"it) to keep using it, or {remedy}."
        )
    return configured
