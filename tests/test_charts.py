"""The Helm charts in apps/: rendered by Helm's own Go SDK (tools/render.py), linted, and
every rendered object checked against its schema (tools/validate_rendered.py) and against
the platform's policies, which are asserted here on the rendered output."""

from __future__ import annotations

import copy
import functools
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import patch

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.rehearsals import make
from valuecanvas import gitops
from valuecanvas.catalogue import catalogue
from valuecanvas.cli import DatabaseCommandSettings
from valuecanvas.registry import SERVICES


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = load_tool("render")
validate = load_tool("validate_rendered")
ENVIRONMENTS = render.ENVIRONMENTS
AGENTS = {name for name, entry in catalogue().items() if entry.autoscaling == "agent"}
# The spec's numbers (shared/spec/deployment-and-scalability.md), written here on purpose:
# the environment files must not drift from them.
SPEC_HPA = {
    "gateway": {"minReplicas": 2, "maxReplicas": 10, "cpu": 70, "memory": 80},
    "orchestrator": {"minReplicas": 2, "maxReplicas": 5, "cpu": 70, "memory": None},
    "agent": {"minReplicas": 1, "maxReplicas": 3, "cpu": 75, "memory": None},
}
# The architecture's edges (issue 10): who may open a connection to whom.
EDGES = (
    {("api-gateway", "orchestrator")}
    | {("api-gateway", agent) for agent in AGENTS}
    | {("orchestrator", agent) for agent in AGENTS}
    | {(caller, "llm-proxy") for caller in AGENTS | {"orchestrator", "api-gateway"}}
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each environment rendered once for the module, into its own folder."""
    output = tmp_path_factory.mktemp("rendered")
    return {env: render.render(env, output)[0].parent for env in ENVIRONMENTS}


@functools.cache
def objects(folder: Path) -> list[Any]:
    """The rendered objects of one folder, parsed once (the tests only read them)."""
    return validate.load(folder)


def of_kind(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {
        item.object["metadata"]["name"]: item.object
        for item in objects(folder)
        if item.object["kind"] == kind
    }


def annotations(env: str) -> dict[str, str]:
    """The provisioning outputs the cluster secret carries (argocd/clusters/<env>.yaml)."""
    return dict(gitops.load_cluster(REPO, env).annotations)


def pod_specs(folder: Path) -> dict[str, dict[str, Any]]:
    workloads = {
        **of_kind(folder, "Deployment"),
        **of_kind(folder, "Rollout"),
        **{f"job/{name}": job for name, job in of_kind(folder, "Job").items()},
    }
    return {name: workload["spec"]["template"] for name, workload in workloads.items()}


# ---- rendering ---------------------------------------------------------------------------


def rendered_files() -> list[str]:
    """One file per Application of this repository's charts, and the Argo CD objects."""
    local = [*render.charts(), "cluster-secret-store"]
    return sorted(["argocd.yaml", *(f"{name}.yaml" for name in local)])


def test_every_application_is_a_chart_for_a_service_or_the_platform() -> None:
    assert set(render.charts()) == set(catalogue()) | {"platform"}
    for chart in render.charts():
        link = REPO / "apps" / chart / "values.schema.json"
        assert link.is_symlink(), chart
        assert link.resolve() == REPO / "apps" / "values.schema.json", chart


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendering_is_byte_identical_and_one_file_per_application(env: str, tmp_path: Path) -> None:
    first = render.render(env, tmp_path / "first")
    second = render.render(env, tmp_path / "second")

    assert sorted(path.name for path in first) == rendered_files()
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]
    assert not list((REPO / "apps").glob("*/charts")), "rendering must not write into apps/"


