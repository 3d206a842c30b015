"""Every service's error: an RFC 9457 problem (``application/problem+json``) with the
request id, its response, its OpenAPI entry, and the handlers that turn FastAPI's own
errors (validation, HTTP exceptions, anything unexpected) into the same shape.

The members are RFC 9457's (``type``, ``title``, ``status``, ``detail``, ``instance``) and
four extensions: ``code`` (stable, for programs), ``param`` (the field at fault, if one
is), ``request_id``, and ``error``, the same facts in OpenAI's error shape, so that an
OpenAI SDK pointed at the gateway or the llm-proxy reads its message as usual.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from valuecanvas.core.requestid import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Relative to the service (RFC 9457 allows it); docs/errors.md explains each code.
PROBLEM_TYPE_BASE = "/problems/"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the request id and OpenAI's shape alongside."""

    type: str = Field(description="a URI reference naming the problem type")
    title: str = Field(description="the HTTP status phrase")
    status: int
    detail: str = Field(description="what went wrong, for a person")
    instance: str | None = Field(default=None, description="the request's path")
    code: str = Field(description="stable, for programs")
    param: str | None = Field(default=None, description="the field at fault, if one is")
    request_id: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="every field at fault (validation problems)"
    )
    error: ErrorDetail


def error_doc(description: str) -> dict[str, Any]:
    """An error response for a route's ``responses``: documented with the problem body."""
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def error_body(
    status: int,
    kind: str,
    code: str,
    message: str,
    param: str | None = None,
    *,
    instance: str | None = None,
) -> dict[str, Any]:
    """The problem document (``kind`` is OpenAI's error type: ``invalid_request_error``...)."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": _phrase(status),
        "status": status,
        "detail": message,
        "instance": instance,
        "code": code,
        "param": param,
        "request_id": current_request_id(),
        "error": {"message": message, "type": kind, "param": param, "code": code},
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(
    status: int,
    kind: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body = error_body(status, kind, code, message, param, instance=instance)
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(
        body,
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


_KIND_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def kind_for(status: int) -> str:
    return _KIND_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


class ProblemError(Exception):
    """Raised by a handler to answer with a problem (the handler below renders it)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.param, self.headers = param, headers


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


async def _validation_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # At most 20 named: a hostile body can fail thousands of items at once.
    fields = [
        {"field": _field_name(tuple(error.get("loc", ()))), "message": str(error.get("msg"))}
        for error in exc.errors()[:20]
    ]
    described = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
    return error_response(
        422,
        "invalid_request_error",
        "invalid_field",
        described or "invalid request",
        param=fields[0]["field"] if fields else None,
        instance=request.url.path,
        errors=fields,
    )


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code < 400:  # pragma: no cover - FastAPI never raises those here
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    return error_response(
        exc.status_code,
        kind_for(exc.status_code),
        code,
        detail,
        headers=dict(exc.headers) if exc.headers else None,
        instance=request.url.path,
    )


async def _raised_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return error_response(
        exc.status,
        kind_for(exc.status),
        exc.code,
        exc.message,
        param=exc.param,
        headers=exc.headers,
        instance=request.url.path,
    )


def unexpected_problem(path: str) -> JSONResponse:
    """The answer to an error no handler expected (RequestMiddleware logs the trace)."""
    return error_response(
        500,
        "api_error",
        "internal_error",
        "the service failed to answer; quote the request id when reporting it",
        instance=path,
    )


def problems_in_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents its 422 as ``HTTPValidationError`` in ``application/json``; every
    service answers errors as problems, so the document says so (schemathesis checks
    answers against it)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for name, definition in (
        Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        .get("$defs", {})
        .items()
    ):
        components.setdefault(name, definition)
    components["Problem"].pop("$defs", None)
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                # A body that is not JSON at all (or not UTF-8) is refused before validation.
                responses.setdefault("400", {"description": "the body is not valid JSON"})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = dict(problem)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(ProblemError, _raised_problem)
