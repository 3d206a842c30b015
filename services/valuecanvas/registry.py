"""The services, by name: what ``valuecanvas serve NAME`` runs.

The services are the catalogue's entries (valuecanvas/catalogue/). Each is a package,
``valuecanvas.<module>``, whose ``app.py`` declares a :class:`ServiceDefinition`; this
module builds the app from the two with the shared factory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial

from fastapi import FastAPI

from valuecanvas.catalogue import CatalogueEntry, catalogue
from valuecanvas.core.app import ServiceDefinition, create_service_app
from valuecanvas.core.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    """A catalogue entry (valuecanvas/catalogue/<name>.yaml) and its Python module."""

    entry: CatalogueEntry

    def definition(self) -> ServiceDefinition:
        """The service package's explicit entry point: ``valuecanvas.<module>.app.DEFINITION``."""
        definition: ServiceDefinition = importlib.import_module(
            f"valuecanvas.{self.entry.module}.app"
        ).DEFINITION
        return definition

    def settings_class(self) -> type[ServiceSettings]:
        return self.definition().settings

    def load_settings(self, env_file: str | None = None) -> ServiceSettings:
        """Read and validate settings; raises pydantic.ValidationError naming what is wrong."""
        return self.settings_class()(_env_file=env_file)

    def create_app(self, settings: ServiceSettings | None = None) -> FastAPI:
        definition = self.definition()
        settings = settings or self.load_settings()
        return create_service_app(
            settings,
            title=f"ValueCanvas {self.entry.title}",
            description=self.entry.description,
            routers=definition.routers,
            extension=definition.extension,
            hot_routes=definition.hot_routes,
            middleware=definition.middleware(settings) if definition.middleware else (),
            document=partial(definition.document, settings) if definition.document else None,
        )


# Every service, from the catalogue, in port order.
SERVICES: dict[str, ServiceSpec] = {name: ServiceSpec(entry) for name, entry in catalogue().items()}
