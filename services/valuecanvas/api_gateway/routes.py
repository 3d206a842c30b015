"""The gateway's route table: which public paths go to which service, with what limits.

Defined in ``routes.yaml`` (this package); an environment replaces it with
``GATEWAY_ROUTES``. Matching is by path prefix on whole segments, longest first.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
Scope = Literal["value-cases:read", "value-cases:write", "admin"]
_PATH = r"^/v1(/[a-z0-9][a-z0-9._-]*)+$"


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(pattern=_PATH, max_length=200)
    service: str
    upstream_path: str | None = Field(default=None, pattern=_PATH, max_length=200)
    methods: tuple[Method, ...] = ("GET",)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_body_bytes: int | None = Field(default=None, ge=0, le=64 * 1_048_576)
    subpaths: bool = True  # False: the path exactly, nothing below it
    read_scope: Scope = "value-cases:read"
    write_scope: Scope = "value-cases:write"

    @field_validator("methods")
    @classmethod
    def _some_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a route allows at least one method")
        return value

    def matches(self, path: str) -> bool:
        return path == self.path or (self.subpaths and path.startswith(self.path + "/"))

    def target_path(self, path: str) -> str:
        return (self.upstream_path or self.path) + path[len(self.path) :]

    def scope_for(self, method: str) -> Scope:
        return self.read_scope if method in ("GET", "HEAD") else self.write_scope


_ROUTES = TypeAdapter(list[Route])


@cache
def _packaged() -> tuple[Route, ...]:
    text = resources.files(__package__).joinpath("routes.yaml").read_text()
    return tuple(_ROUTES.validate_python(yaml.safe_load(text)))


def default_routes() -> list[Route]:
    return list(_packaged())


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: len(route.path), reverse=True)

    def find(self, path: str) -> Route | None:
        return next((route for route in self.routes if route.matches(path)), None)
