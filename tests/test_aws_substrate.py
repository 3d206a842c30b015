"""The AWS substrate rehearsed end to end against the local AWS emulator: bad input fails
in the first play naming the variable and creates nothing; `--check` on an empty
environment creates nothing; site.yml provisions; a rerun and `--check` report no change;
teardown leaves nothing tagged for the environment. Also the cost table."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.rehearsals import SANDBOX, Rehearsals, playbook, tagged
from valuecanvas.localdev.emulator import aws_emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with aws_emulator(tmp_path_factory.mktemp("emulator") / "moto.log") as endpoint:
        yield endpoint


@pytest.mark.platform
@pytest.mark.parametrize(
    ("override", "variable", "message"),
    [
        (
            "aws_network_vpc_cidr=10.2.0.0/33",
            "aws_network_vpc_cidr",
            "must be an IPv4 network in CIDR form",
        ),
        (
            "aws_network_vpc_cidr=10.2.0.1/16",
            "aws_network_vpc_cidr",
            "must be an IPv4 network in CIDR form",
        ),
        ("aws_eks_node_min_size=5", "aws_eks_node_min_size", "not above aws_eks_node_max_size"),
        (
            "aws_rds_instance_class=db.x9.huge",
            "aws_rds_instance_class",
            "must be a known instance class",
        ),
        (
            "aws_elasticache_node_type=cache.t1.tiny",
            "aws_elasticache_node_type",
            "must be a known node type",
        ),
        # JSON extra vars keep YAML's types: an unquoted 1.28 is a number (1.30 would be 1.3).
        (
            '{"aws_eks_kubernetes_version": 1.28}',
            "aws_eks_kubernetes_version",
            "quoted Kubernetes minor version",
        ),
    ],
)
def test_bad_input_fails_in_the_first_play_naming_the_variable_and_creates_nothing(
    emulator: str, override: str, variable: str, message: str
) -> None:
    result = playbook("site.yml", "-e", override, endpoint=emulator)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{variable}: {message}" in output or (variable in output and message in output), output[
        -3000:
    ]
    assert "Check every input of the AWS substrate before any API call" in output
    assert "PLAY [Provision the AWS substrate]" not in output  # failed before any API call
    assert tagged(emulator) == {}


@pytest.mark.platform
def test_a_missing_required_variable_is_named(emulator: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text((SANDBOX / "hosts.yml").read_text())
    settings = yaml.safe_load((SANDBOX / "group_vars" / "all" / "aws.yml").read_text())
    del settings["aws_common_environment"]
    (inventory / "group_vars" / "all" / "aws.yml").write_text(yaml.safe_dump(settings))

    result = playbook("site.yml", endpoint=emulator, inventory=inventory)

    assert result.returncode != 0
    assert "aws_common_environment" in result.stdout + result.stderr
    assert tagged(emulator) == {}


@pytest.mark.platform
@pytest.mark.rehearsal
@pytest.mark.timeout(3000)  # waits for the background rehearsal
def test_the_sandbox_is_provisioned_idempotent_and_torn_down(rehearsals: Rehearsals) -> None:
    steps = rehearsals.lifecycle().steps  # plan, provision, rerun, teardown (in the background)
    for name, step in steps.items():
        assert step.result.returncode == 0, f"{name} failed:\n{step.tail()}"
    assert list(steps) == ["plan", "provision", "rerun", "teardown"]

    assert "would_create" in steps["plan"].result.stdout
    assert steps["plan"].left == {}, "check mode created something"

    assert steps["provision"].changed > 0
    made = steps["provision"].left
    assert len(made["vpcs"]) == 1
    assert len(made["subnets"]) == 6
    assert len(made["security_groups"]) == 5
    assert made["clusters"] == ["valuecanvas-sandbox"]
    assert made["databases"] == ["valuecanvas-sandbox-postgres"]
    assert made["load_balancers"] == ["valuecanvas-sandbox-alb"]
    assert len(made["repositories"]) == 8
    assert len(made["secrets"]) == 9  # database-app: the services' login role
    assert "valuecanvas-sandbox-svc-llm-proxy" in made["roles"]
    assert "valuecanvas-sandbox-external-secrets" in made["roles"]
    # Then Argo CD, into the Kubernetes API stand-in (the emulator's cluster has no API).
    provisioned = " ".join(steps["provision"].result.stdout.split())
    assert "PLAY [Bootstrap Argo CD in the cluster]" in provisioned
    assert "STAND-IN: installing the local chart" in provisioned
    assert "Wait for the root (at most argocd_bootstrap_wait_seconds)" in provisioned
    assert "would_bootstrap" in " ".join(steps["plan"].result.stdout.split())
    assert steps["plan"].cluster == {}, "check mode applied something to the cluster"
    cluster = steps["provision"].cluster
    assert "argocd" in cluster["namespaces"]
    assert "root" in cluster["applications"]
    assert cluster["secrets"] == ["in-cluster"]  # the cluster secret, with the outputs

    changed = [
        line for line in steps["rerun"].result.stdout.splitlines() if line.startswith("changed")
    ]
    assert steps["rerun"].changed == 0, changed
    assert steps["rerun"].left == made
    assert steps["rerun"].cluster == cluster

    assert (
        "Remove the platform's, then the add-ons' Applications" in steps["teardown"].result.stdout
    )
    assert "Nothing of sandbox is left" in steps["teardown"].result.stdout
    assert steps["teardown"].left == {}
    # Argo CD's Applications and the cluster secret go first (then the cluster itself).
    assert "applications" not in steps["teardown"].cluster
    assert "secrets" not in steps["teardown"].cluster


def cost_table(*extra: str) -> dict[str, float]:
    result = playbook("playbooks/cost.yml", *extra, inventory=REPO / "inventories" / "production")
    assert result.returncode == 0, result.stdout[-3000:]
    rows: dict[str, float] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s*-?\s*'?(\S.*?)\s{2,}.*?\s(\d+\.\d\d)'?$", line)
        if match:
            rows[match.group(1)] = float(match.group(2))
    return rows


def test_the_cost_table_follows_the_inventory_and_the_price_table() -> None:
    prices: dict[str, Any] = yaml.safe_load(
        (REPO / "playbooks" / "vars" / "aws_prices.yml").read_text()
    )
    hours, price = prices["aws_prices_hours_per_month"], prices["aws_prices"]

    production = cost_table()
    bigger = cost_table("-e", "aws_eks_node_desired_size=5", "-e", "aws_rds_multi_az=false")

    # Production: 3 x t3.medium; db.t3.medium Multi-AZ with 100 GiB gp3 (both doubled).
    assert production["EC2 nodes (t3.medium x3)"] == pytest.approx(
        round(price["ec2_hour"]["t3.medium"] * hours * 3, 2)
    )
    assert production["RDS PostgreSQL (db.t3.medium)"] == pytest.approx(
        round(
            (
                price["rds_postgres_hour"]["db.t3.medium"] * hours
                + price["rds_storage_gb_month"]["gp3"] * 100
            )
            * 2,
            2,
        )
    )
    assert bigger["EC2 nodes (t3.medium x5)"] == pytest.approx(
        round(price["ec2_hour"]["t3.medium"] * hours * 5, 2)
    )
    assert bigger["RDS PostgreSQL (db.t3.medium)"] == pytest.approx(
        production["RDS PostgreSQL (db.t3.medium)"] / 2, abs=0.01
    )
    total = sum(value for name, value in production.items() if name != "Total")
    assert production["Total"] == pytest.approx(total, abs=0.05)


@pytest.mark.platform
@pytest.mark.emulator
def test_the_nothing_left_check_reads_every_page(tmp_path: Path) -> None:
    """More log groups than one page (the emulator, like AWS, answers 50 at a time): the
    teardown check must still find every one."""
    import boto3

    from tests.support.rehearsals import BIN, tool_env

    with aws_emulator(tmp_path / "moto.log") as endpoint:
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name="us-east-1")  # fmt: skip
        logs = session.client("logs", endpoint_url=endpoint)
        for index in range(60):
            logs.create_log_group(logGroupName=f"/valuecanvas/pages/group-{index:03}")
        assert len(logs.describe_log_groups()["logGroups"]) == 50  # one page
        result = subprocess.run(
            [str(BIN / "ansible"), "localhost", "-i", "inventories/sandbox", "-o",
             "-m", "valuecanvas.aws.aws_environment_resources_info",
             "-a", f"environment=pages name_prefix=valuecanvas-pages endpoint_url={endpoint} "
                   "region=us-east-1 access_key=testing secret_key=testing"],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=tool_env(),
        )  # fmt: skip

    output = json.loads(result.stdout[result.stdout.index("{") :])
    assert len(output["resources"]["log_group"]) == 60, result.stdout[-2000:]
