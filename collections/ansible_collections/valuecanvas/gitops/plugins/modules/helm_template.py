#!/usr/bin/python
"""A chart rendered with Helm's own Go SDK (helm-python-sdk): `helm template`, no binary."""

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_template
short_description: Render a Helm chart into Kubernetes objects, in apply order
description:
  - Pulls the chart at an exact version from its repository (or takes a local chart
    folder), merges the values files in order (later wins, maps merge key by key), and
    renders it as `helm template` would, with Helm's Go SDK (helm-python-sdk).
  - Returns the objects in apply order - Namespaces, then CustomResourceDefinitions,
    then everything else. Applies nothing; check-mode safe.
options:
  chart:
    description: The chart's name in its repository.
    type: str
  repo_url:
    description: The chart repository (https://...).
    type: str
  version:
    description: The chart version, exactly (x.y.z).
    type: str
  chart_path:
    description: A local chart folder, used instead of chart, repo_url and version.
    type: path
  release_name:
    description: The release name.
    type: str
    required: true
  namespace:
    description: The release namespace.
    type: str
    required: true
  value_files:
    description: Values files, in order.
    type: list
    elements: path
    default: []
  kube_version:
    description: The cluster's Kubernetes version (Capabilities.KubeVersion).
    type: str
    default: v1.28.0
"""

RETURN = r"""
objects:
  description: The rendered objects, in apply order.
  returned: always
  type: list
  elements: dict
source:
  description: What was rendered (the chart and version, or the local folder).
  returned: always
  type: str
"""

import re
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import helm_python as helm
    import yaml

    from valuecanvas import gitops
except ImportError:  # pragma: no cover - the playbook's own Python has them
    helm = None

PINNED = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
ORDER = {"Namespace": 0, "CustomResourceDefinition": 1}


def render(module, chart_dir):
    values = {}
    for path in module.params["value_files"]:
        values = gitops.merge_values(values, yaml.safe_load(Path(path).read_text()) or {})
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(
            values,
            name=module.params["release_name"],
            namespace=module.params["namespace"],
            is_install=True,
        )
    objects = []
    for template in sorted(manifests):
        if template.endswith((".yaml", ".yml")) and "/tests/" not in template:
            objects += [doc for doc in yaml.safe_load_all(manifests[template]) if doc]
    return sorted(objects, key=lambda obj: ORDER.get(obj.get("kind"), 2))


def main():
    module = AnsibleModule(
        argument_spec={
            "chart": {"type": "str"},
            "repo_url": {"type": "str"},
            "version": {"type": "str"},
            "chart_path": {"type": "path"},
            "release_name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "value_files": {"type": "list", "elements": "path", "default": []},
            "kube_version": {"type": "str", "default": "v1.28.0"},
        },
        required_one_of=[("chart", "chart_path")],
        required_together=[("chart", "repo_url", "version")],
        supports_check_mode=True,
    )
    if helm is None:
        module.fail_json(msg=missing_required_lib("helm-python-sdk"))
    params = module.params
    try:
        if params["chart_path"]:
            objects = render(module, params["chart_path"])
            source = f"the local chart {params['chart_path']}"
        else:
            if not PINNED.match(params["version"]):
                module.fail_json(msg=f"version: {params['version']!r} is not pinned (x.y.z)")
            with tempfile.TemporaryDirectory(prefix="helm-template-") as folder:
                helm.pull(params["chart"], repo_url=params["repo_url"], version=params["version"],
                          destination=folder, untar=True, untar_dir=folder)  # fmt: skip
                objects = render(module, Path(folder) / params["chart"])
            source = f"chart {params['chart']} {params['version']} from {params['repo_url']}"
    except helm.HelmError as error:
        module.fail_json(msg=f"helm: {error}")
    module.exit_json(changed=False, objects=objects, source=source)


if __name__ == "__main__":
    main()
