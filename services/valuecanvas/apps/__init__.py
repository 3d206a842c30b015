"""The eight service apps, by name: what ``valuecanvas serve NAME`` runs.

Each service module holds its settings class (one per service) and its own routers; this
module builds the app from them with the shared factory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from valuecanvas.core.app import create_service_app
from valuecanvas.core.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    title: str
    description: str

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

    @property
    def port(self) -> int:
        port: int = self.settings_class().model_fields["port"].default
        return port

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


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "api-gateway",
            "api_gateway",
            "API gateway",
            "The only public entry: JWT / API-key auth, routing, rate limits, CORS, validation.",
        ),
        ServiceSpec(
            "opportunity",
            "opportunity",
            "Opportunity agent",
            "Finds value opportunities in an account's discovery notes and profile.",
        ),
        ServiceSpec(
            "target",
            "target",
            "Target agent",
            "Turns opportunities into a business case: KPI targets, ROI, NPV and payback.",
        ),
        ServiceSpec(
            "realization",
            "realization",
            "Realization agent",
            "Tracks realized value against targets from KPI measurements.",
        ),
        ServiceSpec(
            "expansion",
            "expansion",
            "Expansion agent",
            "Finds upsell and cross-sell opportunities from realization data.",
        ),
        ServiceSpec(
            "integrity",
            "integrity",
            "Integrity agent",
            "Checks other agents' output: numbers recomputed, claims backed, policies enforced.",
        ),
        ServiceSpec(
            "orchestrator",
            "orchestrator",
            "Orchestrator",
            "Runs workflow definitions (DAGs of agent steps) durably.",
        ),
        ServiceSpec(
            "llm-proxy",
            "llm_proxy",
            "LLM proxy",
            "The only holder of provider keys: Together first, OpenAI as fallback.",
        ),
    )
}
