"""The slow rehearsals, run two at a time in the background so that CI stays short: the
sandbox's whole lifecycle (plan, provision, rerun, teardown), every AWS role's
molecule scenario, each against an emulator of its own, and the local platform's. Tests wait for their own
job's result and assert on it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from tests.support.paths import BIN, REPO
from valuecanvas.localdev.emulator import aws_emulator
from valuecanvas.localdev.kube_standin import kube_standin

SANDBOX = REPO / "inventories" / "sandbox"
AWS_ROLES = sorted(
    path.parents[2].name for path in REPO.glob("roles/aws_*/molecule/default/molecule.yml")
)
# Rehearsed in the background too, against the Kubernetes API stand-in.
KUBE_ROLES = ["argocd_bootstrap"]
# And the local platform's scenario (its own state directory, ports from 29000): no emulator.
LOCAL_ROLES = ["local_platform"]
BACKGROUND_ROLES = AWS_ROLES + KUBE_ROLES + LOCAL_ROLES


def tool_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "MOLECULE_PYTHON": sys.executable, **extra}  # fmt: skip


def make(*args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A Makefile target, silent, as a user runs it (the venv's tools first on PATH)."""
    return subprocess.run(["make", "-s", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout, env=tool_env())  # fmt: skip


def playbook(
    *args: str, endpoint: str | None = None, inventory: Path = SANDBOX, kube: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["-e", f"aws_common_endpoint_url={endpoint}"] if endpoint else []
    env = tool_env(VALUECANVAS_KUBE_ENDPOINT=kube) if kube else tool_env()
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), *extra, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, env=env)  # fmt: skip


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+(.*)", result.stdout)
    if not match:
        return {}
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def tagged(endpoint: str, environment: str = "sandbox") -> dict[str, list[str]]:
    """What the environment has, looked up with boto3 (not with the playbooks' own module)."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    ec2 = session.client("ec2", endpoint_url=endpoint)
    tag = [{"Name": "tag:Environment", "Values": [environment]}]
    found = {
        "vpcs": [vpc["VpcId"] for vpc in ec2.describe_vpcs(Filters=tag)["Vpcs"]],
        "subnets": [subnet["SubnetId"] for subnet in ec2.describe_subnets(Filters=tag)["Subnets"]],
        "security_groups": [group["GroupId"] for group in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "nat_gateways": [nat["NatGatewayId"] for nat in ec2.describe_nat_gateways(Filter=tag)["NatGateways"]
                         if nat["State"] in ("pending", "available")],
        "clusters": session.client("eks", endpoint_url=endpoint).list_clusters()["clusters"],
        "databases": [db["DBInstanceIdentifier"] for db in
                      session.client("rds", endpoint_url=endpoint).describe_db_instances()["DBInstances"]],
        "load_balancers": [lb["LoadBalancerName"] for lb in
                           session.client("elbv2", endpoint_url=endpoint).describe_load_balancers()["LoadBalancers"]],
        "repositories": [repo["repositoryName"] for repo in
                         session.client("ecr", endpoint_url=endpoint).describe_repositories()["repositories"]],
        "roles": [role["RoleName"] for role in
                  session.client("iam", endpoint_url=endpoint).list_roles(PathPrefix=f"/valuecanvas/{environment}/")["Roles"]],
        "secrets": [secret["Name"] for secret in
                    session.client("secretsmanager", endpoint_url=endpoint).list_secrets()["SecretList"]],
    }  # fmt: skip
    return {kind: ids for kind, ids in found.items() if ids}


def in_cluster(kube: str) -> dict[str, list[str]]:
    """What the Kubernetes API stand-in holds of Argo CD's bootstrap (names), looked up with
    plain HTTP (not with the playbooks' modules)."""
    paths = {
        "namespaces": "/api/v1/namespaces",
        "applications": "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
        "projects": "/apis/argoproj.io/v1alpha1/namespaces/argocd/appprojects",
        "secrets": "/api/v1/namespaces/argocd/secrets",
    }
    found = {kind: sorted(item["metadata"]["name"] for item in
                          httpx.get(f"{kube}{path}", timeout=10).json().get("items", []))
             for kind, path in paths.items()}  # fmt: skip
    return {kind: names for kind, names in found.items() if names}


@dataclass
class Step:
    name: str
    result: subprocess.CompletedProcess[str]
    left: dict[str, list[str]]  # what the emulator held after the step
    cluster: dict[str, list[str]]  # what the Kubernetes API stand-in held after it

    @property
    def changed(self) -> int:
        return recap(self.result).get("changed", -1)

    def tail(self, characters: int = 6000) -> str:
        return (self.result.stdout + self.result.stderr)[-characters:]


@dataclass
class Lifecycle:
    steps: dict[str, Step] = field(default_factory=dict)


def sandbox_lifecycle(workdir: Path) -> Lifecycle:
    """check on empty, provision, rerun, teardown: in order, stopping at the first failure
    (the test reports it). No check-mode run on the provisioned sandbox: it costs as much as
    the rerun (3 CPU-minutes) and takes the rerun's code paths (the modules compare, then
    stop before changing); the rerun's changed=0 stands for it."""
    lifecycle = Lifecycle()
    with (aws_emulator(workdir / "moto-lifecycle.log") as endpoint,
          kube_standin(workdir / "kube-lifecycle.log") as kube):  # fmt: skip
        for name, args in [
            ("plan", ("site.yml", "--check")),
            ("provision", ("site.yml",)),
            ("rerun", ("site.yml",)),
            ("teardown", ("playbooks/teardown.yml",)),
        ]:
            result = playbook(*args, endpoint=endpoint, kube=kube)
            lifecycle.steps[name] = Step(name, result, tagged(endpoint), in_cluster(kube))
            if result.returncode != 0:
                break
    return lifecycle


def molecule_scenario(role: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    # A fresh emulator has nothing: forget that an earlier run already prepared the scenario.
    subprocess.run([str(BIN / "molecule"), "reset", "--scenario-name", "default"], cwd=REPO / "roles" / role,
                   capture_output=True, timeout=300, env=tool_env(), check=True)  # fmt: skip
    if role in LOCAL_ROLES:
        return subprocess.run([str(BIN / "molecule"), "test", "--scenario-name", "default"], cwd=REPO / "roles" / role,
                              capture_output=True, text=True, timeout=1800, env=tool_env())  # fmt: skip
    if role in KUBE_ROLES:
        with kube_standin(workdir / f"kube-{role}.log") as kube:
            return subprocess.run([str(BIN / "molecule"), "test", "--scenario-name", "default"], cwd=REPO / "roles" / role,
                                  capture_output=True, text=True, timeout=1800,
                                  env=tool_env(VALUECANVAS_KUBE_ENDPOINT=kube))  # fmt: skip
    with aws_emulator(workdir / f"moto-{role}.log") as endpoint:
        return subprocess.run([str(BIN / "molecule"), "test", "--scenario-name", "default"], cwd=REPO / "roles" / role,
                              capture_output=True, text=True, timeout=1800,
                              env=tool_env(VALUECANVAS_AWS_ENDPOINT=endpoint))  # fmt: skip


class Rehearsals:
    """Started once, on first use; two jobs at a time (the machine has two cores)."""

    def __init__(self, workdir: Path) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rehearsal")
        # The longest first: the sandbox's lifecycle, then the local platform's scenario.
        jobs: dict[str, Callable[[], object]] = {"lifecycle": lambda: sandbox_lifecycle(workdir)}
        for role in LOCAL_ROLES + AWS_ROLES + KUBE_ROLES:
            jobs[role] = lambda role=role: molecule_scenario(role, workdir)  # type: ignore[misc]
        self.futures: dict[str, Future[object]] = {
            name: self.pool.submit(job) for name, job in jobs.items()
        }

    def lifecycle(self) -> Lifecycle:
        result = self.futures["lifecycle"].result()
        assert isinstance(result, Lifecycle)
        return result

    def molecule(self, role: str) -> subprocess.CompletedProcess[str]:
        result = self.futures[role].result()
        assert isinstance(result, subprocess.CompletedProcess)
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
