"""Fixtures of the image tests: one builder, and the stand-in base image made once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.image_builder import ImageBuilder


@pytest.fixture(scope="session")
def image_builder() -> Iterator[ImageBuilder]:
    missing = ImageBuilder.missing_tools()
    if missing:
        pytest.skip(f"building images needs {', '.join(missing)} (apt-get install buildah debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("buildah with chroot isolation and debootstrap need root here")
    builder = ImageBuilder()
    builder.ensure_base_image()
    yield builder
    builder.prune()
