"""The llm-proxy's request and response bodies, as documented in its OpenAPI document.

A completion request is validated against :class:`ChatCompletionRequest` (strictly: no
coercion of a string to a boolean or a number to a string), so what the document accepts
is exactly what the proxy accepts. Fields the proxy does not interpret (``temperature``,
``tools``, ...) are allowed and passed to the provider as they are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    model: str = Field(
        min_length=1,
        description="a logical model (GET /v1/models lists them)",
        examples=["valuecanvas-default"],
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined (for an ``openapi_extra`` body)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


def money(value: Decimal) -> str:
    """A plain decimal string: ``0``, ``0.00012`` (never ``0E-10`` or ``1E+2``)."""
    return format(value.normalize(), "f") if value else "0"


class UsageRow(BaseModel):
    day: str = Field(description="YYYY-MM-DD, UTC")
    user_id: str | None
    organization_id: str | None
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str = Field(description="US dollars, a plain decimal string")
    errors: int


class UsageTotals(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str
    errors: int


class UsageReport(BaseModel):
    scope: Literal["me", "organization"]
    start: str
    end: str
    data: list[UsageRow]
    totals: UsageTotals
