"""The docs' examples and names, checked against what the code does, so they cannot drift:
the doctor output database.md shows, the configuration error the service docs show, and
every Ansible variable the docs name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import MIGRATIONS, REPO
from tests.support.servers import Database
from tests.test_settings_and_cli import run_cli
from valuecanvas.db.doctor import report, run_checks

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(path: Path) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), re.S)


async def test_the_doctor_output_in_database_md_is_what_doctor_prints(database: Database) -> None:
    (shown,) = [block for block in fenced_blocks(REPO / "docs" / "database.md")
                if block.startswith("ValueCanvas doctor:")]  # fmt: skip
    printed: list[str] = []

    report(database.owner_dsn, await run_checks(database.owner_dsn, MIGRATIONS), printed.append)

    def comparable(line: str) -> str:  # the DSN and the server's minor version vary
        return re.sub(
            r"PostgreSQL [\d.]+", "PostgreSQL N", re.sub(r"postgresql://\S+", "DSN", line)
        )

    assert [comparable(line) for line in shown.strip().splitlines()] == [
        comparable(line) for line in printed
    ]
    tables = int(re.search(r"on all (\d+) tables", "\n".join(printed)).group(1))  # type: ignore[union-attr]
    assert f"so `doctor` counts {tables}" in (REPO / "docs" / "database.md").read_text()
    spec_tables = len(
        re.findall(r"^create table public\.", (MIGRATIONS / "0002_schema.sql").read_text(), re.M)
    )
    assert spec_tables == 18
    assert f"The schema is the spec's {spec_tables}" in (REPO / "docs" / "database.md").read_text()


def test_the_configuration_error_the_docs_show_is_what_a_service_prints() -> None:
    printed = run_cli("serve", "target", env={}).stderr.strip()

    for doc in ("docs/services.md", "docs/local-platform.md"):
        shown = [line.strip() for block in fenced_blocks(REPO / doc) for line in block.splitlines()
                 if "invalid configuration" in line]  # fmt: skip
        assert shown == [printed], doc


def known_variables() -> set[str]:
    names: set[str] = set()
    for path in [
        *REPO.glob("roles/*/defaults/main.yml"),
        *REPO.glob("inventories/*/group_vars/all/*.yml"),
    ]:
        names.update((yaml.safe_load(path.read_text()) or {}).keys())
    # Facts the roles set for later roles (set_fact keys), and the repository's own modules.
    for path in [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/vars/*.yml")]:
        names.update(
            re.findall(r"^\s+((?:local_platform|aws_[a-z]+)_\w+):", path.read_text(), re.M)
        )
    names.update(
        path.stem for path in REPO.glob("collections/ansible_collections/*/*/plugins/modules/*.py")
    )
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        for spec in (yaml.safe_load(path.read_text())["argument_specs"]).values():
            names.update(spec.get("options", {}))
    # The cluster secret's annotations (argocd/clusters/: what the argocd_bootstrap role
    # writes; some are named like the facts they come from).
    for path in REPO.glob("argocd/clusters/*.yaml"):
        names.update(yaml.safe_load(path.read_text())["metadata"]["annotations"])
    return names


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_ansible_variable_the_docs_name_exists(doc: Path) -> None:
    text = doc.read_text()
    named = set(re.findall(r"`((?:local_platform|aws_[a-z]+)_[a-z0-9_]+)", text))
    # A setting shown with a value (`name: true`, `name=value`) must be a variable too.
    named |= {name for name in re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?::\s|=)", text)
              if not name.startswith(("ansible_", "loop_"))}  # fmt: skip

    unknown = sorted(named - known_variables())

    assert unknown == [], f"{doc.name} names variables no role or inventory defines: {unknown}"


def test_the_documented_make_targets_exist() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.M))
    named = {target for doc in DOCS for target in re.findall(r"`make ([a-z-]+)", doc.read_text())}

    assert named - targets == set()


def test_the_readme_commands_name_real_cli_commands() -> None:
    commands = set(re.findall(r"valuecanvas ([a-z-]+) --", (REPO / "README.md").read_text()))
    help_text = subprocess.run([str(Path(sys.executable).parent / "valuecanvas"), "--help"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip

    assert commands
    assert all(command in help_text for command in commands), commands
    assert "\nopen " not in (REPO / "README.md").read_text()  # Debian has no `open`


ROLES = sorted(path.parents[1] for path in REPO.glob("roles/*/meta/argument_specs.yml"))


def test_every_role_readme_is_generated_from_its_current_spec() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "role_docs.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert sorted(path.parent for path in REPO.glob("roles/*/README.md")) == ROLES


@pytest.mark.parametrize("role", ROLES, ids=lambda path: path.name)
def test_every_role_default_is_commented_and_in_the_argument_spec(role: Path) -> None:
    """A default is documented twice over: a comment above it (or above the run of lines it
    belongs to) where it is set, and a description in the argument spec (the README)."""
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = spec["main"].get("options", {})
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    uncommented, unspecified = [], []
    for index, line in enumerate(lines):
        match = re.match(r"([a-z]\w*):", line)
        if not match:
            continue
        if not options.get(match[1], {}).get("description"):
            unspecified.append(match[1])
        above = index - 1
        while above >= 0 and re.match(r"[a-z_]\w*:|\s", lines[above]):
            above -= 1  # the same run of settings (or the previous one's continuation)
        if above < 0 or not lines[above].startswith("#"):
            uncommented.append(match[1])

    assert not uncommented, f"defaults without a comment: {uncommented}"
    assert not unspecified, f"defaults without a described argument spec entry: {unspecified}"


MODULES = sorted((REPO / "collections" / "ansible_collections").glob("*/*/plugins/modules/*.py"))


def accepted_options(module: Path) -> dict[str, dict[str, object]]:
    """The argument_spec a module hands to its AnsibleModule: a literal, which may name the
    module's own top-level constants."""
    tree = ast.parse(module.read_text())
    constants: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            constants |= {
                t.id: ast.literal_eval(node.value) for t in node.targets if isinstance(t, ast.Name)
            }
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "argument_spec":
            expression = ast.Expression(node.value)
            spec: dict[str, dict[str, object]] = eval(  # noqa: S307 (literals and constants only)
                compile(expression, module.name, "eval"), {"__builtins__": {}}, constants
            )
            return spec
    raise AssertionError(f"{module.name} has no argument_spec literal")


