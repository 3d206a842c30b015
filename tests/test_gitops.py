"""argocd/: the ApplicationSets expanded as Argo CD would (valuecanvas.gitops), what they
make for each environment, the checks that refuse a bad root before anything is applied,
and the argocd_bootstrap role against the Kubernetes API stand-in.

The generator semantics asserted here are Argo CD's documented ones (ApplicationSet
"Cluster Generator", "Git Generator - directories", "Matrix Generator", "Go Template"):
a cluster's parameters are name, nameNormalized, server, metadata.labels and
metadata.annotations; a directory's are path.path, path.basename, path.basenameNormalized
and path.segments; an excluded directory pattern wins over an included one; a matrix
makes the product of its two children's parameter sets; with missingkey=error a missing
key fails the ApplicationSet."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import BIN, REPO
from tests.support.rehearsals import in_cluster, tool_env
from valuecanvas import gitops
from valuecanvas.catalogue import catalogue
from valuecanvas.localdev.kube_standin import kube_standin

ENVIRONMENTS = sorted(path.stem for path in (REPO / "argocd" / "clusters").glob("*.yaml"))
ADDONS = {
    "argo-cd", "aws-load-balancer-controller", "external-secrets", "cluster-autoscaler",
    "metrics-server", "kube-prometheus-stack", "argo-rollouts", "cluster-secret-store",
}  # fmt: skip


def cluster(env: str = "production") -> gitops.Cluster:
    return gitops.load_cluster(REPO, env)


def secret(env: str = "production") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO / "argocd" / "clusters" / f"{env}.yaml").read_text()
    )
    return loaded


def appset(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "argocd" / "root" / f"{name}.yaml").read_text())
    return loaded


def by_name(applications: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {app["metadata"]["name"]: app for app in applications}


# ---- the generators --------------------------------------------------------------------


def made(labels: dict[str, str], name: str = "c") -> gitops.Cluster:
    return gitops.Cluster(name, gitops.IN_CLUSTER, labels, {})


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, ["a", "b", "c"]),
        ({"matchLabels": {"environment": "production"}}, ["a"]),
        ({"matchExpressions": [{"key": "environment", "operator": "In", "values": ["staging", "production"]}]}, ["a", "b"]),
        ({"matchExpressions": [{"key": "environment", "operator": "NotIn", "values": ["production"]}]}, ["b", "c"]),
        ({"matchExpressions": [{"key": "enable_x", "operator": "Exists"}]}, ["b"]),
        ({"matchExpressions": [{"key": "enable_x", "operator": "DoesNotExist"}]}, ["a", "c"]),
        ({"matchLabels": {"environment": "staging"},
          "matchExpressions": [{"key": "enable_x", "operator": "DoesNotExist"}]}, []),
    ],
)  # fmt: skip
def test_the_clusters_generator_selects_by_labels(
    selector: dict[str, Any], expected: list[str]
) -> None:
    clusters = [
        made({"environment": "production"}, "a"),
        made({"environment": "staging", "enable_x": "true"}, "b"),
        made({}, "c"),
    ]
    params = gitops.generate({"clusters": {"selector": selector}}, clusters, REPO)

    assert [p["name"] for p in params] == expected
    for p in params:
        assert set(p) == {"name", "nameNormalized", "server", "metadata"}
        assert set(p["metadata"]) == {"labels", "annotations"}


def test_the_git_directories_generator_excludes_and_names_paths(tmp_path: Path) -> None:
    for folder in ("apps/a_b", "apps/common", "apps/zed", "other/x"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "apps" / "file.yaml").write_text("not a directory\n")
    spec = {"directories": [{"path": "apps/*"}, {"path": "apps/common", "exclude": True}]}

    params = gitops.generate({"git": spec}, [], tmp_path)

    assert params == [
        {"path": {"path": "apps/a_b", "basename": "a_b", "basenameNormalized": "a-b",
                  "segments": ["apps", "a_b"]}},
        {"path": {"path": "apps/zed", "basename": "zed", "basenameNormalized": "zed",
                  "segments": ["apps", "zed"]}},
    ]  # fmt: skip


def test_a_matrix_is_the_product_of_its_two_children(tmp_path: Path) -> None:
    for folder in ("apps/one", "apps/two", "apps/three"):
        (tmp_path / folder).mkdir(parents=True)
    clusters = [made({"e": "1"}, "x"), made({"e": "1"}, "y")]
    matrix = {
        "matrix": {"generators": [{"clusters": {}}, {"git": {"directories": [{"path": "apps/*"}]}}]}
    }

    params = gitops.generate(matrix, clusters, tmp_path)

    assert sorted((p["name"], p["path"]["basename"]) for p in params) == sorted(
        (c, d) for c in ("x", "y") for d in ("one", "two", "three")
    )


def test_templates_substitute_fields_and_refuse_what_they_cannot_expand() -> None:
    params = {"name": "in-cluster", "metadata": {"annotations": {"aws_region": "eu-west-1"}}}
    where = "ApplicationSet t"

    assert gitops.render_template(
        {"a": ["{{.name}}-{{ .metadata.annotations.aws_region }}"]}, params, where
    ) == {"a": ["in-cluster-eu-west-1"]}
    with pytest.raises(
        gitops.GitOpsError,
        match=r'\{\{.metadata.annotations.rds_endpoint\}\}: no such parameter \(map has no entry for key "rds_endpoint"\)',
    ):
        gitops.render_template("{{.metadata.annotations.rds_endpoint}}", params, where)
    with pytest.raises(
        gitops.GitOpsError, match=r"\{\{ \.name \| upper \}\}: only field references"
    ):
        gitops.render_template("{{ .name | upper }}", params, where)
    with pytest.raises(gitops.GitOpsError, match="is not a single value"):
        gitops.render_template("{{.metadata}}", params, where)


def test_an_applicationset_must_fail_on_a_missing_key() -> None:
    lenient = copy.deepcopy(appset("platform"))
    lenient["spec"]["goTemplateOptions"] = []

    with pytest.raises(
        gitops.GitOpsError,
        match="ApplicationSet platform: set goTemplate: true and goTemplateOptions: \\[missingkey=error\\]",
    ):
        gitops.expand(lenient, [cluster()], REPO)


# ---- what the root makes -----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_root_makes_one_application_per_chart_and_per_addon(env: str) -> None:
    plan = gitops.plan(REPO, cluster(env))
    apps = by_name(plan.applications)

    charts = set(catalogue()) | {"platform"}
    assert set(apps) == charts | ADDONS
    assert set(plan.projects) == {"bootstrap", "valuecanvas", "cluster-addons"}
    for name in charts:
        app = apps[name]
        assert app["spec"]["project"] == "valuecanvas"
        assert app["spec"]["destination"] == {
            "server": gitops.IN_CLUSTER,
            "namespace": "valuecanvas",
        }
        source = app["spec"]["source"]
        assert source["path"] == f"apps/{name}"
        assert source["repoURL"] == secret(env)["metadata"]["annotations"]["workload_repo_url"]
        # The documented values order: catalogue entry, defaults, environment, the chart's own.
        assert source["helm"]["valueFiles"] == [
            f"../../services/valuecanvas/catalogue/{name}.yaml", "../defaults.yaml",
            f"../environments/{env}.yaml", f"values-{env}.yaml",
        ]  # fmt: skip
        assert app["metadata"]["labels"]["valuecanvas.io/environment"] == env
        policy = app["spec"]["syncPolicy"]
        assert policy["automated"] == {"prune": True, "selfHeal": True}
        assert policy["retry"]["limit"] > 0
        assert policy["retry"]["backoff"]["factor"] > 1
        assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(
            policy["syncOptions"]
        )
        assert {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]} in app[
            "spec"
        ]["ignoreDifferences"]
    for name in ADDONS:
        assert apps[name]["spec"]["project"] == "cluster-addons"
        assert apps[name]["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


def test_the_addons_sync_before_the_platform_and_the_projects_first() -> None:
    waves = {
        document["metadata"]["name"]: int(
            document["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        )
        for document in gitops.load_documents(REPO / "argocd" / "root")
    }

    assert max(waves[name] for name in ("bootstrap", "valuecanvas", "cluster-addons")) < min(
        wave
        for name, wave in waves.items()
        if name not in ("bootstrap", "valuecanvas", "cluster-addons")
    )
    assert waves["argo-cd"] < waves["external-secrets"] < waves["cluster-secret-store"]
    assert max(wave for name, wave in waves.items() if name != "platform") < waves["platform"]


def test_every_upstream_chart_is_pinned_and_argo_cd_manages_itself() -> None:
    plan = gitops.plan(REPO, cluster())
    charts = [
        source for app in plan.applications for source in gitops.sources(app) if source.get("chart")
    ]

    assert (
        len(charts) == len(ADDONS) - 1
    )  # all but cluster-secret-store, a chart of this repository
    assert all(gitops.PINNED.match(source["targetRevision"]) for source in charts)
    argo = by_name(plan.applications)["argo-cd"]
    assert argo["spec"]["sources"][0]["helm"]["releaseName"] == "argocd"
    assert argo["spec"]["destination"]["namespace"] == "argocd"
    # No cascading finalizer: removing the Application must not uninstall Argo CD mid-sync.
    assert "finalizers" not in argo["metadata"]


def test_the_addons_get_their_values_from_the_cluster_secret() -> None:
    apps = by_name(gitops.plan(REPO, cluster()).applications)
    annotations = secret()["metadata"]["annotations"]

    lbc = {
        p["name"]: p["value"]
        for p in apps["aws-load-balancer-controller"]["spec"]["sources"][0]["helm"]["parameters"]
    }
    assert lbc == {
        "clusterName": annotations["aws_cluster_name"], "region": annotations["aws_region"],
        "vpcId": annotations["aws_vpc_id"],
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn": annotations["aws_load_balancer_controller_role_arn"],
    }  # fmt: skip


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_cluster_secret_names_every_service_accounts_role(env: str) -> None:
    annotations = secret(env)["metadata"]["annotations"]
    roles = json.loads(annotations["service_role_arns"])

    assert set(roles) == set(catalogue()) | {"migrations"}
    for account, arn in roles.items():
        assert arn == annotations["aws_service_role_arn_prefix"] + account
        assert arn.startswith(
            f"arn:aws:iam::{annotations['aws_account_id']}:role/valuecanvas/{env}/"
        )


def test_adding_a_service_takes_its_chart_folder(tmp_path: Path) -> None:
    for folder in ("apps", "argocd"):
        shutil.copytree(REPO / folder, tmp_path / folder, symlinks=True)
    shutil.copytree(REPO / "apps" / "target", tmp_path / "apps" / "forecast", symlinks=True)

    apps = by_name(gitops.plan(tmp_path, gitops.load_cluster(tmp_path, "production")).applications)

    assert apps["forecast"]["spec"]["source"]["path"] == "apps/forecast"
    assert apps["forecast"]["spec"]["source"]["helm"]["releaseName"] == "forecast"


# ---- bad input: refused before anything is applied -------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    for folder in ("apps", "argocd"):
        shutil.copytree(REPO / folder, tmp_path / folder, symlinks=True)
    return tmp_path


def plan_error(repo: Path, env: str = "production") -> str:
    with pytest.raises(gitops.GitOpsError) as raised:
        gitops.plan(repo, gitops.load_cluster(repo, env))
    return str(raised.value)


def edit_yaml(path: Path, change: Any) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    for document in documents:
        if document:
            change(document)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def test_a_cluster_secret_without_an_output_is_named(scratch: Path) -> None:
    edit_yaml(
        scratch / "argocd/clusters/production.yaml",
        lambda s: s["metadata"]["annotations"].pop("rds_endpoint"),
    )

    assert 'map has no entry for key "rds_endpoint"' in plan_error(scratch)


def test_an_empty_output_is_named(scratch: Path) -> None:
    edit_yaml(
        scratch / "argocd/clusters/production.yaml",
        lambda s: s["metadata"]["annotations"].update(target_group_arn=""),
    )

    assert "annotations without a value: target_group_arn" in plan_error(scratch)


def test_an_unpinned_chart_is_named(scratch: Path) -> None:
    def unpin(document: dict[str, Any]) -> None:
        document["spec"]["template"]["spec"]["sources"][0]["targetRevision"] = "3.*"

    edit_yaml(scratch / "argocd/root/metrics-server.yaml", unpin)

    assert (
        plan_error(scratch)
        == "Application metrics-server: chart metrics-server version 3.* is not pinned (x.y.z)"
    )


def test_an_application_outside_its_project_is_named(scratch: Path) -> None:
    edit_yaml(scratch / "argocd/clusters/production.yaml",
              lambda s: s["metadata"]["annotations"].update(workload_repo_url="https://github.com/someone/fork.git"))  # fmt: skip
    message = plan_error(scratch)
    assert (
        "Application api-gateway: source https://github.com/someone/fork.git is outside AppProject valuecanvas's sourceRepos"
        in message
    )

    shutil.rmtree(scratch / "argocd")
    shutil.copytree(REPO / "argocd", scratch / "argocd")

    def elsewhere(document: dict[str, Any]) -> None:
        document["spec"]["template"]["spec"]["destination"]["namespace"] = "kube-system"

    edit_yaml(scratch / "argocd/root/platform.yaml", elsewhere)
    assert (
        "Application target: destination namespace kube-system is outside AppProject valuecanvas's destinations"
        in plan_error(scratch)
    )


def test_an_environment_without_chart_values_is_named(scratch: Path) -> None:
    (scratch / "apps/environments/staging.yaml").unlink()

    assert (
        "Application target: apps/environments/staging.yaml: missing (the charts' values for this environment)"
        in plan_error(scratch, "staging")
    )


def test_a_cluster_scoped_kind_outside_the_project_is_refused() -> None:
    project = gitops.plan(REPO, cluster()).projects["valuecanvas"]
    objects = [
        {"apiVersion": "v1", "kind": "Namespace"},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"},
        {"apiVersion": "apps/v1", "kind": "Deployment"},
    ]

    assert gitops.cluster_kinds_outside(project, objects) == [
        "rbac.authorization.k8s.io/ClusterRole"
    ]
    assert (
        gitops.cluster_kinds_outside(
            gitops.plan(REPO, cluster()).projects["cluster-addons"], objects
        )
        == []
    )


# ---- the argocd_bootstrap role against the Kubernetes API stand-in -----------------------

CONVERGE = REPO / "tests" / "molecule" / "argocd" / "converge.yml"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[str]:
    with kube_standin(tmp_path / "kube.log") as endpoint:
        yield endpoint


def bootstrap(endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The molecule scenario's converge playbook (the outputs the AWS roles publish)."""
    local = [
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={BIN / 'python'}",
    ]
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *local, str(CONVERGE), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=tool_env(VALUECANVAS_KUBE_ENDPOINT=endpoint),
    )  # fmt: skip


