"""The services' image, really built here (`make image`: buildah on a debootstrap base, no
daemon, no registry), then run with `buildah run`: it imports, its command works, it runs as
a fixed non-root user, and it writes nothing outside /tmp."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.rehearsals import make
from valuecanvas.catalogue import catalogue

pytestmark = [pytest.mark.platform, pytest.mark.image]
BUILDAH = ["buildah", "--storage-driver", "vfs"]


def buildah(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """buildah with stdin from /dev/null: `buildah run` makes the stdin it is given
    non-blocking, and the session's own stdin would stay so (Ansible then refuses to start)."""
    return subprocess.run([*BUILDAH, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)  # fmt: skip


UNWRITTEN_EXCLUDES = ("tmp", "proc", "sys", "dev", "run")  # emptyDirs and kernel filesystems


@dataclass(frozen=True)
class Built:
    tag: str
    container: str
    root: Path  # the working container's root filesystem, mounted

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return buildah("run", "--isolation", "chroot", self.container, "--", *command, timeout=120)


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
    container = buildah("from", "--quiet", tag).stdout.strip()
    assert container, f"buildah from {tag} gave no container"
    root = Path(buildah("mount", container).stdout.strip())
    yield Built(tag, container, root)
    buildah("rm", container)
    buildah("rmi", tag)


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


def test_the_migration_job_finds_every_migration(image: Built) -> None:
    """The PreSync Job runs `valuecanvas migrate` from this image: MIGRATIONS_DIR holds the
    repository's migrations, byte for byte."""
    listed = image.run("python", "-c", "import hashlib, os, pathlib\n"
                       "folder = pathlib.Path(os.environ['MIGRATIONS_DIR'])\n"
                       "for path in sorted(folder.glob('*.sql')):\n"
                       "    print(path.name, hashlib.sha256(path.read_bytes()).hexdigest())")  # fmt: skip
    expected = "".join(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                       for path in sorted((REPO / "migrations").glob("*.sql")))  # fmt: skip

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == expected != ""


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
    result = buildah("build", "--isolation", "chroot", "--file", "Containerfile",
                     "--tag", f"localhost/valuecanvas:nobase-{uuid.uuid4().hex[:8]}", ".")  # fmt: skip

    assert result.returncode != 0
    assert "BASE_IMAGE" in result.stderr
    assert "build argument" in result.stderr


def test_a_base_image_without_a_digest_is_refused(image: Built) -> None:
    made = make(
        "image",
        "BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm",
        "IMAGE=localhost/valuecanvas:nodigest",
    )

    assert made.returncode != 0
    assert "BASE_IMAGE must be pinned by digest (name@sha256:...)" in made.stderr


def push(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "tools" / "push_image.sh"), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, **environment})  # fmt: skip


def test_ci_pushes_one_image_under_every_services_repository(image: Built, tmp_path: Path) -> None:
    """tools/push_image.sh, to OCI layouts here instead of ECR. The plan names every
    repository of the catalogue; two of them are pushed for real (each push compresses the
    whole image again: all eight would only repeat it) and get the one digest."""
    repositories = sorted({entry.image for entry in catalogue().values()})

    plan = push("--dry-run", image.tag, f"oci:{tmp_path}", "abc1234")
    pushed = push(image.tag, f"oci:{tmp_path}", "abc1234", REPOSITORIES=" ".join(repositories[:2]))
    unknown = push(image.tag, f"oci:{tmp_path}", "abc1234", REPOSITORIES="valuecanvas-nope")

    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        f"{name} oci:{tmp_path}/{name}:abc1234" for name in repositories
    ]
    assert pushed.returncode == 0, pushed.stderr
    lines = dict(line.split() for line in pushed.stdout.splitlines())
    assert sorted(lines) == repositories[:2]
    assert len(set(lines.values())) == 1
    assert next(iter(lines.values())).startswith("sha256:")
    assert all((tmp_path / repository / "index.json").is_file() for repository in lines)
    assert not (tmp_path / repositories[2]).exists()
    assert unknown.returncode != 0
    assert "valuecanvas-nope is no service's repository" in unknown.stderr
