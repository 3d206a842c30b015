"""Every role's molecule `default` scenario: converge, idempotence and an assert-based
verify, run as `molecule test` from the role's directory, in the background, two at a time
(the AWS roles' each against an emulator of its own: tests/support/rehearsals.py)."""

from __future__ import annotations

import pytest

from tests.support.paths import REPO
from tests.support.rehearsals import BACKGROUND_ROLES, Rehearsals

ROLES_WITH_SCENARIOS = sorted(
    path.parents[2].name for path in REPO.glob("roles/*/molecule/default/molecule.yml")
)


def test_every_role_has_a_molecule_scenario() -> None:
    roles = sorted(path.name for path in (REPO / "roles").iterdir() if (path / "tasks").is_dir())

    assert roles == ROLES_WITH_SCENARIOS


def test_every_scenario_is_rehearsed_in_the_background() -> None:
    assert sorted(BACKGROUND_ROLES) == ROLES_WITH_SCENARIOS


@pytest.mark.platform
@pytest.mark.rehearsal
@pytest.mark.timeout(3000)  # it may wait for the background rehearsals
@pytest.mark.parametrize("role", ROLES_WITH_SCENARIOS)
def test_molecule_scenario(role: str, rehearsals: Rehearsals) -> None:
    result = rehearsals.molecule(role)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "idempotence: Executed: Successful" in output
    assert "verify: Executed: Successful" in output
