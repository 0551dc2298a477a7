"""Build the project's container images with a real OCI builder (buildah, from Debian's packages).

No container registry is reachable from these machines, so the `python:3.11-slim-bookworm` base
image the Dockerfiles start from is made locally: debootstrap installs Debian 12 with its own
Python 3.11 (python3, python3-venv, python-is-python3) into a folder, and buildah commits that
folder under the base image's name. It stands in for the official image (which has its Python
in /usr/local rather than /usr); the Dockerfiles only need `python`, `venv`, `groupadd` and
`useradd`, which both have.

Builds run with `--isolation chroot` (no user namespaces or nested runtime needed), the `vfs`
storage driver (no overlay mounts inside a sandbox) and a storage root of their own under
/var/tmp, so they touch no other buildah store. The machine's CA bundle and a pip config that
names it are mounted into each RUN step: package registries are reached through this
workplace's TLS proxy, whose certificate the base image does not carry. The Dockerfiles stay
unchanged: those mounts are the builder's, not the image's.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tenacity import RetryCallState, Retrying, before_nothing, retry_if_result, stop_after_attempt

BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
WORK_DIR = Path("/var/tmp/ragplatform-image-tests")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


# runc, not the build, sometimes fails to start a RUN step's process on a busy machine ("Close_Fd
# sealing memfd copy: Device or resource busy"); the same build passes when run again. Only that
# message is retried: any other failure is the build's and is reported as it is.
RUNTIME_FLAKES = ("sealing memfd copy: Device or resource busy",)
RUNTIME_FLAKE_ATTEMPTS = 3


def _failed_on_a_runtime_flake(completed: subprocess.CompletedProcess[str]) -> bool:
    return completed.returncode != 0 and any(flake in completed.stdout + completed.stderr for flake in RUNTIME_FLAKES)


def _failed(completed: subprocess.CompletedProcess[str]) -> bool:
    return completed.returncode != 0


def _retried(
    attempts: int,
    retry_when: Callable[[subprocess.CompletedProcess[str]], bool],
    before: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """Run a command up to `attempts` times while `retry_when` says so (tenacity, as the client's
    retries); after the last attempt its result is returned as it is, for the caller to report."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_result(retry_when),
        before=before or before_nothing,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )


@dataclass(frozen=True)
class RunResult:
    returncode: int
    output: str


class ImageBuilder:
    """buildah with this project's storage root and flags."""

    def __init__(self, work_dir: Path = WORK_DIR) -> None:
        self.work_dir = work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._storage = ["--root", str(work_dir / "storage"), "--runroot", str(work_dir / "run")]

    @staticmethod
    def missing_tools() -> list[str]:
        """What this machine lacks to build images (empty when it can)."""
        return [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]

    def _buildah(self, *args: str, timeout: float = 900, check: bool = True) -> RunResult:
        completed = _retried(RUNTIME_FLAKE_ATTEMPTS, _failed_on_a_runtime_flake)(
            subprocess.run,
            ["buildah", "--storage-driver", "vfs", *self._storage, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = completed.stdout + completed.stderr
        if check and completed.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)} failed ({completed.returncode}):\n{output[-6000:]}")
        return RunResult(completed.returncode, output)

    def has_image(self, name: str) -> bool:
        return self._buildah("inspect", "--type", "image", name, check=False).returncode == 0

    def ensure_base_image(self) -> None:
        """Make the stand-in base image once (debootstrap ~3 min); later calls find it in the store."""
        if self.has_image(BASE_IMAGE):
            return
        rootfs = self.work_dir / "base-rootfs"
        self._debootstrap(rootfs)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        container = self._buildah("from", "scratch").output.strip().splitlines()[-1]
        try:
            self._buildah("copy", container, str(rootfs), "/")
            self._buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3",
                container,
            )
            self._buildah("commit", "--quiet", container, BASE_IMAGE)
        finally:
            self._buildah("rm", container, check=False)
            shutil.rmtree(rootfs, ignore_errors=True)

    @staticmethod
    def _debootstrap(rootfs: Path) -> None:
        """Debian 12 with its Python into `rootfs`, from Debian's mirror: tried twice (a download
        that fails half-way leaves a partial tree, removed before the next try); a second failure
        is reported with debootstrap's own words and the tail of its log."""
        completed = _retried(2, _failed, before=lambda _: shutil.rmtree(rootfs, ignore_errors=True))(
            subprocess.run,
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python-is-python3,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if completed.returncode == 0:
            return
        log = rootfs / "debootstrap" / "debootstrap.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        shutil.rmtree(rootfs, ignore_errors=True)
        raise AssertionError(
            f"debootstrap of the stand-in base image failed twice ({completed.returncode}):\n"
            f"{(completed.stdout + completed.stderr)[-3000:]}\nits log ends:\n{tail}"
        )

    def build(self, context: Path, dockerfile: str, tag: str) -> str:
        """`buildah bud` the Dockerfile as it is; returns the build log."""
        pip_conf = self.work_dir / "pip.conf"
        pip_conf.write_text(f"[global]\ncert = {HOST_CA_BUNDLE}\n")
        mounts: list[str] = ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
        if HOST_CA_BUNDLE.exists():
            mounts += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        return self._buildah(
            "bud",
            "--pull=never",
            "--isolation",
            "chroot",
            "--network",
            "host",
            *mounts,
            "--ignorefile",
            str(context / f"{dockerfile}.dockerignore"),
            "-f",
            str(context / dockerfile),
            "-t",
            tag,
            str(context),
            timeout=1800,
        ).output

    def run(self, image: str, *command: str) -> RunResult:
        """Run a command (not through the entrypoint) in a fresh container of the image, as the
        image's own user."""
        container = self._buildah("from", "--pull=never", image).output.strip().splitlines()[-1]
        try:
            return self._buildah("run", "--isolation", "chroot", container, "--", *command, timeout=300, check=False)
        finally:
            self._buildah("rm", container, check=False)

    def remove(self, image: str) -> None:
        """Remove an image and the layers only it used (vfs stores each layer as a whole copy), and
        any working container a failed build or run left (each a whole copy of its filesystem)."""
        self._buildah("rm", "--all", check=False)
        self._buildah("rmi", "--force", image, check=False)
        self.prune()

    def prune(self) -> None:
        """Remove images no tag names any more (each run's build replaces the last one's tag)."""
        self._buildah("rmi", "--prune", check=False)

    def remove_store(self) -> None:
        """Remove the builder's whole store, the base image included."""
        self._buildah("rm", "--all", check=False)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.work_dir).free

    def size(self, image: str) -> str:
        """The image's size as buildah prints it (e.g. "357 MB")."""
        return self._buildah("images", "--noheading", "--format", "{{.Size}}", image).output.strip()

    def user(self, image: str) -> str:
        return self._buildah("inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}}", image).output.strip()
