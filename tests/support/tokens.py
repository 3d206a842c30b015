"""The one way tests mint a user token: Supabase-shaped claims (sub, role, aud, exp and,
when given, organization_id), HS256-signed with the tests' JWT secret. Every service under
test is configured with JWT_SECRET."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

JWT_SECRET = "jwt-secret-for-the-tests-0123456789abcdef"


def user_claims(
    user: uuid.UUID,
    organization: uuid.UUID | None = None,
    *,
    role: str = "authenticated",
    ttl_seconds: int = 600,
    **extra: Any,
) -> dict[str, Any]:
    """Claims of a valid user token; ``extra`` adds or replaces claims (``None`` drops one)."""
    claims: dict[str, Any] = {
        "sub": str(user),
        "role": role,
        "aud": "authenticated",
        "exp": int(time.time()) + ttl_seconds,
    }
    if organization is not None:
        claims["organization_id"] = str(organization)
    claims.update(extra)
    return {key: value for key, value in claims.items() if value is not None}


def user_token(
    user: uuid.UUID,
    organization: uuid.UUID | None = None,
    *,
    secret: str = JWT_SECRET,
    **claims: Any,
) -> str:
    return jwt.encode(user_claims(user, organization, **claims), secret, algorithm="HS256")


def bearer(user: uuid.UUID, organization: uuid.UUID | None = None, **claims: Any) -> dict[str, str]:
    """The Authorization header of a request made as ``user`` (in ``organization``)."""
    return {"Authorization": f"Bearer {user_token(user, organization, **claims)}"}
