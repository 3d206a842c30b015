"""Who is calling: verification of Supabase-compatible user JWTs and of internal tokens.

User tokens: HS256 signed with JWT_SECRET, or RS256/ES256 signed by a key published at
JWT_JWKS_URL. Only algorithms on the allow-list are accepted (never ``none``), and
``exp``, ``nbf``, ``aud`` and ``iss`` are checked with a small leeway.

Internal tokens: minted by one service for a call it makes on a user's behalf (the
orchestrator calling an agent, an agent calling the LLM proxy). They carry the same user,
organization and role, are signed with INTERNAL_TOKEN_SECRET (a different key), have their
own issuer and audience, and live for a minute by default. Every service verifies both
kinds the same way; nothing is trusted for arriving over the internal network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from uuid import UUID

import httpx
import jwt
from cachetools import TLRUCache, TTLCache

DatabaseRole = Literal["anon", "authenticated", "service_role"]
# The same three, as values (written once: from the Literal).
DATABASE_ROLES: tuple[str, ...] = get_args(DatabaseRole)
INTERNAL_ISSUER = "valuecanvas-internal"
INTERNAL_AUDIENCE = "valuecanvas-services"
_ASYMMETRIC = {"RS256", "ES256"}


class AuthError(Exception):
    """A token was refused; ``reason`` is safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    user_id: UUID | None
    organization_id: UUID | None
    role: DatabaseRole
    via: Literal["user_token", "internal_token", "api_key"]
    actor: str | None = None  # the service that minted an internal token
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def database_claims(self) -> dict[str, Any]:
        """The claims Postgres sees in ``request.jwt.claims`` (read by auth.uid(), auth.jwt())."""
        claims: dict[str, Any] = {"role": self.role}
        if self.user_id is not None:
            claims["sub"] = str(self.user_id)
        if self.organization_id is not None:
            claims["organization_id"] = str(self.organization_id)
        if self.via == "internal_token" and self.actor is not None:
            # Only a verified internal token gets these: the policies let an agent append
            # its own agent_audit_log entries by them (private.acting_agent()). A user
            # token's own `act` claim is never passed on.
            claims["iss"] = INTERNAL_ISSUER
            claims["act"] = {"sub": self.actor}
        return claims


def _uuid_claim(claims: dict[str, Any], name: str, value: Any) -> UUID | None:
    if value in (None, ""):
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise AuthError(f"claim {name} is not a UUID") from None


def identity_from_claims(
    claims: dict[str, Any], via: Literal["user_token", "internal_token"]
) -> Identity:
    role = claims.get("role", "authenticated")
    if role not in DATABASE_ROLES:
        raise AuthError(f"role {role!r} is not allowed")
    app_metadata = claims.get("app_metadata")
    if not isinstance(app_metadata, dict):
        app_metadata = {}
    organization = claims.get("organization_id", app_metadata.get("organization_id"))
    user_id = _uuid_claim(claims, "sub", claims.get("sub"))
    if role == "authenticated" and user_id is None:
        raise AuthError("missing claim sub")
    actor = claims.get("act", {}).get("sub") if isinstance(claims.get("act"), dict) else None
    return Identity(
        user_id=user_id,
        organization_id=_uuid_claim(claims, "organization_id", organization),
        role=role,
        via=via,
        actor=actor,
        claims=claims,
    )


