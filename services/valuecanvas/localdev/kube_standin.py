"""A Kubernetes API stand-in on a loopback port: kmock's in-memory emulator with the
resources the argocd_bootstrap role applies, plus a stand-in for Argo CD's application
controller. There is no API server, and no Argo CD, on this machine; this is their
counterpart of moto. Used by the role's molecule scenario and by the tests::

    python -m valuecanvas.localdev.kube_standin --port 6443    (make emulator starts it)

What it is not: kmock stores objects as JSON and merges patches key by key (no strategic
merge, no server-side apply field ownership, no admission, no validation). The "Argo CD"
here only writes each Application's status: ``--health Healthy`` (the default) reports
every Application synced and healthy; ``--health Degraded`` reports the root's children
degraded, so that the role's bounded wait and its error can be exercised. Its messages
say "stand-in", so nobody mistakes them for Argo CD's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import httpx
import kmock
from kmock._internal import dicts, parsing

_parse_path = parsing.parse_path


def _parse_path_with_namespaces(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads ``/api/v1/namespaces[/<name>]`` as a namespace scope without a
    resource (a 500 on creating a Namespace); the API server reads it as the namespaces
    resource itself. Everything else is kmock's own parsing."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, None)
    return _parse_path(path)


parsing.parse_path = _parse_path_with_namespaces

# (group/version/plural, kind, namespaced): what the role and the stand-in Argo CD chart
# apply, and what the kubernetes.core modules discover.
RESOURCES: tuple[tuple[str, str, bool], ...] = (
    ("v1/namespaces", "Namespace", False),
    ("v1/secrets", "Secret", True),
    ("v1/configmaps", "ConfigMap", True),
    ("v1/serviceaccounts", "ServiceAccount", True),
    ("v1/services", "Service", True),
    ("apps/v1/deployments", "Deployment", True),
    ("apps/v1/statefulsets", "StatefulSet", True),
    ("rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io/v1/roles", "Role", True),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", True),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False),
    ("argoproj.io/v1alpha1/applications", "Application", True),
    ("argoproj.io/v1alpha1/applicationsets", "ApplicationSet", True),
    ("argoproj.io/v1alpha1/appprojects", "AppProject", True),
)
VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}
APPLICATIONS = kmock.resource("argoproj.io", "v1alpha1", "applications")
STAND_IN = "stand-in for Argo CD's application controller (no Argo CD on this machine)"


def _resource(name: str) -> kmock.resource:
    group_version, plural = name.rsplit("/", 1)
    group, _, version = group_version.rpartition("/")
    return kmock.resource(group, version, plural)


KINDS = {_resource(name): kind for name, kind, _namespaced in RESOURCES}
CLUSTER_SCOPED = frozenset(
    _resource(name) for name, _kind, namespaced in RESOURCES if not namespaced
)


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus two things the API server does that kubernetes.core relies
    on: a cluster-scoped object that names a namespace (kubernetes.core sets one on
    everything it applies) has it ignored; and a dry run (``?dryRun=All``, what check mode
    sends) answers what would be stored and stores nothing."""

    async def _handle(self, request: Any) -> Any:
        if request.resource in CLUSTER_SCOPED and isinstance(request.data, dict):
            request.data.get("metadata", {}).pop("namespace", None)
        if request.resource is not None and "dryRun" in request.params:
            return self._dry_run(request)
        return await super()._handle(request)

    def _dry_run(self, request: Any) -> aiohttp.web.Response:
        if request.action == kmock.action.CREATE:
            return aiohttp.web.json_response(request.data, status=201)
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "code": 404,
                                              "status": "Failure", "reason": "NotFound"}, status=404)  # fmt: skip
        current = copy.deepcopy(self.objects[key].raw)
        if request.action == kmock.action.UPDATE:
            return aiohttp.web.json_response(dicts.patch_dict(current, request.data or {}))
        return aiohttp.web.json_response(current)

    async def _serve_list(self, request: Any) -> Any:
        """A list names its kind, as the API server's does (the Kubernetes client needs it)."""
        listed = await super()._serve_list(request)
        assert isinstance(listed, dict)  # kmock's list: {"metadata": ..., "items": [...]}
        resource = request.resource
        api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
        return {"apiVersion": api_version, "kind": f"{KINDS.get(resource, 'Object')}List", **listed}


def emulator() -> kmock.KubernetesEmulator:
    server = Emulator()
    for name, kind, namespaced in RESOURCES:
        server.resources[_resource(name)] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS
        )
    return server


def _status(health: str, message: str) -> dict[str, Any]:
    return {
        "status": {
            "sync": {"status": "Synced"},
            "health": {"status": health, "message": message},
        }
    }


async def argo_stand_in(server: kmock.KubernetesEmulator, health: str) -> None:
    """Write each Application's status, as Argo CD's controller would after a sync."""
    while True:
        for (resource, _namespace, _name), obj in list(server.objects.items()):
            if resource != APPLICATIONS or obj.deleted:
                continue
            want = health
            current = obj.get("status", {}).get("health", {}).get("status")
            if current != want:
                obj.patch(_status(want, f"{want} ({STAND_IN})"))
        await asyncio.sleep(0.2)


async def serve(port: int, health: str, ready: asyncio.Event | None = None) -> None:
    async with emulator() as server, kmock.Server(server, port=port):
        task = asyncio.create_task(argo_stand_in(server, health))
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def answers(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/version", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def start(
    port: int, log: Path, *, health: str = "Healthy", detach: bool = False
) -> subprocess.Popen[bytes]:
    """The stand-in in its own process, on 127.0.0.1:port; returns once it answers."""
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, "--port", str(port), "--health", health],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=detach,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not answers(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"the Kubernetes API stand-in did not start; see {log}")
        time.sleep(0.1)
    return process


@contextlib.contextmanager
def kube_standin(log: Path, *, health: str = "Healthy") -> Iterator[str]:
    """Start the stand-in on a free loopback port; yield its endpoint; stop it."""
    from valuecanvas.localdev.postgres import free_port

    port = free_port()
    process = start(port, log, health=health)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--health", choices=["Healthy", "Degraded"], default="Healthy")
    args = parser.parse_args(argv)
    print(f"Kubernetes API stand-in (kmock) on http://127.0.0.1:{args.port}", file=sys.stderr)
    asyncio.run(serve(args.port, args.health))


if __name__ == "__main__":
    main()
