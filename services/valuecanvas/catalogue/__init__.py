"""The service catalogue: one ``<name>.yaml`` per service in this folder, the only place a
service's name, port, image, secrets, autoscaling class and calls are written.

Python reads it here; the Ansible roles read the same files (``query('fileglob', ...)``),
and the Helm charts take an entry as their first values file (``tools/render.py``; next, the
Argo CD ApplicationSet).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class CatalogueEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    module: str = Field(pattern=r"^[a-z][a-z0-9_]{1,30}$", description="its Python package")
    title: str
    description: str
    port: int = Field(ge=1024, le=65535)
    autoscaling: Literal["gateway", "orchestrator", "agent", "proxy"]
    image: str = Field(pattern=r"^[a-z][a-z0-9-]{1,60}$")
    secrets: list[str]
    calls: list[str] = Field(default_factory=list, description="the services it calls over HTTP")


@cache
def catalogue() -> dict[str, CatalogueEntry]:
    """Every service, by name, in port order."""
    entries = [
        CatalogueEntry.model_validate(yaml.safe_load(path.read_text()))
        for path in resources.files(__package__).iterdir()
        if path.name.endswith(".yaml")
    ]
    found = {entry.name: entry for entry in sorted(entries, key=lambda entry: entry.port)}
    for entry in found.values():
        unknown = sorted(set(entry.calls) - set(found) | ({entry.name} & set(entry.calls)))
        if unknown:
            raise ValueError(
                f"catalogue: {entry.name} calls {', '.join(unknown)}: not another service"
            )
    return found
