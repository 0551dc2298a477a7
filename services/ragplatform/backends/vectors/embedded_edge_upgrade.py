"""Upgrading an embedded store made before sparse vectors existed, or before their current
encoding (`payload.SPARSE_VECTOR` names it), without losing a chunk.

The engine cannot add a vector to an existing shard, so the upgrade copies every point (id, dense
vector, payload) into a new shard beside it, with the sparse vector computed from the chunk text
kept in the payload (in `<store>.upgrading`), then swaps the directories (`edge_swap.py`), so a
crash at any point leaves either the old store or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ragplatform.backends.vectors import payload as fields
from ragplatform.backends.vectors.edge_swap import SwapDirs, discard_backup, finish_interrupted_swap, swap_in

CONFIG_FILE = "edge_config.json"
_BATCH = 512


def upgrade_dirs(path: Path) -> SwapDirs:
    """The directories the hybrid upgrade of the store in `path` uses."""
    return SwapDirs.beside(path, ".upgrading", ".pre-hybrid")


def has_sparse_vector(path: Path) -> bool:
    """Whether the store in `path` already has the sparse vector, in the current encoding."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        return fields.SPARSE_VECTOR in (config.get("sparse_vectors") or {})
    except (OSError, ValueError, AttributeError):
        return False


def create_field_indexes(shard: Any) -> None:
    """The payload indexes every store has. Keyword indexes make the tenant and document filters
    index lookups; is_tenant lets the engine keep each tenant's points together."""
    shard.update(qe.UpdateOperation.create_field_index(fields.TENANT_ID, qe.KeywordIndexParams(is_tenant=True)))
    shard.update(qe.UpdateOperation.create_field_index(fields.DOCUMENT_ID, qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index(fields.CHUNK_INDEX, qe.PayloadSchemaType.Integer))


def finish_interrupted_upgrade(path: Path) -> None:
    """Complete or undo an upgrade a crash interrupted (see the module docstring)."""
    finish_interrupted_swap(upgrade_dirs(path))


def upgrade_to_hybrid(path: Path, config: Any) -> int:
    """Re-index the store in `path` into one with `config` (which has the sparse vector);
    return the number of points copied."""
    dirs = upgrade_dirs(path)
    staging = dirs.staging
    old = qe.EdgeShard.load(str(path))
    try:
        staging.mkdir(parents=True)
        new = qe.EdgeShard.create(str(staging), config)
        try:
            create_field_indexes(new)
            copied = 0
            offset: Any = None
            while True:
                records, offset = old.scroll(
                    qe.ScrollRequest(offset=offset, limit=_BATCH, with_payload=True, with_vector=True)
                )
                points = [_with_sparse(record) for record in records]
                if points:
                    new.update(qe.UpdateOperation.upsert_points(points))
                copied += len(points)
                if offset is None:
                    break
            new.flush()
        finally:
            new.close()
    finally:
        old.close()
    swap_in(dirs)
    discard_backup(dirs)
    return copied


def _with_sparse(record: Any) -> Any:
    vector = record.vector
    dense = vector[""] if isinstance(vector, dict) else vector
    payload = record.payload or {}
    sparse = fields.sparse_document_vector(str(payload.get(fields.HEADING, "")), str(payload.get(fields.TEXT, "")))
    return qe.Point(
        record.id,
        {"": dense, fields.SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values))},
        payload,
    )
