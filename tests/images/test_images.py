"""Both Dockerfiles build unchanged with a real OCI builder (buildah 1.28, Debian 12's — no
heredoc support, like Docker's legacy builder), and what they build runs: the services image's
CLI answers `--help`, the operator image fails with its clear no-credentials error, both as the
numeric non-root user the rendered pods run as, with no compiler or pip cache left in them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.image_builder import ImageBuilder

pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(2400)]

NON_ROOT_USER = "10001:10001"


def _assert_lean(builder: ImageBuilder, image: str) -> None:
    leftovers = builder.run(
        image, "sh", "-c", "command -v gcc cc make; ls -d /root/.cache/pip /tmp/*.txt /src 2>/dev/null; true"
    )
    assert leftovers.output.strip() == "", f"build tools or caches left in {image}: {leftovers.output}"


def test_the_operator_image_builds_and_starts_as_non_root(
    image_builder: ImageBuilder, build_image: Callable[[str, str], str]
) -> None:
    image = build_image("Dockerfile.operator", "localhost/ragplatform-operator:image-test")

    assert image_builder.user(image) == NON_ROOT_USER
    whoami = image_builder.run(image, "id", "-u")
    assert whoami.output.strip().splitlines()[-1] == "10001"
    # No cluster here: the operator must say so clearly and exit non-zero, not crash.
    started = image_builder.run(image, "ragplatform-operator")
    assert started.returncode != 0
    assert "no Kubernetes credentials" in started.output
    assert "Traceback" not in started.output
    # It imports nothing of the services' stack (the image installs only the operator extra).
    absent = image_builder.run(image, "python", "-c", "import grpc")
    assert absent.returncode != 0
    _assert_lean(image_builder, image)
    print(f"operator image: {image_builder.size(image)}")


def test_the_services_image_builds_and_its_cli_runs_as_non_root(
    image_builder: ImageBuilder, build_image: Callable[[str, str], str]
) -> None:
    image = build_image("Dockerfile.services", "localhost/ragplatform:image-test")

    assert image_builder.user(image) == NON_ROOT_USER
    helped = image_builder.run(image, "ragplatform", "--help")
    assert helped.returncode == 0, helped.output
    assert "serve" in helped.output
    # A service that cannot reach its backends says which and exits, rather than hanging.
    served = image_builder.run(
        image,
        "sh",
        "-c",
        "RAG_PORT=0 RAG_METRICS_PORT=0 RAG_INTERNAL_TOKEN=image-test RAG_STORE_URL=postgresql://nobody@127.0.0.1:1/x "
        "timeout 60 ragplatform serve conversation",
    )
    assert served.returncode != 0
    assert "could not start" in served.output
    assert "Traceback" not in served.output
    _assert_lean(image_builder, image)
    print(f"services image: {image_builder.size(image)}")
