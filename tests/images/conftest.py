"""Fixtures of the image tests: one builder, and the stand-in base image made once per session.

Under the vfs driver every layer is a whole copy of its filesystem: building both images took
up to ~2 GB under the builder's store here (sampled every 15 s during a CI run; 1.2 GB stayed
after it, the base image and both images). The builds are skipped, saying so, when the disk has
less than that with a margin; each test removes its image, and a CI run (a fresh machine, nothing to reuse) removes
the whole store at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.operator.unit.conftest import REPO_ROOT
from tests.support.image_builder import ImageBuilder

NEEDED_FREE_BYTES = 3 * 1024**3


@pytest.fixture(scope="session")
def image_builder() -> Iterator[ImageBuilder]:
    missing = ImageBuilder.missing_tools()
    if missing:
        pytest.skip(f"building images needs {', '.join(missing)} (apt-get install buildah debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("buildah with chroot isolation and debootstrap need root here")
    builder = ImageBuilder()
    free = builder.free_bytes()
    if free < NEEDED_FREE_BYTES:
        pytest.skip(
            f"building both images needs ~{NEEDED_FREE_BYTES / 1024**3:.0f} GiB free under {builder.work_dir}, "
            f"and {free / 1024**3:.1f} GiB is: free disk space to run these tests"
        )
    builder.ensure_base_image()
    yield builder
    if os.environ.get("CI"):
        builder.remove_store()
    else:
        builder.prune()


@pytest.fixture
def build_image(image_builder: ImageBuilder) -> Iterator[Callable[[str, str], str]]:
    """Build a Dockerfile of the repository under a tag; the image is removed after the test."""
    tags: list[str] = []

    def build(dockerfile: str, tag: str) -> str:
        tags.append(tag)
        image_builder.build(REPO_ROOT, dockerfile, tag)
        return tag

    yield build
    for tag in tags:
        image_builder.remove(tag)