class JwksCache:
    """Signing keys from a JWKS URL, fetched with httpx and refreshed on an unknown ``kid``."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        ttl_seconds: float = 300.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        # The service's own client (its connection pool), not a new one per refresh.
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0

    async def _refresh(self) -> None:
        try:
            if self._http is None:
                self._http = httpx.AsyncClient()
            response = await self._http.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise AuthError("signing keys are unavailable") from exc
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = time.monotonic()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            raise AuthError("token has no key id")
        stale = time.monotonic() - self._fetched_at > self.ttl_seconds
        if stale or kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            raise AuthError("unknown signing key")
        return self._keys[kid]


@dataclass
class TokenVerifier:
    algorithms: frozenset[str]
    audience: str
    secret: str | None = None
    jwks: JwksCache | None = None
    issuer: str | None = None
    leeway_seconds: int = 30
    internal_secret: str | None = None
    cache_size: int = 10_000
    # Seconds since the epoch: every time decision (exp, nbf, the cache's expiry) reads
    # this one clock, so a test can move it instead of sleeping.
    clock: Callable[[], float] = time.time
    # Verified tokens, each kept until it expires (plus the leeway), the least recently
    # used dropped first when full.
    _verified: TLRUCache[str, Identity] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._verified = TLRUCache(maxsize=self.cache_size, ttu=self._expires_at, timer=self.clock)

    def _expires_at(self, _: str, identity: Identity, now: float) -> float:
        expiry = identity.claims.get("exp")
        return float(expiry) + self.leeway_seconds if isinstance(expiry, int | float) else now

    async def verify(self, token: str) -> Identity:
        """Verify ``token``; a token verified before is answered from a bounded cache until
        it expires (the key is the whole token, signature included, so only the very same
        token hits)."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        identity = await self._verify(token)
        self._verified[token] = identity  # a token without exp is not kept (it expires now)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        if unverified.get("iss") == INTERNAL_ISSUER:
            return self._verify_internal(token, header)
        return await self._verify_user(token, header)

    async def _verify_user(self, token: str, header: dict[str, Any]) -> Identity:
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise AuthError(f"algorithm {algorithm!r} is not allowed")
        key: Any
        if algorithm == "HS256":
            if self.secret is None:
                raise AuthError("algorithm 'HS256' is not allowed")
            key = self.secret
        else:
            if self.jwks is None:
                raise AuthError(f"algorithm {algorithm!r} is not allowed")
            jwk = await self.jwks.key_for(header.get("kid"))
            if jwk.algorithm_name not in _ASYMMETRIC or jwk.algorithm_name != algorithm:
                raise AuthError("signing key does not match the token's algorithm")
            key = jwk
        claims = _decode(
            token,
            key,
            algorithm=algorithm,
            audience=self.audience,
            issuer=self.issuer,
        )
        self._check_times(claims)
        return identity_from_claims(claims, "user_token")

    def _verify_internal(self, token: str, header: dict[str, Any]) -> Identity:
        if self.internal_secret is None or header.get("alg") != "HS256":
            raise AuthError("internal tokens are not accepted here")
        claims = _decode(
            token,
            self.internal_secret,
            algorithm="HS256",
            audience=INTERNAL_AUDIENCE,
            issuer=INTERNAL_ISSUER,
        )
        self._check_times(claims)
        return identity_from_claims(claims, "internal_token")

    def _check_times(self, claims: dict[str, Any]) -> None:
        """``exp`` and ``nbf`` against this verifier's clock (PyJWT reads the wall clock,
        which nothing can move), with the leeway on both sides."""
        now = self.clock()
        for claim in ("exp", "nbf"):
            value = claims.get(claim, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthError("malformed token")
            if isinstance(value, float) and not math.isfinite(value):  # NaN would never expire
                raise AuthError("malformed token")
        if claims["exp"] + self.leeway_seconds <= now:
            raise AuthError("token expired")
        if "nbf" in claims and claims["nbf"] - self.leeway_seconds > now:
            raise AuthError("token not yet valid")


def _decode(
    token: str, key: Any, *, algorithm: str, audience: str, issuer: str | None
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            # The times are checked against the verifier's clock (_check_times).
            options={
                "require": ["exp"],
                "verify_iss": issuer is not None,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise AuthError("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("wrong issuer") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"missing claim {exc.claim}") from None
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    return claims


@dataclass(frozen=True)
class InternalTokenIssuer:
    """Mints the short-lived token a service sends when it calls another on a user's behalf.

    A token is reused for the first half of its life: one signature per identity every
    ``ttl_seconds / 2``, not one per call (the orchestrator calls an agent at every step),
    and the receiver always gets one with about half its life left or more."""

    service: str
    secret: str
    ttl_seconds: int = 60
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    _minted: TTLCache[Identity, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        cache = TTLCache[Identity, str](maxsize=4096, ttl=self.ttl_seconds / 2, timer=self.clock)
        object.__setattr__(self, "_minted", cache)

    def mint(self, identity: Identity) -> str:
        token = self._minted.get(identity)
        if token is None:
            issued = int(self.clock())
            claims: dict[str, Any] = {
                **identity.database_claims(),
                "iss": INTERNAL_ISSUER,
                "aud": INTERNAL_AUDIENCE,
                "iat": issued,
                "nbf": issued,
                "exp": issued + self.ttl_seconds,
                "act": {"sub": self.service},
            }
            token = jwt.encode(claims, self.secret, algorithm="HS256")
            self._minted[identity] = token
        return token
