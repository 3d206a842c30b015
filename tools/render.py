#!/usr/bin/env python3
"""`make render ENV=<env>`: every object the cluster would receive for one environment.

First argocd/root/ is expanded as Argo CD would for the environment's cluster secret
(argocd/clusters/<env>.yaml; valuecanvas.gitops): the Applications, checked against their
AppProjects, go to build/rendered/<env>/argocd.yaml. Then each Application of a chart in
this repository is rendered by Helm's own Go SDK (helm-python-sdk; no helm binary) into
build/rendered/<env>/<app>.yaml, with the values files and parameters the Application
names, in its order; Helm's precedence: the chart's values.yaml first, later files win,
parameters last.
Before Helm sees them, each file is checked alone against the chart's schema, so an
unknown key or a wrong type is reported with the file that holds it; what only the merged
values can show (a required key nobody set, HPA min above max) names the key and the files.

    tools/render.py ENV [--lint] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import yaml

from valuecanvas import gitops

REPO = Path(__file__).resolve().parent.parent

APPS = REPO / "apps"
ENVIRONMENTS = tuple(sorted(path.stem for path in (REPO / gitops.CLUSTERS_DIR).glob("*.yaml")))
KUBE_VERSION = "v1.28.0"  # the clusters' version (aws_eks_kubernetes_version)
LIBRARY = "common"


class RenderError(Exception):
    """A chart or a values file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class App:
    """One Argo CD Application of a chart in this repository: its chart folder, namespace,
    values files in order, and the parameters (from the cluster secret) that come last."""

    name: str
    chart: Path
    namespace: str
    values_files: tuple[Path, ...]
    parameters: tuple[tuple[str, str], ...] = ()
    cluster_secret: Path | None = None


def charts() -> list[str]:
    """Every application chart in apps/ (the library is not one)."""
    found = []
    for path in sorted(APPS.glob("*/Chart.yaml")):
        meta = yaml.safe_load(path.read_text())
        if meta.get("type", "application") == "application":
            found.append(path.parent.name)
    return found


def cluster_secret(environment: str) -> Path:
    return REPO / gitops.CLUSTERS_DIR / f"{environment}.yaml"


def plan(environment: str) -> gitops.Plan:
    """What argocd/root/ makes on the environment's cluster (argocd/clusters/<env>.yaml)."""
    if environment not in ENVIRONMENTS:
        raise RenderError(
            f"ENV={environment}: not an environment (known: {', '.join(ENVIRONMENTS)})"
        )
    try:
        return gitops.plan(REPO, gitops.load_cluster(REPO, environment))
    except gitops.GitOpsError as error:
        raise RenderError(str(error)) from error


def local_app(application: Mapping[str, Any], environment: str) -> App | None:
    """The chart of this repository an Application deploys, as Argo CD would fetch it:
    its values files resolved against the chart folder (missing ones skipped when
    ignoreMissingValueFiles), its parameters kept in order. None for an upstream chart."""
    sources = gitops.sources(application)
    if len(sources) != 1 or not sources[0].get("path"):
        return None
    source, name = sources[0], application["metadata"]["name"]
    chart = REPO / source["path"]
    helm_spec = source.get("helm") or {}
    files = []
    for entry in helm_spec.get("valueFiles") or []:
        path = (chart / entry).resolve()
        if not path.is_relative_to(REPO):
            raise RenderError(f"Application {name}: values file {entry} is outside the repository")
        if path.exists():
            files.append(path)
        elif not helm_spec.get("ignoreMissingValueFiles"):
            raise RenderError(f"Application {name}: values file {entry} does not exist")
    parameters = tuple((p["name"], str(p["value"])) for p in helm_spec.get("parameters") or [])
    namespace = application["spec"]["destination"]["namespace"]
    return App(name, chart, namespace, tuple(files), parameters, cluster_secret(environment))


def apps(environment: str) -> list[App]:
    """Every Application of this repository's charts, from the expanded ApplicationSets."""
    found = [local_app(application, environment) for application in plan(environment).applications]
    return sorted((app for app in found if app is not None), key=lambda app: app.name)


