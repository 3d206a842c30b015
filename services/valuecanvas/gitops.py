"""What Argo CD makes of ``argocd/root/`` for one cluster, computed on this machine.

Argo CD's ApplicationSet controller turns each ApplicationSet into Applications from its
generators' parameters. No Argo CD runs here, and no maintained offline expander exists
(``argocd appset generate`` needs a running server), so this module is a small one: the
three generators the repository uses (``clusters``, ``git`` directories, ``matrix`` of
the two) and Go-template field references (``{{ .metadata.annotations.aws_region }}``),
with ``missingkey=error`` as the ApplicationSets set it. Anything else in a template is
refused with its text, rather than expanded differently from Argo CD. ``tests/
test_gitops.py`` holds the generator semantics it follows (Argo CD's documentation:
"Cluster Generator", "Git Generator", "Matrix Generator", "Go Template").

It also checks what Argo CD would refuse or do wrong, before anything is applied:
an Application outside its AppProject's repositories, namespaces or cluster kinds; an
upstream chart whose version is not pinned; a cluster secret without an output an
ApplicationSet reads. Used by ``tools/render.py`` and the argocd_bootstrap role's
``argocd_plan`` module.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT_DIR = "argocd/root"
CLUSTERS_DIR = "argocd/clusters"
IN_CLUSTER = "https://kubernetes.default.svc"
# Go template: a plain field reference; the only form the expander evaluates.
FIELD = re.compile(r"\{\{-?\s*((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*-?\}\}")
ACTION = re.compile(r"\{\{.*?\}\}", re.S)
# A chart version Argo CD resolves to exactly one release: x.y.z (a pre-release allowed).
PINNED = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


class GitOpsError(Exception):
    """An ApplicationSet, an AppProject or a cluster secret is wrong; names what."""


@dataclass(frozen=True)
class Cluster:
    """An Argo CD cluster secret: what the argocd_bootstrap role writes."""

    name: str
    server: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any], *, where: str = "cluster secret") -> Cluster:
        metadata = secret.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if labels.get("argocd.argoproj.io/secret-type") != "cluster":
            raise GitOpsError(f"{where}: not an Argo CD cluster secret (the label "
                              "argocd.argoproj.io/secret-type: cluster is missing)")  # fmt: skip
        data = {key: str(value) for key, value in (secret.get("stringData") or {}).items()}
        for key, value in (secret.get("data") or {}).items():
            data.setdefault(key, base64.b64decode(value).decode())
        missing = [key for key in ("name", "server") if not data.get(key)]
        if missing:
            raise GitOpsError(f"{where}: {', '.join(missing)}: missing from the secret's data")
        annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
        empty = sorted(key for key, value in annotations.items() if not value.strip())
        if empty:
            raise GitOpsError(f"{where}: annotations without a value: {', '.join(empty)} "
                              "(the provisioning output was not produced)")  # fmt: skip
        return cls(data["name"], data["server"], dict(labels), annotations)

    def params(self) -> dict[str, Any]:
        """The clusters generator's parameters (goTemplate form)."""
        return {
            "name": self.name,
            "nameNormalized": normalize(self.name),
            "server": self.server,
            "metadata": {"labels": dict(self.labels), "annotations": dict(self.annotations)},
        }


def normalize(name: str) -> str:
    """Argo CD's normalisation of a name into a DNS-1123 label-ish string."""
    return re.sub(r"[^a-z0-9-.]", "-", name.lower())


def load_cluster(repo: Path, environment: str) -> Cluster:
    path = repo / CLUSTERS_DIR / f"{environment}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (repo / CLUSTERS_DIR).glob("*.yaml"))
        raise GitOpsError(f"{path.relative_to(repo)}: no cluster secret for {environment} "
                          f"(known: {', '.join(known) or 'none'})")  # fmt: skip
    return Cluster.from_secret(yaml.safe_load(path.read_text()), where=str(path.relative_to(repo)))


