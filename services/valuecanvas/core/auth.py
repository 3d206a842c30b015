"""Who is calling: the bearer token verified into an :class:`Identity`, or a 401 that says
why. The gateway's API keys will sit beside the JWTs here (a second way to build an
Identity), without touching the rest."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from valuecanvas.core.errors import ProblemError, error_doc, error_response
from valuecanvas.core.identity import AuthError, Identity, JwksCache, TokenVerifier
from valuecanvas.core.settings import ServiceSettings
from valuecanvas.core.state import get_state


def build_verifier(
    settings: ServiceSettings, http: httpx.AsyncClient | None = None
) -> TokenVerifier:
    return TokenVerifier(
        algorithms=frozenset(settings.jwt_algorithms),
        audience=settings.jwt_audience,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwks=JwksCache(str(settings.jwt_jwks_url), http=http) if settings.jwt_jwks_url else None,
        issuer=settings.jwt_issuer,
        leeway_seconds=settings.jwt_leeway_seconds,
        internal_secret=settings.internal_token_secret.get_secret_value(),
    )


class UnauthorizedError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


# An identity a layer in front of the routes has verified already (the gateway's pipeline,
# which also knows API keys). Only server code writes the request's state.
VERIFIED_IDENTITY = "verified_identity"


async def require_identity(request: Request) -> Identity:
    """The verified caller; 401 with the reason otherwise (before any handler work)."""
    verified = request.scope.get("state", {}).get(VERIFIED_IDENTITY)
    if isinstance(verified, Identity):
        return verified
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing bearer token")
    try:
        return await get_state(request).verifier.verify(token.strip())
    except AuthError as exc:
        raise UnauthorizedError(exc.reason) from None


# Declares the bearer scheme in the OpenAPI document; the check itself is require_identity's
# (also called by HotPathMiddleware, where no dependency runs).
_BEARER = HTTPBearer(auto_error=False, description="A user JWT, or an internal token")


async def _caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> Identity:
    return await require_identity(request)


Caller = Annotated[Identity, Depends(_caller)]
# What every route that takes a Caller may answer besides its own responses.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: error_doc("no bearer token, or one that does not verify (the reason is given)")
}


async def unauthorized_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnauthorizedError)
    return unauthorized_response(exc, request.url.path)


def unauthorized_response(exc: UnauthorizedError, path: str | None = None) -> JSONResponse:
    return error_response(
        401,
        "authentication_error",
        "invalid_token",
        exc.reason,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.reason}"'
        },
        instance=path,
    )


def require_organization(caller: Identity) -> tuple[UUID, UUID]:
    """The caller's organization and user, for what acts in an organization: a 403 for a
    token that names no organization (or no user)."""
    if caller.organization_id is None or caller.user_id is None:
        raise ProblemError(403, "organization_required", "the token names no organization")
    return caller.organization_id, caller.user_id
