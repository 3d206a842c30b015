#!/usr/bin/env python3
"""`make validate ENV=<env>`: every object in build/rendered/<env>/ checked against a schema.

- Kubernetes' own kinds: the 1.28 schemas (kubernetes-validate, strict: unknown fields fail).
- Custom resources: External Secrets, Prometheus Operator, Argo CD (Application, ApplicationSet,
  AppProject) and Argo Rollouts (Rollout, AnalysisTemplate) kinds with the validators the
  @kubernetes-models npm packages generate from the upstream CRDs (tools/crd-validate,
  pinned by its package-lock.json); TargetGroupBinding with the schema written in
  tools/crd-validate/schemas/. A kind with no schema is a finding, never a pass.
- checkov's Kubernetes checks (its own locked virtualenv, .venv-checkov; the checks skipped,
  each with its reason, are in tools/checkov/config.yaml).

    tools/validate_rendered.py ENV [--no-checkov]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
RENDERED = REPO / "build" / "rendered"
KUBERNETES_VERSION = "1.28.0"
CRD_TOOL = REPO / "tools" / "crd-validate"
NODE_KINDS = ("external-secrets.io/", "monitoring.coreos.com/", "argoproj.io/")
SCHEMAS = {
    "elbv2.k8s.aws/v1beta1/TargetGroupBinding": CRD_TOOL
    / "schemas"
    / "targetgroupbinding-v1beta1.json",
}
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = REPO / "tools" / "checkov" / "config.yaml"


@dataclass(frozen=True)
class Rendered:
    source: str  # the file, relative to the repository
    object: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.object.get('apiVersion')}/{self.object.get('kind')}"

    @property
    def label(self) -> str:
        return f"{self.source}: {self.object.get('kind')} {self.object.get('metadata', {}).get('name')}"


def load(folder: Path) -> list[Rendered]:
    found = []
    for path in sorted(folder.glob("*.yaml")):
        source = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        documents = yaml.load_all(
            path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
        found += [Rendered(source, document) for document in documents if document]
    return found


def kubernetes_problems(objects: list[Rendered]) -> tuple[list[str], list[Rendered]]:
    """Problems of Kubernetes' own kinds, and the objects that are not Kubernetes' own."""
    problems, custom = [], []
    for item in objects:
        try:
            kubernetes_validate.validate(item.object, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.append(item)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path) or "/"
            problems.append(f"{item.label}: {where}: {error.message}")
    return problems, custom


def crd_problems(objects: list[Rendered]) -> list[str]:
    problems = []
    by_node = [item for item in objects if item.key.startswith(NODE_KINDS)]
    for item in objects:
        if item.key in SCHEMAS:
            schema = json.loads(SCHEMAS[item.key].read_text())
            for error in jsonschema.Draft202012Validator(schema).iter_errors(item.object):
                where = "/".join(str(part) for part in error.absolute_path) or "/"
                problems.append(f"{item.label}: {where}: {error.message}")
        elif not item.key.startswith(NODE_KINDS):
            problems.append(f"{item.label}: no schema known for {item.key}")
    if by_node:
        payload = json.dumps([{"source": item.label, "object": item.object} for item in by_node])
        node = shutil.which("node")
        if node is None:
            raise SystemExit(
                "validate: node is needed for the CRD validators (apt-get install nodejs npm)"
            )
        result = subprocess.run([node, str(CRD_TOOL / "validate.mjs")], input=payload, capture_output=True,
                                text=True, timeout=120, cwd=CRD_TOOL)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(
                f"validate.mjs failed (npm ci in {CRD_TOOL}?): {result.stderr[-2000:]}"
            )
        for checked in json.loads(result.stdout):
            problems += [f"{checked['source']}: {error}" for error in checked["errors"]]
    return problems


def checkov_problems(folder: Path) -> list[str]:
    result = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--config-file", str(CHECKOV_CONFIG), "-o", "json"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    if result.returncode not in (0, 1):
        raise SystemExit(f"checkov failed: {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    problems = []
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report.get("results", {}).get("failed_checks", []):
            problems.append(
                f"{check['file_path']}: {check['resource']}: {check['check_id']} {check['check_name']}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("environment")
    parser.add_argument("--no-checkov", action="store_true")
    args = parser.parse_args(argv)
    folder = RENDERED / args.environment
    objects = load(folder)
    if not objects:
        print(
            f"validate: nothing rendered in {folder} (make render ENV={args.environment})",
            file=sys.stderr,
        )
        return 1
    problems, custom = kubernetes_problems(objects)
    problems += crd_problems(custom)
    if not args.no_checkov:
        problems += checkov_problems(folder)
    print(
        "\n".join(problems)
        if problems
        else f"validate: {len(objects)} objects in {folder.relative_to(REPO)}: no findings"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