def load_documents(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                document.setdefault("metadata", {})
                documents.append(document)
    return documents


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of values files: maps merge key by key, anything else is replaced,
    and null deletes. (tools/render.py and the helm_template module pass values this way.)"""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---- the generators ------------------------------------------------------------------


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _clusters(spec: Mapping[str, Any], clusters: Iterable[Cluster]) -> list[dict[str, Any]]:
    selector = spec.get("selector") or {}
    return [cluster.params() for cluster in clusters if _matches(selector, cluster.labels)]


def _git_directories(spec: Mapping[str, Any], repo: Path) -> list[dict[str, Any]]:
    if spec.get("files"):
        raise GitOpsError("git generator: only directories are supported here")
    include = [d["path"] for d in spec.get("directories", []) if not d.get("exclude")]
    exclude = [d["path"] for d in spec.get("directories", []) if d.get("exclude")]
    found = set()
    for pattern in include:
        for path in repo.glob(pattern):
            relative = path.relative_to(repo).as_posix()
            if path.is_dir() and not any(fnmatch.fnmatchcase(relative, e) for e in exclude):
                found.add(relative)
    params = []
    for relative in sorted(found):
        basename = relative.rsplit("/", 1)[-1]
        params.append({"path": {"path": relative, "basename": basename,
                                "basenameNormalized": normalize(basename),
                                "segments": relative.split("/")}})  # fmt: skip
    return params


def generate(
    generator: Mapping[str, Any], clusters: Iterable[Cluster], repo: Path
) -> list[dict[str, Any]]:
    """The parameter sets of one generator."""
    clusters = list(clusters)
    kinds = sorted(generator)
    if kinds == ["clusters"]:
        return _clusters(generator["clusters"] or {}, clusters)
    if kinds == ["git"]:
        return _git_directories(generator["git"], repo)
    if kinds == ["matrix"]:
        children = generator["matrix"].get("generators") or []
        if len(children) != 2:
            raise GitOpsError("matrix generator: exactly two child generators")
        left = generate(children[0], clusters, repo)
        right = generate(children[1], clusters, repo)
        return [_combine(a, b) for a in left for b in right]
    raise GitOpsError(f"generator {', '.join(kinds)}: not one the expander supports "
                      "(clusters, git directories, matrix)")  # fmt: skip


def _combine(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    clash = sorted(set(left) & set(right))
    if clash:
        raise GitOpsError(f"matrix generator: both children set {', '.join(clash)}")
    return {**left, **right}


# ---- the template --------------------------------------------------------------------


def _lookup(params: Mapping[str, Any], reference: str, where: str) -> str:
    node: Any = params
    for part in reference.lstrip(".").split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise GitOpsError(f"{where}: {{{{{reference}}}}}: no such parameter "
                              f"(map has no entry for key \"{part}\")")  # fmt: skip
        node = node[part]
    if isinstance(node, Mapping | list):
        raise GitOpsError(f"{where}: {{{{{reference}}}}} is not a single value")
    return str(node)


def _substitute(text: str, params: Mapping[str, Any], where: str) -> str:
    def field(match: re.Match[str]) -> str:
        return _lookup(params, match.group(1), where)

    result = FIELD.sub(field, text)
    # What is left between braces is not a field reference: refused, not guessed.
    leftover = ACTION.search(FIELD.sub("", text))
    if leftover:
        raise GitOpsError(f"{where}: {leftover.group(0)}: only field references "
                          "({{.a.b}}) are expanded here")  # fmt: skip
    return result


def render_template(template: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(template, str):
        return _substitute(template, params, where)
    if isinstance(template, list):
        return [render_template(item, params, where) for item in template]
    if isinstance(template, Mapping):
        rendered = {}
        for key, value in template.items():
            if "{{" in str(key):
                raise GitOpsError(f"{where}: {key}: a key cannot be templated")
            rendered[key] = render_template(value, params, where)
        return rendered
    return copy.deepcopy(template)


def expand(
    appset: Mapping[str, Any], clusters: Iterable[Cluster], repo: Path
) -> list[dict[str, Any]]:
    """The Applications one ApplicationSet makes, as Argo CD would."""
    name = appset["metadata"].get("name", "?")
    where = f"ApplicationSet {name}"
    spec = appset.get("spec") or {}
    if not spec.get("goTemplate") or "missingkey=error" not in spec.get("goTemplateOptions", []):
        raise GitOpsError(f"{where}: set goTemplate: true and goTemplateOptions: "
                          "[missingkey=error] (a missing output must fail, not render empty)")  # fmt: skip
    if "templatePatch" in spec:
        raise GitOpsError(f"{where}: templatePatch is not expanded here")
    clusters = list(clusters)
    applications = []
    for generator in spec.get("generators") or []:
        for params in generate(generator, clusters, repo):
            app = render_template(spec["template"], params, where)
            app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **app}
            app["metadata"].setdefault("namespace", appset["metadata"].get("namespace"))
            applications.append(app)
    names = [app["metadata"]["name"] for app in applications]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise GitOpsError(f"{where}: two Applications named {', '.join(duplicated)}")
    return applications


# ---- the root, and what Argo CD would refuse -------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What ``argocd/root/`` makes on one cluster."""

    projects: dict[str, dict[str, Any]]
    applicationsets: list[dict[str, Any]]
    applications: list[dict[str, Any]]


def plan(repo: Path, cluster: Cluster, *, also: Iterable[dict[str, Any]] = ()) -> Plan:
    """What the root makes on ``cluster``, checked; ``also``: Applications applied
    directly (the root itself), checked with them but not part of the result."""
    documents = load_documents(repo / ROOT_DIR)
    projects = {d["metadata"]["name"]: d for d in documents if d.get("kind") == "AppProject"}
    appsets = [d for d in documents if d.get("kind") == "ApplicationSet"]
    applications = [d for d in documents if d.get("kind") == "Application"]
    for appset in appsets:
        applications += expand(appset, [cluster], repo)
    check(Plan(projects, appsets, [*also, *applications]), repo)
    return Plan(projects, appsets, applications)


def sources(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = app.get("spec") or {}
    return list(spec.get("sources") or ([spec["source"]] if spec.get("source") else []))


def _allowed(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def check(result: Plan, repo: Path) -> None:
    """Every Application inside its AppProject, every upstream chart pinned, every local
    path present: each problem named, all of them at once."""
    problems = []
    for app in result.applications:
        name = app["metadata"]["name"]
        project_name = app["spec"].get("project", "default")
        project = result.projects.get(project_name)
        if project is None:
            problems.append(f"Application {name}: project {project_name} is not in {ROOT_DIR}/")
            continue
        spec = project.get("spec") or {}
        for source in sources(app):
            url = source.get("repoURL", "")
            if not _allowed(url, spec.get("sourceRepos") or []):
                problems.append(f"Application {name}: source {url} is outside AppProject "
                                f"{project_name}'s sourceRepos")  # fmt: skip
            if source.get("chart"):
                version = str(source.get("targetRevision", ""))
                if not PINNED.match(version):
                    problems.append(f"Application {name}: chart {source['chart']} version "
                                    f"{version or '(none)'!s} is not pinned (x.y.z)")  # fmt: skip
            elif source.get("path") and not (repo / source["path"]).is_dir():
                problems.append(
                    f"Application {name}: path {source['path']} is not in the repository"
                )
            elif source.get("path"):
                # Optional values files may be missing (ignoreMissingValueFiles), but not the
                # environment's: without it the charts have no values for this cluster.
                for entry in (source.get("helm") or {}).get("valueFiles") or []:
                    path = (repo / source["path"] / entry).resolve()
                    if "/environments/" in entry and not path.exists():
                        problems.append(f"Application {name}: {path.relative_to(repo.resolve())}: "
                                        "missing (the charts' values for this environment)")  # fmt: skip
        destination = app["spec"].get("destination") or {}
        namespace = destination.get("namespace", "")
        server = destination.get("server", IN_CLUSTER)
        if not any(
            _allowed(namespace, [d.get("namespace", "")])
            and _allowed(server, [d.get("server", "*")])
            for d in spec.get("destinations") or []
        ):
            problems.append(f"Application {name}: destination namespace {namespace} is outside "
                            f"AppProject {project_name}'s destinations")  # fmt: skip
    if problems:
        raise GitOpsError("\n".join(problems))


# The cluster-scoped kinds a chart of this repository or an add-on may contain.
CLUSTER_SCOPED = frozenset({
    "APIService", "ClusterRole", "ClusterRoleBinding", "ClusterSecretStore",
    "ClusterExternalSecret", "CustomResourceDefinition", "IngressClass", "IngressClassParams",
    "MutatingWebhookConfiguration", "Namespace", "PersistentVolume", "PriorityClass",
    "StorageClass", "ValidatingWebhookConfiguration",
})  # fmt: skip


def cluster_kinds_outside(
    project: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]
) -> list[str]:
    """The cluster-scoped kinds among ``objects`` the project does not allow."""
    allowed = [(entry.get("group", ""), entry.get("kind", ""))
               for entry in (project.get("spec") or {}).get("clusterResourceWhitelist") or []]  # fmt: skip
    refused = set()
    for obj in objects:
        kind = str(obj.get("kind", ""))
        if kind not in CLUSTER_SCOPED:
            continue
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if not any(_allowed(group, [g]) and _allowed(kind, [k]) for g, k in allowed):
            refused.add(f"{group or 'core'}/{kind}")
    return sorted(refused)


def annotations_read(repo: Path) -> set[str]:
    """Every cluster-secret annotation an ApplicationSet in the root reads."""
    text = "\n".join(p.read_text() for p in sorted((repo / ROOT_DIR).glob("*.yaml")))
    return set(re.findall(r"\.metadata\.annotations\.([A-Za-z0-9_]+)", text))


def to_yaml(documents: Iterable[Mapping[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(dict(d), sort_keys=False) for d in documents)
