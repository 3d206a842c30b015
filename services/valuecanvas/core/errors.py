"""Every service's error body (OpenAI's shape), its response, and its OpenAPI entry."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    """Every service's error body (OpenAI's shape)."""

    error: ErrorDetail


def error_doc(description: str) -> dict[str, Any]:
    """An error response for a route's ``responses``: documented with the error body."""
    return {"description": description, "model": ErrorBody}


def error_body(kind: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, used by every service."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    kind: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(kind, code, message, param), status_code=status, headers=headers)
