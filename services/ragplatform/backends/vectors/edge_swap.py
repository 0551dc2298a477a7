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


def finish_interrupted_swap(dirs: SwapDirs) -> None:
    """Complete or undo a swap a crash interrupted (see the module docstring)."""
    if dirs.backup.exists() and not dirs.store.exists():
        dirs.staging.rename(dirs.store)  # the copy was complete: only the second rename was missing
    if dirs.backup.exists():
        shutil.rmtree(dirs.backup)
    if dirs.staging.exists():
        shutil.rmtree(dirs.staging)  # an unfinished copy: the live store is intact


def swap_in(dirs: SwapDirs) -> None:
    """Make the complete copy in `dirs.staging` the store. The old store stays at `dirs.backup`
    (a process that has it open keeps reading it there) until `discard_backup`."""
    dirs.store.rename(dirs.backup)
    dirs.staging.rename(dirs.store)


def discard_backup(dirs: SwapDirs) -> None:
    shutil.rmtree(dirs.backup, ignore_errors=True)
