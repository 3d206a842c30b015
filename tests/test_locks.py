"""The two lock files: requirements.lock (everything: the services, the local platform, the
linters and the tests) and requirements.runtime.lock (the services' own dependencies, what
the container image installs). Both come from `make lock`; they must agree."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from tests.support.paths import REPO


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]
    wanted_by: frozenset[str]  # uv's "# via" lines: who asked for it


def pins(name: str) -> dict[str, Pin]:
    found: dict[str, Pin] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (REPO / name).read_text()):
        match = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s\\;]+)", block)
        if match:
            via = re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9._-]+)\s*$", block, re.M)
            found[match[1].lower()] = Pin(
                match[2],
                frozenset(re.findall(r"--hash=(sha256:\w+)", block)),
                frozenset(who.lower() for who in via) - {"via"},
            )
    return found


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=;\s]", requirement, maxsplit=1)[0].lower()


def test_the_runtime_lock_pins_what_the_full_lock_pins_with_its_hashes() -> None:
    full, runtime = pins("requirements.lock"), pins("requirements.runtime.lock")

    assert runtime, "requirements.runtime.lock pins nothing"
    differing = {
        name: (pin.version, full[name].version if name in full else None)
        for name, pin in runtime.items()
        if name not in full or (full[name].version, full[name].hashes) != (pin.version, pin.hashes)
    }
    assert not differing, f"make lock: the runtime lock differs from the full lock: {differing}"
    assert all(pin.hashes for pin in runtime.values())


def test_the_runtime_lock_has_every_service_dependency_and_no_development_tool() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = pins("requirements.runtime.lock")

    missing = [
        requirement_name(dep)
        for dep in project["dependencies"]
        if requirement_name(dep) not in runtime
    ]
    # A development extra may be there only because a service dependency needs it (httpx2,
    # through genai-prices), not for itself.
    dev_only = [
        requirement_name(dep)
        for dep in project["optional-dependencies"]["dev"]
        if requirement_name(dep) in runtime
        and not runtime[requirement_name(dep)].wanted_by - {"requirements.lock"}
    ]
    assert not missing, f"service dependencies missing from requirements.runtime.lock: {missing}"
    assert not dev_only, f"development tools in requirements.runtime.lock: {dev_only}"
