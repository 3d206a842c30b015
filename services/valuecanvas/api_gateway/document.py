"""The public OpenAPI document's routed half: every path of the route table, with its
methods, the scope each needs, and every answer the gateway itself may give (the service
behind it documents its own bodies)."""

from __future__ import annotations

from typing import Any

from valuecanvas.api_gateway.settings import ApiGatewaySettings
from valuecanvas.core.errors import PROBLEM_MEDIA_TYPE
from valuecanvas.core.settings import ServiceSettings

_GATEWAY_ANSWERS = {
    "400": "the service refused the body",
    "401": "no credentials, or ones that do not verify",
    "403": "the API key lacks the route's scope",
    "404": "the service has no such resource",
    "405": "the route does not allow this method",
    "413": "the body is over the route's limit",
    "422": "the service refused the body",
    "429": "a rate limit; see Retry-After and RateLimit",
    "502": "the service failed",
    "503": "the service is unavailable (refused, or its breaker is open), or the limiter is",
    "504": "the service did not answer within the route's timeout",
}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def document_routes(settings: ServiceSettings, schema: dict[str, Any]) -> None:
    assert isinstance(settings, ApiGatewaySettings)
    paths = schema.setdefault("paths", {})
    # The shared routes (/v1/whoami) declare the services' bearer scheme; at the gateway an
    # API key works there too.
    for shared in paths.values():
        for declared in shared.values():
            if declared.get("security") == [{"HTTPBearer": []}]:
                declared["security"] = _SECURITY
    schema.get("components", {}).get("securitySchemes", {}).pop("HTTPBearer", None)
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in settings.gateway_routes:
        for path in (route.path, route.path + "/{subpath}") if route.subpaths else (route.path,):
            item: dict[str, Any] = {}
            for method in route.methods:
                operation: dict[str, Any] = {
                    "tags": ["routed"],
                    "summary": f"{method} {path}: forwarded to the {route.service} service",
                    "description": (
                        f"Needs the {route.scope_for(method)!r} scope (an API key; user tokens "
                        f"have every scope). Timeout {route.timeout_seconds:g} s."
                    ),
                    "operationId": f"routed_{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
                    "security": _SECURITY,
                    "responses": {
                        "200": {"description": "the service's answer (JSON, or server-sent events)",
                                "content": {"application/json": {"schema": {}},
                                            "text/event-stream": {"schema": {"type": "string"}}}},
                        **{status: {"description": text, "content": dict(problem)}
                           for status, text in _GATEWAY_ANSWERS.items()},
                    },
                }  # fmt: skip
                if path.endswith("{subpath}"):
                    operation["parameters"] = [
                        {"name": "subpath", "in": "path", "required": True,
                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}}
                    ]  # fmt: skip
                if method not in ("GET", "HEAD", "DELETE"):
                    operation["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                item[method.lower()] = operation
            paths.setdefault(path, item)
