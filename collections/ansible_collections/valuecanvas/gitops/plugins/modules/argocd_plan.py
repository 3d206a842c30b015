#!/usr/bin/python
"""What argocd/root/ makes for one cluster secret, checked before anything is applied."""

from __future__ import annotations

DOCUMENTATION = r"""
module: argocd_plan
short_description: Expand argocd/root/ for a cluster secret and check it
description:
  - Expands the ApplicationSets of argocd/root/ as Argo CD would for the given cluster
    secret (the valuecanvas.gitops expander), and checks every Application and the root
    Application against their AppProjects, every upstream chart for a pinned version, and
    the secret for every annotation the ApplicationSets read. Fails naming each problem.
  - Reads files only; check-mode safe.
options:
  repo_dir:
    description: The checkout holding argocd/ and apps/.
    type: path
    required: true
  cluster_secret:
    description: The Argo CD cluster secret the role would write (data or stringData).
    type: dict
    required: true
  root_application:
    description: The root Application the role would apply.
    type: dict
    required: true
  self_managed:
    description: The name of the Application through which Argo CD manages itself.
    type: str
    default: argo-cd
"""

RETURN = r"""
applications:
  description: The names of the Applications the root makes on this cluster.
  returned: always
  type: list
  elements: str
argocd_chart:
  description: >-
    Argo CD's own chart as its self-managing Application names it - repo_url, chart,
    version, release_name, namespace, value_files (those present, in order, absolute).
  returned: always
  type: dict
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from valuecanvas import gitops
except ImportError:  # pragma: no cover - the playbook's own Python has it
    gitops = None


def argocd_chart(plan, name, repo_dir, environment):
    app = next((a for a in plan.applications if a["metadata"]["name"] == name), None)
    if app is None:
        raise gitops.GitOpsError(f"no Application {name} (Argo CD managing itself) in argocd/root/")
    charts = [s for s in gitops.sources(app) if s.get("chart")]
    if len(charts) != 1:
        raise gitops.GitOpsError(f"Application {name}: exactly one chart source expected")
    source = charts[0]
    files = []
    for entry in (source.get("helm") or {}).get("valueFiles") or []:
        path = repo_dir / entry.removeprefix("$values/")
        if path.exists():
            files.append(str(path))
        elif not (source.get("helm") or {}).get("ignoreMissingValueFiles"):
            raise gitops.GitOpsError(f"Application {name}: values file {entry} does not exist")
    return {
        "repo_url": source["repoURL"],
        "chart": source["chart"],
        "version": str(source["targetRevision"]),
        "release_name": (source.get("helm") or {}).get("releaseName", name),
        "namespace": app["spec"]["destination"]["namespace"],
        "value_files": files,
        "environment": environment,
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "repo_dir": {"type": "path", "required": True},
            "cluster_secret": {"type": "dict", "required": True},
            "root_application": {"type": "dict", "required": True},
            "self_managed": {"type": "str", "default": "argo-cd"},
        },
        supports_check_mode=True,
    )
    if gitops is None:
        module.fail_json(msg=missing_required_lib("valuecanvas (this repository's package)"))
    repo_dir = Path(module.params["repo_dir"])
    try:
        cluster = gitops.Cluster.from_secret(module.params["cluster_secret"])
        missing = sorted(gitops.annotations_read(repo_dir) - set(cluster.annotations))
        if missing:
            raise gitops.GitOpsError(
                "the cluster secret lacks what argocd/root/ reads: " + ", ".join(missing)
            )
        # The root (which the role applies itself) is checked first, with the rest.
        plan = gitops.plan(repo_dir, cluster, also=[module.params["root_application"]])
        chart = argocd_chart(
            plan, module.params["self_managed"], repo_dir, cluster.labels.get("environment", "")
        )
    except gitops.GitOpsError as error:
        module.fail_json(msg=str(error))
    module.exit_json(
        changed=False,
        applications=sorted(app["metadata"]["name"] for app in plan.applications),
        argocd_chart=chart,
    )


if __name__ == "__main__":
    main()