def said(result: subprocess.CompletedProcess[str]) -> str:
    """The run's output with its line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.mark.platform
def test_missing_outputs_are_named_and_nothing_is_applied(standin: str) -> None:
    """As if the aws_rds and aws_edge roles had not produced their outputs."""
    result = bootstrap(standin, "-e", '{"aws_rds_endpoint": "", "aws_edge_target_group_arn": ""}')

    output = said(result)
    assert result.returncode != 0
    assert ("produced: rds_endpoint from aws_rds_endpoint (aws_rds); "
            "target_group_arn from aws_edge_target_group_arn (aws_edge)") in output  # fmt: skip
    assert "namespaces" not in in_cluster(standin)


@pytest.mark.platform
def test_a_root_outside_its_project_fails_before_anything_is_applied(standin: str) -> None:
    result = bootstrap(
        standin, "-e", "argocd_bootstrap_repo_url=https://github.com/someone/fork.git"
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "source https://github.com/someone/fork.git is outside AppProject bootstrap's sourceRepos"
        in output
    )
    assert "namespaces" not in in_cluster(standin)


# Check mode applying nothing to the cluster, and the teardown removing the Applications and
# the cluster secret, are asserted on the sandbox's lifecycle (test_aws_substrate.py), which
# runs both against the same stand-in.


@pytest.mark.platform
def test_an_unhealthy_root_fails_within_the_deadline_naming_it(tmp_path: Path) -> None:
    with kube_standin(tmp_path / "kube.log", health="Degraded") as endpoint:
        result = bootstrap(endpoint, "-e", "argocd_bootstrap_wait_seconds=3")

    output = said(result)
    assert result.returncode != 0
    assert "Argo CD did not report the root synced and healthy within 3 s" in output
    assert (
        "Not healthy: root Degraded: Degraded (stand-in for Argo CD's application controller"
        in output
    )


# ---- Argo CD's own values, and the EKS access the role connects with ----------------------


def test_argo_cd_is_highly_available_in_production_with_metrics_and_notifications() -> None:
    values = yaml.safe_load((REPO / "argocd/addons/argo-cd/values.yaml").read_text())
    production = yaml.safe_load((REPO / "argocd/addons/argo-cd/values-production.yaml").read_text())

    assert production["redis-ha"]["enabled"] is True
    assert production["redis"]["enabled"] is False
    assert production["server"]["autoscaling"]["minReplicas"] >= 2
    assert production["repoServer"]["autoscaling"]["minReplicas"] >= 2
    assert production["applicationSet"]["replicas"] >= 2
    for component in (
        "controller",
        "server",
        "repoServer",
        "applicationSet",
        "redis",
        "notifications",
    ):
        assert values[component]["metrics"]["enabled"] is True, component
    notifications = values["notifications"]
    subscribed = {t for s in notifications["subscriptions"] for t in s["triggers"]}
    assert subscribed == {"on-sync-failed", "on-health-degraded"}
    assert {f"trigger.{t}" for t in subscribed} <= set(notifications["triggers"])
    assert "$slack-webhook-url" in notifications["notifiers"]["service.webhook.slack"]


@pytest.mark.platform
@pytest.mark.emulator
def test_eks_access_gives_the_endpoint_ca_and_an_sts_token(tmp_path: Path) -> None:
    import boto3

    from valuecanvas.localdev.emulator import aws_emulator

    def access(endpoint: str, name: str) -> dict[str, Any]:
        result = subprocess.run(
            [str(BIN / "ansible"), "localhost", "-i", "inventories/sandbox", "-o",
             "-m", "valuecanvas.aws.eks_access",
             "-a", f"cluster_name={name} endpoint_url={endpoint} region=us-east-1 "
                   "access_key=testing secret_key=testing"],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=tool_env(),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:]
        found: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
        return found

    with aws_emulator(tmp_path / "moto.log") as endpoint:
        eks = boto3.client("eks", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        made = eks.create_cluster(name="tokens", roleArn="arn:aws:iam::123456789012:role/eks",
                                  resourcesVpcConfig={"subnetIds": []})["cluster"]  # fmt: skip
        found = access(endpoint, "tokens")
        missing = access(endpoint, "no-such-cluster")

    assert found["exists"] is True
    assert found["endpoint"] == made["endpoint"]
    assert found["certificate_authority"] == made.get("certificateAuthority", {}).get("data", "")
    prefix, _, encoded = found["token"].partition(".")
    assert prefix == "k8s-aws-v1"
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    assert "Action=GetCallerIdentity" in url
    assert "x-k8s-aws-id" in url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert missing == {**missing, "exists": False, "endpoint": "", "token": ""}
