"""Replacing an embedded store's directory with a rebuilt copy, so that a crash at any instant
leaves either the old store or the complete new one.

A rebuild (the hybrid upgrade, a background index build) fills a copy beside the store and swaps
the two directories with two renames:

    <store>            the live store, untouched until the copy is complete
    <store><staging>   the copy being filled (discarded if the process stops before the swap)
    <store><backup>    the old store, for the instant between the two renames

`finish_interrupted_swap` (called on every open) completes a swap cut short by a crash, or
discards a half-filled copy.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SwapDirs:
    """The two directories beside a store that one kind of rebuild uses."""

    store: Path
    staging: Path
    backup: Path

    @classmethod
    def beside(cls, store: Path, staging_suffix: str, backup_suffix: str) -> SwapDirs:
        return cls(store, store.with_name(store.name + staging_suffix), store.with_name(store.name + backup_suffix))


def discard(path: Path) -> None:
    """Remove a directory that a dying process may still be writing into: renamed away first (so
    the name is free at once), then removed as far as possible; `finish_interrupted_swap` sweeps
    what is left."""
    trash = path.with_name(f"{path.name}.discard-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def finish_interrupted_swap(dirs: SwapDirs) -> None:
    """Complete or undo a swap a crash interrupted (see the module docstring)."""
    if dirs.backup.exists() and not dirs.store.exists():
        dirs.staging.rename(dirs.store)  # the copy was complete: only the second rename was missing
    discard(dirs.backup)
    discard(dirs.staging)  # an unfinished copy: the live store is intact
    for leftover in dirs.store.parent.glob(f"{dirs.store.name}.*.discard-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def swap_in(dirs: SwapDirs) -> None:
    """Make the complete copy in `dirs.staging` the store. The old store stays at `dirs.backup`
    (a process that has it open keeps reading it there) until `discard_backup`."""
    dirs.store.rename(dirs.backup)
    dirs.staging.rename(dirs.store)


def discard_backup(dirs: SwapDirs) -> None:
    discard(dirs.backup)
