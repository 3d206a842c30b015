"""The service catalogue (services/valuecanvas/catalogue/<name>.yaml) is the only place a
service's name and port are written: Python and Ansible read it, nothing else lists them."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.paths import REPO
from tests.support.rehearsals import BIN, tool_env
from valuecanvas.catalogue import CatalogueEntry, catalogue
from valuecanvas.registry import SERVICES

CATALOGUE_DIR = "services/valuecanvas/catalogue"
# Where services may be named: the catalogue itself, docs, the tests (which check it), and
# the schema's check constraint on agent names (a migration cannot read the catalogue;
# the generated models restate the schema), and the cluster secrets of argocd/clusters/,
# whose service_role_arns is aws_iam's output recorded as the argocd_bootstrap role writes
# it (tests/test_gitops.py holds it to the catalogue).
# The gateway's route table names the service each public path goes to (by catalogue name,
# checked against the catalogue when the gateway starts): routing, not a service list. So
# do the workflow definitions name each step's agent (checked against the catalogue). And
# a Python import names a package (``from valuecanvas.target.schemas import ...``): code's
# structure, not a list, so import lines are not counted.
ALLOWED = (CATALOGUE_DIR, "tests/", "docs/", "README.md", "requirements.lock", "local.env.example",
           "migrations/", "services/valuecanvas/generated/", "argocd/clusters/",
           "services/valuecanvas/api_gateway/routes.yaml",
           "services/valuecanvas/orchestrator/definitions/")  # fmt: skip


def test_each_entry_is_valid_and_unique() -> None:
    entries = list(catalogue().values())

    assert len({entry.name for entry in entries}) == len(entries) == 8
    assert len({entry.port for entry in entries}) == len(entries)
    assert len({entry.module for entry in entries}) == len(entries)
    assert [entry.port for entry in entries] == sorted(entry.port for entry in entries)
    with pytest.raises(ValidationError, match="autoscaling"):
        CatalogueEntry.model_validate({**entries[0].model_dump(), "autoscaling": "huge"})


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_each_service_takes_its_name_and_port_from_its_entry(name: str) -> None:
    entry = catalogue()[name]
    module = importlib.import_module(f"valuecanvas.{entry.module}.settings")
    settings_class = SERVICES[name].settings_class()

    assert module.SERVICE is entry
    assert settings_class.model_fields["port"].default == entry.port
    assert settings_class.model_fields["service_name"].default == name


def test_the_ansible_roles_read_the_catalogue(tmp_path: Path) -> None:
    """The lists each role uses are the catalogue's (ansible's own templating, not a copy)."""
    expressions = {
        "local": "local_platform_services | map(attribute='name') | list",
        "ports": "local_platform_services | map(attribute='port') | list",
        "ecr": "aws_ecr_repositories",
        "logs": "aws_observability_services",
        "iam": "aws_iam_service_accounts",
        "edge": "aws_edge_target_port",
    }
    seen_file = tmp_path / "seen.json"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": role, "tasks_from": "validate", "public": True}}
            for role in ("aws_ecr", "aws_observability", "aws_iam", "aws_edge")
        ]
        + [
            {"ansible.builtin.include_vars": {"file": str(REPO / "roles/local_platform/defaults/main.yml")}},
            {"ansible.builtin.copy": {"dest": str(seen_file), "mode": "0600", "content": "{{ "
             + "{" + ", ".join(f"'{key}': {value}" for key, value in expressions.items()) + "} | to_json }}"}},
        ],
    }  # fmt: skip
    playbook = tmp_path / "catalogue.yml"
    playbook.write_text(json.dumps([play]))
    result = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "inventories/production", str(playbook),
             "-e", f"local_platform_repo_dir={REPO}"],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=tool_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    seen = json.loads(seen_file.read_text())

    entries = list(catalogue().values())
    assert seen["local"] == [entry.name for entry in entries]
    assert seen["ports"] == [entry.port for entry in entries]
    assert seen["ecr"] == [entry.image for entry in entries]
    assert seen["logs"] == [entry.name for entry in entries]
    assert seen["iam"] == {
        **{entry.name: entry.secrets for entry in entries},
        "migrations": ["database", "database-app"],
    }
    assert int(seen["edge"]) == catalogue()["api-gateway"].port


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return [name for name in listed if not name.startswith(ALLOWED) and "/molecule/" not in name
            and (REPO / name).is_file()]  # fmt: skip


def test_nothing_else_names_a_service_port_or_lists_the_services() -> None:
    ports = re.compile(r"\b(" + "|".join(str(e.port) for e in catalogue().values()) + r")\b")
    names = [entry.name for entry in catalogue().values()]
    offenders = []
    imports = re.compile(r"^(from|import) valuecanvas\.\S+.*$", re.M)
    for name in tracked_files():
        text = imports.sub("", (REPO / name).read_text(errors="replace"))
        if ports.search(text):
            offenders.append(f"{name}: a service port ({ports.search(text).group(0)})")  # type: ignore[union-attr]
        listed = [service for service in names if re.search(rf"\b{re.escape(service)}\b", text)]
        if len(listed) >= 3:
            offenders.append(f"{name}: a list of services ({', '.join(listed)})")

    assert offenders == []
