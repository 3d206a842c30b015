"""The services' image, really built here (`make image`: buildah on a debootstrap base, no
daemon, no registry), then run with `buildah run`: it imports, its command works, it runs as
a fixed non-root user, and it writes nothing outside /tmp."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.rehearsals import make

pytestmark = [pytest.mark.platform, pytest.mark.image]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
UNWRITTEN_EXCLUDES = ("tmp", "proc", "sys", "dev", "run")  # emptyDirs and kernel filesystems


@dataclass(frozen=True)
class Built:
    tag: str
    container: str
    root: Path  # the working container's root filesystem, mounted

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*BUILDAH, "run", "--isolation", "chroot", self.container, "--", *command],
                              capture_output=True, text=True, timeout=120)  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file outside the excluded folders, with its size and modification time."""
    found: dict[str, tuple[int, int]] = {}
    for directory, folders, files in os.walk(root):
        if Path(directory) == root:
            folders[:] = [name for name in folders if name not in UNWRITTEN_EXCLUDES]
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                stat = path.stat()
                found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def image() -> Iterator[Built]:
    if os.geteuid() != 0:
        pytest.fail("building the image with buildah's vfs storage and chroot isolation needs root")
    tag = f"localhost/valuecanvas:test-{uuid.uuid4().hex[:8]}"
    built = make("image", f"IMAGE={tag}", timeout=1800)
    assert built.returncode == 0, built.stdout + built.stderr
    container = subprocess.run([*BUILDAH, "from", "--quiet", tag], capture_output=True, text=True,
                               check=True).stdout.strip()  # fmt: skip
    root = Path(subprocess.run([*BUILDAH, "mount", container], capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip
    yield Built(tag, container, root)
    subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)
    subprocess.run([*BUILDAH, "rmi", tag], capture_output=True, check=False)


def test_it_runs_as_a_fixed_user_that_is_not_root(image: Built) -> None:
    result = image.run("id", "-u")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10001"


def test_its_command_and_every_service_load(image: Built) -> None:
    usage = image.run("valuecanvas", "--help")
    services = image.run("python", "-c", "from valuecanvas.registry import SERVICES\n"
                         "for spec in SERVICES.values(): spec.definition()\n"
                         "print(' '.join(sorted(SERVICES)))")  # fmt: skip

    assert usage.returncode == 0, usage.stderr
    assert "serve" in usage.stdout
    assert services.returncode == 0, services.stderr
    assert len(services.stdout.split()) == 8


def test_the_final_stage_has_no_compiler_no_pip_cache_and_no_wheels(image: Built) -> None:
    leftovers = [path for path in ("wheels", "root/.cache", "src") if (image.root / path).exists()]
    compilers = [name for name in ("gcc", "cc", "g++", "make")
                 if (image.root / "usr" / "bin" / name).exists()]  # fmt: skip

    assert leftovers == []
    assert compilers == []


def test_nothing_is_written_outside_tmp(image: Built) -> None:
    """What a read-only root filesystem needs: the image's own programs write only to /tmp
    (an emptyDir in the cluster)."""
    image.run("true")  # buildah's own mount points, made on the first run
    before = snapshot(image.root)
    assert len(before) > 1000  # the image's files, really (not an empty mount)

    for command in (["valuecanvas", "--help"],
                    ["python", "-c", "import valuecanvas.cli, valuecanvas.registry, valuecanvas.llm_proxy.app"]):  # fmt: skip
        result = image.run(*command)
        assert result.returncode == 0, result.stderr
    written = image.run("sh", "-c", "touch /opt/venv/probe 2>&1 || echo refused")

    assert snapshot(image.root) == before
    assert "refused" in written.stdout  # the user cannot write there at all


def test_the_build_refuses_a_missing_base(image: Built) -> None:  # image: buildah is installed
    result = subprocess.run([*BUILDAH, "build", "--isolation", "chroot", "--file", "Containerfile",
                             "--tag", f"localhost/valuecanvas:nobase-{uuid.uuid4().hex[:8]}", "."],
                            cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip

    assert result.returncode != 0
    assert "BASE_IMAGE" in result.stderr
    assert "build argument" in result.stderr
