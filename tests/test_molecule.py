"""Every role's molecule `default` scenario: converge, idempotence and an assert-based
verify, run as `molecule test` from the role's directory. The AWS roles' scenarios run in
the background, two at a time, each against an emulator of its own (tests/support/rehearsals.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import BIN, REPO
from tests.support.rehearsals import AWS_ROLES, KUBE_ROLES, Rehearsals

ROLES_WITH_SCENARIOS = sorted(
    path.parents[2].name for path in REPO.glob("roles/*/molecule/default/molecule.yml")
)


def test_every_role_has_a_molecule_scenario() -> None:
    roles = sorted(path.name for path in (REPO / "roles").iterdir() if (path / "tasks").is_dir())

    assert roles == ROLES_WITH_SCENARIOS


@pytest.mark.platform
@pytest.mark.timeout(3000)  # an AWS scenario may wait for the background rehearsals
@pytest.mark.parametrize(
    "role",
    [pytest.param(role, marks=[pytest.mark.emulator, pytest.mark.rehearsal] if role in AWS_ROLES + KUBE_ROLES else [])
     for role in ROLES_WITH_SCENARIOS],
)  # fmt: skip
def test_molecule_scenario(role: str, request: pytest.FixtureRequest) -> None:
    if role in AWS_ROLES + KUBE_ROLES:
        rehearsals: Rehearsals = request.getfixturevalue("rehearsals")
        aws_result = rehearsals.molecule(role)
        output = aws_result.stdout + aws_result.stderr
        assert aws_result.returncode == 0, output[-6000:]
        assert "idempotence: Executed: Successful" in output
        assert "verify: Executed: Successful" in output
        return
    result = subprocess.run(
        [str(BIN / "molecule"), "test", "--scenario-name", "default"],
        cwd=REPO / "roles" / role,
        capture_output=True,
        text=True,
        timeout=1200,
        env={
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "MOLECULE_PYTHON": sys.executable,
            "ANSIBLE_NOCOLOR": "1",
            "NO_COLOR": "1",
        },
    )

    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "idempotence: Executed: Successful" in result.stdout + result.stderr
    assert "verify: Executed: Successful" in result.stdout + result.stderr
