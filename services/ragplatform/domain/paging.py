"""Page-size rules shared by every listing."""

from __future__ import annotations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def clamp_page_size(requested: int) -> int:
    """0 or negative -> the default; above the maximum -> the maximum."""
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)