def test_every_collection_module_documents_exactly_the_options_it_accepts() -> None:
    """ansible-doc reads every module's documentation (fragments included), and the options
    it shows are the ones the module accepts, with the same type, default and choices.
    The AWS modules also take amazon.aws's connection options, which AnsibleAWSModule adds."""
    names = [f"valuecanvas.{m.parents[2].name}.{m.stem}" for m in MODULES]
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", *names],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    docs = {
        name.rsplit(".", 1)[1]: entry["doc"] for name, entry in yaml.safe_load(shown.stdout).items()
    }
    assert sorted(docs) == sorted(m.stem for m in MODULES)
    connection = set(docs["eks_access"]["options"]) - {"cluster_name"}
    assert {"region", "access_key", "endpoint_url"} <= connection
    for module in MODULES:
        doc = docs[module.stem]
        assert doc.get("description"), f"{module.stem} has no description"
        options = {
            name: option for name, option in doc["options"].items()
            if not (module.parents[2].name == "aws" and name in connection)
        }  # fmt: skip
        accepted = accepted_options(module)
        assert sorted(options) == sorted(accepted), module.stem
        for name, spec in accepted.items():
            for key in ("type", "default", "choices", "elements", "required"):
                documented = options[name].get(key, False if key == "required" else None)
                if key == "default" and documented is None and spec.get("default") in ({}, []):
                    documented = spec["default"]  # ansible-doc shows {} and [] defaults as given
                assert documented == spec.get(key, False if key == "required" else None), (
                    f"{module.stem}: option {name}'s {key}"
                )
