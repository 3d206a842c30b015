"""The service apps, by name: what ``valuecanvas serve NAME`` runs.

The services are the catalogue's entries (valuecanvas/catalogue/); each one's module
holds its settings class and its own routers; this module builds the app from them with
the shared factory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from valuecanvas.catalogue import CatalogueEntry, catalogue
from valuecanvas.core.app import create_service_app
from valuecanvas.core.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    """A catalogue entry (valuecanvas/catalogue/<name>.yaml) and its Python module."""

    entry: CatalogueEntry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def module(self) -> str:
        return self.entry.module

    @property
    def title(self) -> str:
        return self.entry.title

    @property
    def description(self) -> str:
        return self.entry.description

    @property
    def port(self) -> int:
        return self.entry.port

    def settings_class(self) -> type[ServiceSettings]:
        module = importlib.import_module(f"valuecanvas.apps.{self.module}")
        (settings_class,) = (
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value is not ServiceSettings
        )
        return settings_class

    def routers(self) -> list[APIRouter]:
        routers: list[APIRouter] = importlib.import_module(
            f"valuecanvas.apps.{self.module}"
        ).ROUTERS
        return routers

    def load_settings(self, env_file: str | None = None) -> ServiceSettings:
        """Read and validate settings; raises pydantic.ValidationError naming what is wrong."""
        return self.settings_class()(_env_file=env_file)

    def create_app(self, settings: ServiceSettings | None = None) -> FastAPI:
        module = importlib.import_module(f"valuecanvas.apps.{self.module}")
        return create_service_app(
            settings or self.load_settings(),
            title=f"ValueCanvas {self.title}",
            description=self.description,
            routers=self.routers(),
            extension=getattr(module, "EXTENSION", None),
            hot_routes=getattr(module, "HOT_ROUTES", None),
        )


# Every service, from the catalogue, in port order.
SERVICES: dict[str, ServiceSpec] = {name: ServiceSpec(entry) for name, entry in catalogue().items()}
