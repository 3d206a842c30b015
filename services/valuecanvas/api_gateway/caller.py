"""Who is calling the gateway, and what they may do: a user JWT (every scope; their role in
the organization decides the rest, in the database) or an API key (its scopes, acting as
its organization through its service identity)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from valuecanvas.api_gateway.keys import ApiKeyStore, looks_like_key
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.identity import AuthError, Identity, TokenVerifier

ALL_SCOPES = frozenset({"value-cases:read", "value-cases:write", "admin"})
# A scope grants the ones below it: admin > value-cases:write > value-cases:read.
_IMPLIED = {
    "admin": {"admin", "value-cases:write", "value-cases:read"},
    "value-cases:write": {"value-cases:write", "value-cases:read"},
    "value-cases:read": {"value-cases:read"},
}


def effective_scopes(granted: frozenset[str]) -> frozenset[str]:
    return frozenset(scope for given in granted for scope in _IMPLIED.get(given, ()))


CALLER_STATE = "gateway_caller"
# Roles in rank order: a route that needs "admin" admits owners too.
_ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


@dataclass(frozen=True)
class GatewayCaller:
    identity: Identity
    via: Literal["user_token", "api_key"]
    scopes: frozenset[str]
    api_key_id: UUID | None = None

    @property
    def rate_subject(self) -> tuple[str, str]:
        """The bucket this caller is counted in besides its organization."""
        if self.api_key_id is not None:
            return ("api_key", str(self.api_key_id))
        return ("user", str(self.identity.user_id))

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ProblemError(
                403, "insufficient_scope", f"this API key lacks the scope {scope!r}", param=scope
            )


class UnauthenticatedError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """("key", value) or ("token", value) from Authorization or X-API-Key; None if absent."""
    api_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if api_key is not None and authorization is not None:
        raise UnauthenticatedError("send either Authorization or X-API-Key, not both")
    if api_key is not None:
        return ("key", api_key.strip())
    if authorization is None:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise UnauthenticatedError("Authorization must be 'Bearer <token or API key>'")
    return ("key", value) if looks_like_key(value) else ("token", value)


async def authenticate(
    found: tuple[str, str], verifier: TokenVerifier, keys: ApiKeyStore
) -> GatewayCaller:
    kind, value = found
    if kind == "token":
        try:
            identity = await verifier.verify(value)
        except AuthError as exc:
            raise UnauthenticatedError(exc.reason) from None
        if identity.via != "user_token" or identity.role != "authenticated":
            # Internal tokens are for calls between services, never from outside.
            raise UnauthenticatedError("only user tokens and API keys are accepted here")
        return GatewayCaller(identity=identity, via="user_token", scopes=ALL_SCOPES)
    if not looks_like_key(value):
        raise UnauthenticatedError("malformed API key")
    key = await keys.find(value)
    if key is None:
        raise UnauthenticatedError("unknown API key")
    refusal = key.refusal(datetime.now(UTC))
    if refusal is not None:
        raise UnauthenticatedError(refusal)
    keys.used(key.id)
    identity = Identity(
        user_id=key.principal_id,
        organization_id=key.organization_id,
        role="authenticated",
        via="api_key",
    )
    return GatewayCaller(
        identity=identity, via="api_key", scopes=effective_scopes(key.scopes), api_key_id=key.id
    )


# The OpenAPI document's two security schemes; the check itself is GatewayMiddleware's.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A user JWT (Supabase-compatible), or an API key (vc_...)",
)
_API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key (vc_...)"
)


async def _caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    _key: Annotated[str | None, Depends(_API_KEY)],
) -> GatewayCaller:
    caller: GatewayCaller | None = request.scope.get("state", {}).get(CALLER_STATE)
    if caller is None:  # GatewayMiddleware answers 401 before any route runs
        raise ProblemError(401, "invalid_token", "missing credentials")
    return caller


Caller = Annotated[GatewayCaller, Depends(_caller)]


def role_at_least(role: str | None, needed: str) -> bool:
    return role is not None and _ROLE_RANK.get(role, -1) >= _ROLE_RANK[needed]


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: error_doc("no credentials, or ones that do not verify (the reason is given)"),
    403: error_doc("the API key lacks the scope, or the caller the role (named)"),
    429: error_doc("a rate limit; see Retry-After and RateLimit"),
    503: error_doc("the rate limiter is unreachable (the gateway fails closed)"),
}