def test_make_render_writes_build_rendered(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv*", ".state", "build", "node_modules", ".git"))  # fmt: skip
    os.symlink(REPO / ".venv", clone / ".venv")
    made = make("render", "ENV=staging", cwd=clone, timeout=300)

    assert made.returncode == 0, made.stdout + made.stderr
    written = sorted(path.name for path in (clone / "build" / "rendered" / "staging").iterdir())
    assert written == rendered_files()
    bad = make("render", "ENV=prod", cwd=clone, timeout=300)
    assert bad.returncode != 0
    assert "ENV=prod: not an environment (known: production, sandbox, staging)" in bad.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_chart_lints_strictly(env: str) -> None:
    findings = [finding for app in render.apps(env) for finding in render.lint_app(app)]

    assert findings == []


def test_each_chart_loads_in_place_with_its_symlinked_schema() -> None:
    """What Argo CD sees: the chart folder as committed (the schema is a symlink)."""
    import helm_python as helm

    with helm.Chart.load(REPO / "apps" / "api-gateway") as chart:
        assert chart.schema is not None
        assert chart.schema["additionalProperties"] is False


# ---- validation --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_validates_against_kubernetes_1_28_and_its_crd(
    env: str, rendered: dict[str, Path]
) -> None:
    problems, custom = validate.kubernetes_problems(objects(rendered[env]))
    assert problems == []
    assert {item.key for item in custom} == {
        "external-secrets.io/v1/ExternalSecret", "external-secrets.io/v1/SecretStore",
        "monitoring.coreos.com/v1/ServiceMonitor", "elbv2.k8s.aws/v1beta1/TargetGroupBinding",
        "monitoring.coreos.com/v1/PodMonitor", "external-secrets.io/v1/ClusterSecretStore",
        "argoproj.io/v1alpha1/Rollout", "argoproj.io/v1alpha1/AnalysisTemplate",
        "argoproj.io/v1alpha1/AppProject", "argoproj.io/v1alpha1/ApplicationSet",
        "argoproj.io/v1alpha1/Application",
    }  # fmt: skip
    made = make("crd-validators", timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    assert validate.crd_problems(custom) == []


def test_the_validators_refuse_what_is_wrong(rendered: dict[str, Path]) -> None:
    """Each check can fail: an unknown field in a Deployment, a wrong type in a
    ServiceMonitor and an ExternalSecret, a bad enum, an unknown field in the
    TargetGroupBinding, and a kind nobody has a schema for."""
    everything = objects(rendered["production"])
    first = {item.object["kind"]: item for item in everything}

    def changed(kind: str, path: list[str | int], value: Any) -> Any:
        item = copy.deepcopy(first[kind])
        node = item.object
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return item

    deployment = changed(
        "Deployment", ["spec", "template", "spec", "containers", 0, "securityContextt"], {}
    )
    problems, _ = validate.kubernetes_problems([deployment])
    assert len(problems) == 1
    assert "securityContextt" in problems[0]

    made = make("crd-validators", timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    wrong = [
        changed("ServiceMonitor", ["spec", "endpoints", 0, "port"], 9),
        changed("ExternalSecret", ["spec", "refreshInterval"], 3600),
        changed("ExternalSecret", ["spec", "target", "creationPolicy"], "Sometimes"),
        changed("TargetGroupBinding", ["spec", "targetTypo"], "ip"),
        changed("SecretStore", ["kind"], "ClusterSecretStorez"),
    ]
    problems = "\n".join(validate.crd_problems(wrong))
    assert len(problems.splitlines()) == 5, problems
    assert "ServiceMonitor target: /spec/endpoints/0/port: must be string" in problems
    assert "ExternalSecret target: /spec/refreshInterval: must be string" in problems
    assert "ExternalSecret target: /spec/target/creationPolicy: must be equal to one of" in problems
    assert (
        "TargetGroupBinding api-gateway: spec: Additional properties are not allowed ('targetTypo'"
        in problems
    )
    assert "no schema known for external-secrets.io/v1/ClusterSecretStorez" in problems


@pytest.fixture(scope="module")
def checkov(
    rendered: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[str]]:
    """One checkov run (installed into its own virtualenv on first use; its start-up is most
    of its time) over a folder per environment, and one with production's target made
    privileged: folder name -> its findings. (Not one -d per folder: checkov then takes
    files of the same name in two folders for one.)"""
    made = make("validators", timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    scanned = tmp_path_factory.mktemp("checkov")
    for env, folder in rendered.items():
        shutil.copytree(folder, scanned / env)
    (scanned / "privileged").mkdir()
    text = (rendered["production"] / "target.yaml").read_text()
    (scanned / "privileged" / "target.yaml").write_text(
        text.replace("privileged: false", "privileged: true")
    )
    found: dict[str, list[str]] = {folder.name: [] for folder in scanned.iterdir()}
    for problem in validate.checkov_problems(scanned):
        folder, _, rest = problem.lstrip("/").partition("/")
        found[folder].append(rest)
    return found


@pytest.mark.platform
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_checkov_finds_nothing(env: str, checkov: dict[str, list[str]]) -> None:
    assert checkov[env] == []


@pytest.mark.platform
def test_checkov_reports_a_privileged_container(checkov: dict[str, list[str]]) -> None:
    problems = checkov["privileged"]

    assert any("CKV_K8S_16" in problem for problem in problems), problems  # privileged containers
    assert all(problem.startswith("target.yaml: ") for problem in problems), problems


# ---- policies on the rendered output ----------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pod_runs_locked_down(env: str, rendered: dict[str, Path]) -> None:
    pods = pod_specs(rendered[env])
    assert set(pods) == set(catalogue()) | {"job/migrations"}
    for name, template in pods.items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert "hostNetwork" not in spec, name
        assert "hostPID" not in spec, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"], name
        assert [volume["emptyDir"] is not None for volume in spec["volumes"]] == [True], name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_service_is_probed_and_spread_across_zones(
    env: str, rendered: dict[str, Path]
) -> None:
    for name, template in pod_specs(rendered[env]).items():
        if name.startswith("job/"):
            continue
        container = template["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["args"] == ["serve", name]
        assert container["ports"] == [
            {"name": "http", "containerPort": catalogue()[name].port, "protocol": "TCP"}
        ]
        keys = {rule["topologyKey"] for rule in template["spec"]["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys, name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_images_are_tagged_never_latest_and_from_the_environments_registry(
    env: str, rendered: dict[str, Path]
) -> None:
    values = yaml.safe_load((REPO / "apps" / "environments" / f"{env}.yaml").read_text())
    prefix = f"{annotations(env)['aws_ecr_registry']}/{values['aws']['namePrefix']}/"
    for name, template in pod_specs(rendered[env]).items():
        for container in template["spec"]["containers"]:
            image = container["image"]
            assert image.startswith(prefix), (name, image)
            repository, _, tag = image.removeprefix(prefix).partition(":")
            assert repository in {entry.image for entry in catalogue().values()}, (name, image)
            assert tag.split("@")[0] not in ("", "latest"), (name, image)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_autoscaling_has_the_specs_numbers_and_a_pdb_where_the_minimum_is_two(
    env: str, rendered: dict[str, Path]
) -> None:
    folder = rendered[env]
    hpas, pdbs = of_kind(folder, "HorizontalPodAutoscaler"), of_kind(folder, "PodDisruptionBudget")
    workloads = {**of_kind(folder, "Deployment"), **of_kind(folder, "Rollout")}
    assert set(hpas) == set(workloads) == set(catalogue())
    assert list(of_kind(folder, "Rollout")) == ["api-gateway"]
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        targets = {metric["resource"]["name"]: metric["resource"]["target"]["averageUtilization"]
                   for metric in spec["metrics"]}  # fmt: skip
        seen = {"minReplicas": spec["minReplicas"], "maxReplicas": spec["maxReplicas"],
                "cpu": targets.get("cpu"), "memory": targets.get("memory")}  # fmt: skip
        klass = catalogue()[name].autoscaling
        if klass in SPEC_HPA:
            assert seen == SPEC_HPA[klass], name
        target = {"apiVersion": workloads[name]["apiVersion"], "kind": workloads[name]["kind"]}
        assert spec["scaleTargetRef"] == {**target, "name": name}
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60, name
        assert (name in pdbs) == (spec["minReplicas"] >= 2), name
    assert "replicas" not in json.dumps([d["spec"] for d in of_kind(folder, "Deployment").values()])
    proxy = hpas["llm-proxy"]["spec"]
    assert (proxy["minReplicas"], proxy["maxReplicas"]) == (2, 6)  # docs/kubernetes.md says why


def allowed_edges(folder: Path) -> set[tuple[str, str]]:
    """Who may open a connection to whom, from the rendered NetworkPolicies and the pods'
    labels (an edge needs the callee's ingress and the caller's egress)."""
    labels = {name: template["metadata"]["labels"] for name, template in pod_specs(folder).items()}
    policies = of_kind(folder, "NetworkPolicy")
    edges = set()
    for callee, policy in policies.items():
        if callee not in catalogue():
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                wanted = peer.get("podSelector", {}).get("matchLabels")
                if wanted is None or "namespaceSelector" in peer:
                    continue
                for caller, pod_labels in labels.items():
                    if wanted.items() <= pod_labels.items():
                        egress = policies[caller]["spec"]["egress"]
                        reaches = any(callee in expression["values"]
                                      for rule in egress for target in rule["to"]
                                      for expression in target.get("podSelector", {}).get("matchExpressions", []))  # fmt: skip
                        if reaches:
                            edges.add((caller, callee))
    return edges


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_policies_allow_exactly_the_architectures_edges(
    env: str, rendered: dict[str, Path]
) -> None:
    folder = rendered[env]
    policies = of_kind(folder, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]

    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert allowed_edges(folder) == EDGES
    for name in catalogue():  # every workload is selected by its own policy
        assert (
            policies[name]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == name
        )
    internet = {name for name, policy in policies.items()
                for rule in policy["spec"].get("egress", []) for peer in rule["to"]
                if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"}  # fmt: skip
    # The providers (llm-proxy), and the organizations' webhook receivers (orchestrator).
    assert internet == {"llm-proxy", "orchestrator"}
    from_outside = {name for name, policy in policies.items()
                    for rule in policy["spec"].get("ingress", []) for peer in rule["from"] if "ipBlock" in peer}  # fmt: skip
    assert from_outside == {"api-gateway"}


def subnet_plan(inventory: str, tier: str) -> list[str]:
    """aws_network's plan (roles/aws_network/vars/main.yml), recomputed for one inventory."""
    network = yaml.safe_load(
        (REPO / "inventories" / inventory / "group_vars/all/network.yml").read_text()
    )
    vpc = ipaddress.ip_network(network["aws_network_vpc_cidr"])
    last_quarter = list(vpc.subnets(new_prefix=vpc.prefixlen + 2))[3]
    slices = list(last_quarter.subnets(new_prefix=vpc.prefixlen + 6))
    zones = range(len(network["aws_network_availability_zones"]))
    return [str(slices[index if tier == "public" else 4 + index]) for index in zones]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_cidrs_are_the_inventorys_subnets(env: str) -> None:
    values = yaml.safe_load((REPO / "apps" / "environments" / f"{env}.yaml").read_text())

    assert values["database"]["cidrs"] == values["redis"]["cidrs"] == subnet_plan(env, "database")
    assert values["loadBalancer"]["cidrs"] == subnet_plan(env, "public")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secrets_come_only_from_secrets_manager_and_each_service_reads_only_its_own(
    env: str, rendered: dict[str, Path]
) -> None:
    folder = rendered[env]
    assert of_kind(folder, "Secret") == {}
    everything = of_kind(folder, "ExternalSecret")
    external = {name: secret for name, secret in everything.items()
                if secret["metadata"]["namespace"] == "valuecanvas"}  # fmt: skip
    prefix = f"valuecanvas/{env}/"
    # Argo CD's own: only the notifications webhook, through the ClusterSecretStore.
    notifications = everything["argocd-notifications-secret"]
    assert [item["remoteRef"]["key"] for item in notifications["spec"]["data"]] == [
        f"{prefix}slack-webhook"
    ]
    assert notifications["spec"]["secretStoreRef"]["kind"] == "ClusterSecretStore"
    for name, entry in catalogue().items():
        keys = {
            item["remoteRef"]["key"].removeprefix(prefix) for item in external[name]["spec"]["data"]
        }
        assert keys == set(entry.secrets), name
        assert of_kind(folder, "SecretStore")[name]["spec"]["provider"]["aws"]["auth"]["jwt"] == {
            "serviceAccountRef": {"name": name}}  # fmt: skip
        account = of_kind(folder, "ServiceAccount")[name]
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
            f"-svc-{name}"
        )
    providers = {name for name, secret in external.items()
                 for variable in secret["spec"]["target"]["template"]["data"]
                 if variable in ("TOGETHER_API_KEY", "OPENAI_API_KEY")}  # fmt: skip
    assert providers == {"llm-proxy"}
    # The master user's secret is the migrations Job's alone; the services log in as the
    # role it makes (database-app).
    assert not [name for name, entry in catalogue().items() if "database" in entry.secrets]
    assert [item["remoteRef"]["key"] for item in external["migrations"]["spec"]["data"]] == [
        f"{prefix}database", f"{prefix}database", f"{prefix}database-app", f"{prefix}database-app"
    ]  # fmt: skip
    assert set(external["migrations"]["spec"]["target"]["template"]["data"]) == {
        "MIGRATION_DATABASE_URL", "DATABASE_URL"
    }  # fmt: skip


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_service_accepts_the_settings_the_cluster_gives_it(
    env: str, rendered: dict[str, Path]
) -> None:
    """The ConfigMap and the ExternalSecret's variables (with stand-in secret values) pass
    each service's own settings validation, in the environment's strict mode."""
    folder = rendered[env]
    external = of_kind(folder, "ExternalSecret")
    for name in catalogue():
        environment = dict(of_kind(folder, "ConfigMap")[name]["data"])
        environment |= _with_stand_in_secrets(external[name])
        # Read from the environment, as in the pod (JSON values parsed as there).
        with patch.dict(os.environ, environment, clear=True):
            loaded = SERVICES[name].settings_class()(_env_file=None)
        assert loaded.environment.value == env, name
        assert loaded.host == "0.0.0.0", name  # noqa: S104 - in a pod, every interface is the pod's
        assert loaded.port == catalogue()[name].port


def _with_stand_in_secrets(external_secret: dict[str, Any]) -> dict[str, str]:
    """The ExternalSecret's variables, each secret property replaced by a stand-in value."""
    stand_ins = {
        "database_username": "valuecanvas_admin",
        "app_database_username": "valuecanvas_app",
    }
    variables = {}
    for variable, template in external_secret["spec"]["target"]["template"]["data"].items():
        value = re.sub(r"\{\{ \.(\w+) \| urlquery \}\}",
                       lambda match: stand_ins.get(match[1], f"{match[1]}Generated48x"), template)  # fmt: skip
        if value.startswith("{{"):
            value = f"generated-{variable.lower()}-Xk29fQ7mLp3vZ8sW1nB6cR4tY0uH5jE2"
        variables[variable] = value
    return variables


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_migration_job_is_a_presync_hook_after_its_account_and_secret(
    env: str, rendered: dict[str, Path]
) -> None:
    hooks = {}
    for item in objects(rendered[env]):
        annotations = item.object["metadata"].get("annotations", {})
        if annotations.get("argocd.argoproj.io/hook") == "PreSync":
            hooks[item.object["kind"]] = int(annotations["argocd.argoproj.io/sync-wave"])
            assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    job = of_kind(rendered[env], "Job")["migrations"]

    assert hooks == {"ServiceAccount": -3, "SecretStore": -2, "ExternalSecret": -1, "Job": 0}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", "--login-role"]
    # What the Job's secret gives it: the master user to migrate as, and another user,
    # the services' login role, to make.
    environment = _with_stand_in_secrets(of_kind(rendered[env], "ExternalSecret")["migrations"])
    with patch.dict(os.environ, environment, clear=True):
        settings = DatabaseCommandSettings(_env_file=None)
    assert settings.migration_database_url is not None
    assert settings.database_url is not None
    assert settings.migration_database_url.hosts()[0]["username"] == "valuecanvas_admin"
    assert settings.database_url.hosts()[0]["username"] == "valuecanvas_app"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["backoffLimit"] <= 2
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "migrations"


def test_the_gateway_is_the_load_balancers_target(rendered: dict[str, Path]) -> None:
    bindings = of_kind(rendered["production"], "TargetGroupBinding")
    assert list(bindings) == ["api-gateway"]
    spec = bindings["api-gateway"]["spec"]
    assert spec["targetType"] == "ip"
    assert spec["targetGroupARN"] == annotations("production")["target_group_arn"]
    assert spec["serviceRef"] == {"name": "api-gateway", "port": catalogue()["api-gateway"].port}


# ---- bad input --------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what the render tool reads (apps/, argocd/, the catalogue), read instead of
    the repository's."""
    shutil.copytree(REPO / "apps", tmp_path / "apps", symlinks=True)
    shutil.copytree(REPO / "argocd", tmp_path / "argocd")
    catalogue_dir = Path("services/valuecanvas/catalogue")
    shutil.copytree(REPO / catalogue_dir, tmp_path / catalogue_dir)
    monkeypatch.setattr(render, "REPO", tmp_path)
    monkeypatch.setattr(render, "APPS", tmp_path / "apps")
    return tmp_path


def edit(path: Path, change: Any) -> None:
    values = yaml.safe_load(path.read_text())
    change(values)
    path.write_text(yaml.safe_dump(values))


def render_error(tmp_path: Path) -> str:
    with pytest.raises(render.RenderError) as raised:
        render.render("production", tmp_path / "out")
    return str(raised.value)


def test_an_unknown_key_is_named_with_its_file(scratch: Path) -> None:
    edit(scratch / "apps/environments/production.yaml", lambda v: v["database"].update(hots="db"))

    assert render_error(scratch) == "apps/environments/production.yaml: database.hots: unknown key"


def test_a_wrong_type_is_named_with_its_file(scratch: Path) -> None:
    edit(scratch / "apps/defaults.yaml", lambda v: v["probes"]["startup"].update(periodSeconds="2"))

    assert (
        render_error(scratch)
        == "apps/defaults.yaml: probes.startup.periodSeconds: '2' is not of type 'integer'"
    )


def test_a_missing_image_tag_is_named(scratch: Path) -> None:
    edit(scratch / "apps/environments/production.yaml", lambda v: v.pop("imageTag"))

    assert "imageTag: required, and none of " in render_error(scratch)


def test_latest_is_refused(scratch: Path) -> None:
    edit(scratch / "apps/environments/production.yaml", lambda v: v.update(imageTag="latest"))

    assert "apps/environments/production.yaml: imageTag: " in render_error(scratch)


def test_hpa_min_above_max_is_named_with_its_file(scratch: Path) -> None:
    edit(
        scratch / "apps/environments/production.yaml",
        lambda v: v["autoscalingClasses"]["agent"].update(minReplicas=4),
    )

    message = render_error(scratch)
    assert message.startswith("apps/environments/production.yaml: ")
    assert (
        "autoscalingClasses.agent.minReplicas (4) is above autoscalingClasses.agent.maxReplicas (3)"
        in message
    )


@pytest.mark.parametrize("target", [0, 101])
def test_a_cpu_target_outside_1_to_100_is_named_with_its_file(scratch: Path, target: int) -> None:
    edit(
        scratch / "apps/environments/production.yaml",
        lambda v: v["autoscalingClasses"]["gateway"].update(cpu=target),
    )

    message = render_error(scratch)
    assert message.startswith("apps/environments/production.yaml: autoscalingClasses.gateway.cpu: ")


def test_a_chart_refuses_the_other_kind_of_charts_keys(scratch: Path) -> None:
    (scratch / "apps/orchestrator/values-production.yaml").write_text(
        "migrations: {image: orchestrator}\n"
    )
    (scratch / "apps/platform/values-production.yaml").write_text("port: 9000\n")

    assert render_error(scratch) == (
        "orchestrator: apps/orchestrator/values-production.yaml: migrations: not a key of the orchestrator chart"
    )
    (scratch / "apps/orchestrator/values-production.yaml").unlink()
    assert (
        render_error(scratch)
        == "platform: apps/platform/values-production.yaml: port: not a key of the platform chart"
    )


# ---- a commit is a deploy (the render diff of a commit) ----------------------------------


def rendered_texts(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.glob("*.yaml"))}


def test_one_services_new_tag_changes_only_that_services_objects(scratch: Path) -> None:
    """What CI would commit to deploy one service: its tag in its production values file."""
    before = rendered_texts(render.render("production", scratch / "before")[0].parent)
    (scratch / "apps/target/values-production.yaml").write_text('imageTag: "0.1.1"\n')
    after = rendered_texts(render.render("production", scratch / "after")[0].parent)

    assert [name for name in before if before[name] != after[name]] == ["target.yaml"]
    images = [item.object["spec"]["template"]["spec"]["containers"][0]["image"]
              for item in validate.load(scratch / "after" / "production")
              if item.object["kind"] in ("Deployment", "Rollout")]  # fmt: skip
    assert sorted(image.rsplit(":", 1)[1] for image in images) == ["0.1.0"] * 7 + ["0.1.1"]


def test_a_library_template_change_reaches_every_service(scratch: Path) -> None:
    before = rendered_texts(render.render("production", scratch / "before")[0].parent)
    workload = scratch / "apps/common/templates/_workload.tpl"
    workload.write_text(
        workload.read_text().replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 7")
    )
    after = rendered_texts(render.render("production", scratch / "after")[0].parent)

    changed = sorted(name.removesuffix(".yaml") for name in before if before[name] != after[name])
    assert changed == sorted(catalogue())  # every service, and not the platform chart


def test_a_broken_chart_is_named(scratch: Path) -> None:
    chart = scratch / "apps/target/Chart.yaml"
    chart.write_text(
        "\n".join(
            line for line in chart.read_text().splitlines() if not line.startswith("version:")
        )
    )

    assert render_error(scratch) == "apps/target: validation: chart.metadata.version is required"