def parameters_values(parameters: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Parameters as one values layer, parsed by Helm's own --set parser, as Argo CD passes
    them (one --set each, commas in the value escaped)."""
    values: dict[str, Any] = {}
    for name, value in parameters:
        escaped = value.replace(",", "\\,")
        try:
            values = gitops.merge_values(values, helm.parse_set_string(f"{name}={escaped}"))
        except helm.HelmError as error:
            raise RenderError(f"parameter {name}: {error}") from error
    return values


def relaxed(schema: Any) -> Any:
    """The schema without what only the merged values can satisfy (required keys and the
    chart-kind conditions): what one file alone must already obey."""
    if isinstance(schema, dict):
        return {key: relaxed(value) for key, value in schema.items()
                if key not in ("required", "if", "then", "else")}  # fmt: skip
    if isinstance(schema, list):
        return [relaxed(item) for item in schema]
    return schema


def key_path(parts: Any) -> str:
    return ".".join(str(part) for part in parts) or "(top level)"


def load_values(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RenderError(f"{path.relative_to(REPO)}: not YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise RenderError(f"{path.relative_to(REPO)}: must be a mapping of values")
    return loaded


def check_file(path: Path, values: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(relaxed(schema))
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda error: list(error.absolute_path)):
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for key in unknown:
                problems.append(f"{key_path([*error.absolute_path, key])}: unknown key")
        else:
            problems.append(f"{key_path(error.absolute_path)}: {error.message}")
    if problems:
        raise RenderError(f"{path.relative_to(REPO)}: " + "; ".join(problems))


def provenance(key: str, layers: list[tuple[Path, dict[str, Any]]]) -> str:
    """The last values file that sets ``key`` (a dotted path): the one to fix."""
    setters = []
    for path, values in layers:
        node: Any = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            setters.append(path)
    if setters:
        return str(setters[-1].relative_to(REPO))
    return "none of " + ", ".join(str(path.relative_to(REPO)) for path, _ in layers) + " sets it"


@contextmanager
def built(chart: Path) -> Iterator[Path]:
    """The chart with its library dependency packed into charts/, in a temporary copy (the
    source tree stays as committed; symlinked files are copied as their targets)."""
    with tempfile.TemporaryDirectory(prefix="render-") as folder:
        root = Path(folder)
        shutil.copytree(APPS / LIBRARY, root / LIBRARY)
        copy_path = root / chart.name
        shutil.copytree(chart, copy_path, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        try:
            helm.dependency_update(copy_path, skip_refresh=True)
        except helm.HelmError as error:
            raise RenderError(f"{chart.relative_to(REPO)}: {error}") from error
        yield copy_path


def values_for(app: App) -> tuple[dict[str, Any], list[tuple[Path, dict[str, Any]]]]:
    schema = json.loads((app.chart / "values.schema.json").read_text())
    layers = [(app.chart / "values.yaml", load_values(app.chart / "values.yaml"))]
    layers += [(path, load_values(path)) for path in app.values_files]
    if app.parameters and app.cluster_secret is not None:
        # Last, as Argo CD passes them (--set): named after the cluster secret they come from.
        layers.append((app.cluster_secret, parameters_values(app.parameters)))
    merged: dict[str, Any] = {}
    for path, values in layers:
        check_file(path, values, schema)
        merged = gitops.merge_values(merged, values)
    # The merged values against the full schema (jsonschema names the key; Helm checks the
    # same schema again when it renders).
    validator = jsonschema.Draft202012Validator(schema)
    # The keys this kind of chart does not take (the schema's if/then/else sets them to
    # false): reported as such, rather than what is missing inside them.
    condition = validator.evolve(schema=schema.get("if", True))
    branch = schema.get("then" if condition.is_valid(merged) else "else", {})
    refused = [
        key
        for key, allowed in branch.get("properties", {}).items()
        if allowed is False and key in merged
    ]
    missing = [
        f"{provenance(key, layers)}: {key}: not a key of the {app.name} chart" for key in refused
    ]
    for error in validator.iter_errors(merged):
        path = tuple(error.absolute_path)
        if error.schema is False or (path and path[0] in refused):
            continue
        if error.validator == "required":
            for key in error.validator_value:
                if key not in error.instance:
                    name = key_path([*path, key])
                    missing.append(f"{name}: required, and {provenance(name, layers)}")
        else:
            name = key_path(path)
            missing.append(f"{provenance(name, layers)}: {name}: {error.message}")
    if missing:
        raise RenderError(f"{app.name}: " + "; ".join(sorted(set(missing))))
    return merged, layers


# A template's `fail` message starts with the key it is about.
FAILED_KEY = re.compile(r"execution error at \([^)]*\): ([A-Za-z0-9_.-]+)")


class LintFindingsError(RenderError):
    """helm lint found problems; the message lists them, one per line."""


@contextmanager
def prepared(app: App) -> Iterator[tuple[Path, dict[str, Any], list[tuple[Path, dict[str, Any]]]]]:
    """Once per application: its values checked and merged, and its chart built."""
    merged, layers = values_for(app)
    with built(app.chart) as chart_dir:
        yield chart_dir, merged, layers


def _lint(app: App, chart_dir: Path, merged: dict[str, Any]) -> list[str]:
    """helm lint (strict: warnings count), for the clusters' Kubernetes version."""
    report = helm.lint(
        chart_dir, merged, strict=True, kube_version=KUBE_VERSION, namespace=app.namespace
    )
    return [f"{app.name}: {message['path']}: {message['error']}"
            for message in report.get("messages", []) if message.get("severity", 0) >= 2] + [
            f"{app.name}: {error}" for error in report.get("errors", [])]  # fmt: skip


def _render(
    app: App, chart_dir: Path, merged: dict[str, Any], layers: list[tuple[Path, dict[str, Any]]]
) -> str:
    """Every object of one application, as one YAML stream in a stable order."""
    with helm.Chart.load(chart_dir) as chart:
        try:
            manifests = chart.render(
                merged, name=app.name, namespace=app.namespace, is_install=True
            )
        except helm.HelmError as error:
            message = str(error)
            found = FAILED_KEY.search(message)
            where = provenance(found.group(1), layers) if found else app.name
            raise RenderError(f"{where}: {message}") from error
    documents = []
    for template in sorted(manifests):
        if not template.endswith((".yaml", ".yml")):
            continue
        for document in re.split(r"^---\s*$", manifests[template], flags=re.M):
            body = "\n".join(line for line in document.strip().splitlines()
                             if line.strip() and not line.lstrip().startswith("#"))  # fmt: skip
            if body:
                documents.append(body + "\n")
    sources = [str(path.relative_to(REPO)) for path in app.values_files]
    if app.parameters and app.cluster_secret is not None:
        sources.append(f"the parameters from {app.cluster_secret.relative_to(REPO)}")
    header = (f"# {app.name}: rendered by `make render` from {app.chart.relative_to(REPO)} with "
              + ", ".join(sources) + ". Generated: do not edit.\n")  # fmt: skip
    return header + "---\n" + "---\n".join(documents)


def render_app(app: App) -> str:
    with prepared(app) as (chart_dir, merged, layers):
        return _render(app, chart_dir, merged, layers)


def lint_app(app: App) -> list[str]:
    with prepared(app) as (chart_dir, merged, _):
        return _lint(app, chart_dir, merged)


def argocd_objects(environment: str, result: gitops.Plan) -> str:
    """The Argo CD objects of one environment: argocd/root/'s AppProjects and
    ApplicationSets, and every Application they generate for its cluster secret."""
    header = (f"# argocd: what argocd/root/ makes on the {environment} cluster (for "
              f"{gitops.CLUSTERS_DIR}/{environment}.yaml): its AppProjects and ApplicationSets, "
              "then the Applications they generate. The upstream charts' Applications are "
              "listed, not rendered (no chart repository is reachable here). Generated: do not "
              "edit.\n")  # fmt: skip
    documents = [*result.projects.values(), *result.applicationsets, *result.applications]
    return header + "---\n" + gitops.to_yaml(documents)


def check_cluster_kinds(app: App, text: str, result: gitops.Plan) -> None:
    """What Argo CD would refuse to sync: a cluster-scoped kind outside the app's project."""
    application = next(a for a in result.applications if a["metadata"]["name"] == app.name)
    project_name = application["spec"]["project"]
    objects = [document for document in yaml.safe_load_all(text) if document]
    refused = gitops.cluster_kinds_outside(result.projects[project_name], objects)
    if refused:
        raise RenderError(f"{app.name}: {', '.join(refused)}: cluster-scoped, and not in "
                          f"AppProject {project_name}'s clusterResourceWhitelist")  # fmt: skip


def render(environment: str, output: Path, *, lint: bool = False) -> list[Path]:
    """Expand argocd/root/ for the environment's cluster secret, then render every
    Application of this repository's charts (linting each first with ``lint``); write the
    files only when all of them rendered (and linted clean)."""
    result = plan(environment)
    rendered, findings = {"argocd": argocd_objects(environment, result)}, []
    for app in apps(environment):
        with prepared(app) as (chart_dir, merged, layers):
            if lint:
                findings += _lint(app, chart_dir, merged)
            rendered[app.name] = _render(app, chart_dir, merged, layers)
        check_cluster_kinds(app, rendered[app.name], result)
    if findings:
        raise LintFindingsError("\n".join(findings))
    target = output / environment
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for name, text in rendered.items():
        path = target / f"{name}.yaml"
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("environment", help=f"one of {', '.join(ENVIRONMENTS)}")
    parser.add_argument(
        "--lint", action="store_true", help="helm lint every chart with these values too"
    )
    parser.add_argument("--output", type=Path, default=REPO / "build" / "rendered")
    args = parser.parse_args(argv)
    try:
        written = render(args.environment, args.output, lint=args.lint)
    except LintFindingsError as findings:
        print(findings, file=sys.stderr)
        return 1
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
