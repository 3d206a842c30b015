"""Token verification: user JWTs (HS256, and RS256/ES256 from a JWKS served over real HTTP)
and internal tokens. Every bad token is refused with a reason."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.tokens import JWT_SECRET, user_claims
from valuecanvas.core.identity import (
    INTERNAL_AUDIENCE,
    INTERNAL_ISSUER,
    AuthError,
    Identity,
    InternalTokenIssuer,
    JwksCache,
    TokenVerifier,
)

INTERNAL_SECRET = "internal-token-secret-for-tests-9876543210"
USER, ORG = uuid.uuid4(), uuid.uuid4()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**overrides: Any) -> dict[str, Any]:
    """A Supabase token's claims: the organization in app_metadata, an iat."""
    return user_claims(
        USER, iat=int(time.time()), app_metadata={"organization_id": str(ORG)}, **overrides
    )


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), JWT_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    body = json.dumps(
        {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
                {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"},
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def verifier(jwks_url: str | None = None, **overrides: Any) -> TokenVerifier:
    options: dict[str, Any] = {
        "algorithms": frozenset({"HS256", "RS256", "ES256"}),
        "audience": "authenticated",
        "secret": JWT_SECRET,
        "jwks": JwksCache(jwks_url) if jwks_url else None,
        "leeway_seconds": 30,
        "internal_secret": INTERNAL_SECRET,
    }
    options.update(overrides)
    return TokenVerifier(**options)


async def refused(token: str, v: TokenVerifier | None = None) -> str:
    with pytest.raises(AuthError) as error:
        await (v or verifier()).verify(token)
    return error.value.reason


async def test_a_valid_hs256_token_gives_the_typed_identity() -> None:
    identity = await verifier().verify(hs256())

    assert identity == Identity(
        user_id=USER, organization_id=ORG, role="authenticated", via="user_token"
    )
    assert identity.database_claims() == {
        "role": "authenticated",
        "sub": str(USER),
        "organization_id": str(ORG),
    }


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        ({"exp": -120}, "token expired"),
        ({"nbf": 120}, "token not yet valid"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": None}, "missing claim exp"),
        ({"exp": "2030-01-01"}, "malformed token"),
        ({"exp": True}, "malformed token"),
        ({"exp": float("nan")}, "malformed token"),
        ({"exp": float("inf")}, "malformed token"),
        ({"nbf": "soon"}, "malformed token"),
        ({"sub": None}, "missing claim sub"),
        ({"sub": "not-a-uuid"}, "claim sub is not a UUID"),
        ({"role": "postgres"}, "role 'postgres' is not allowed"),
        ({"organization_id": "acme"}, "claim organization_id is not a UUID"),
    ],
)
async def test_bad_claims_are_refused(token_claims: dict[str, Any], reason: str) -> None:
    # Times are offsets from now, resolved when the test runs (not when it is collected).
    now = int(time.time())
    resolved = {
        key: now + value if key in ("exp", "nbf") and type(value) is int else value
        for key, value in token_claims.items()
    }
    assert await refused(hs256(**resolved)) == reason


async def test_a_small_clock_skew_is_tolerated() -> None:
    identity = await verifier().verify(hs256(exp=int(time.time()) - 10, nbf=int(time.time()) + 10))

    assert identity.user_id == USER


async def test_the_issuer_is_checked_when_configured() -> None:
    v = verifier(issuer="https://project.supabase.co/auth/v1")

    assert await refused(hs256(iss="https://evil.example"), v) == "wrong issuer"
    assert (await v.verify(hs256(iss="https://project.supabase.co/auth/v1"))).user_id == USER


async def test_a_token_signed_with_another_key_is_refused() -> None:
    token = jwt.encode(claims(), "some-other-secret-that-is-long-enough", algorithm="HS256")

    assert await refused(token) == "bad signature"


async def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), key=None, algorithm="none")

    assert await refused(token) == "algorithm 'none' is not allowed"


async def test_an_algorithm_off_the_allow_list_is_refused() -> None:
    token = jwt.encode(claims(), JWT_SECRET * 2, algorithm="HS512")

    assert await refused(token) == "algorithm 'HS512' is not allowed"
    assert await refused(hs256(), verifier(algorithms=frozenset({"RS256"}))) == (
        "algorithm 'HS256' is not allowed"
    )


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", "Bearer x"])
async def test_malformed_tokens_are_refused(token: str) -> None:
    assert await refused(token) == "malformed token"


@pytest.mark.parametrize(
    ("key", "algorithm", "kid"), [(RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1")]
)
async def test_asymmetric_tokens_verify_against_the_jwks(
    jwks_url: str, key: Any, algorithm: str, kid: str
) -> None:
    token = jwt.encode(claims(), key, algorithm=algorithm, headers={"kid": kid})

    identity = await verifier(jwks_url, secret=None).verify(token)

    assert (identity.user_id, identity.organization_id) == (USER, ORG)


async def test_asymmetric_tokens_with_a_foreign_key_or_kid_are_refused(jwks_url: str) -> None:
    v = verifier(jwks_url, secret=None)
    forged = jwt.encode(claims(), OTHER_RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    unknown = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-9"})
    mismatched = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "ec-1"})

    assert await refused(forged, v) == "bad signature"
    assert await refused(unknown, v) == "unknown signing key"
    assert await refused(mismatched, v) == "signing key does not match the token's algorithm"


async def test_the_public_key_cannot_be_used_as_an_hmac_secret(jwks_url: str) -> None:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = _hmac_with_bytes(public_pem)

    assert (
        await refused(token, verifier(jwks_url, secret=None)) == "algorithm 'HS256' is not allowed"
    )


def _hmac_with_bytes(secret: bytes) -> str:
    """HS256 signed with arbitrary bytes (PyJWT refuses PEM keys as HMAC secrets itself)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims()).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_an_unreachable_jwks_refuses_instead_of_accepting() -> None:
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    v = verifier("http://127.0.0.1:9/jwks.json", secret=None)

    assert await refused(token, v) == "signing keys are unavailable"


async def test_internal_tokens_carry_the_same_identity_and_the_calling_service() -> None:
    user = await verifier().verify(hs256())
    token = InternalTokenIssuer(service="orchestrator", secret=INTERNAL_SECRET).mint(user)

    relayed = await verifier().verify(token)

    assert (relayed.user_id, relayed.organization_id, relayed.role) == (USER, ORG, "authenticated")
    assert (relayed.via, relayed.actor) == ("internal_token", "orchestrator")
    # Postgres sees the issuer and actor only from a verified internal token: the agents'
    # agent_audit_log policy reads them. A user token's own act claim is not passed on.
    assert relayed.database_claims() == {
        "role": "authenticated", "sub": str(USER), "organization_id": str(ORG),
        "iss": INTERNAL_ISSUER, "act": {"sub": "orchestrator"}}  # fmt: skip
    claiming = await verifier().verify(hs256(act={"sub": "integrity"}))
    assert claiming.actor == "integrity"
    assert "act" not in claiming.database_claims()
    assert "iss" not in claiming.database_claims()


async def test_an_internal_token_is_reused_for_half_its_life_and_only_for_its_identity() -> None:
    now = [1_800_000_000.0]
    issuer = InternalTokenIssuer("orchestrator", INTERNAL_SECRET, clock=lambda: now[0])
    user = await verifier().verify(hs256())
    other = await verifier().verify(hs256(organization_id=str(uuid.uuid4())))
    first = issuer.mint(user)
    now[0] += 29
    assert issuer.mint(user) == first
    assert issuer.mint(other) != first
    now[0] += 2  # past half its life: a new one, with a whole life
    renewed = jwt.decode(issuer.mint(user), options={"verify_signature": False})
    assert renewed["iat"] == 1_800_000_031
    assert renewed["exp"] - renewed["iat"] == 60


async def test_internal_tokens_are_short_lived_and_need_the_internal_key() -> None:
    user = await verifier().verify(hs256())
    expired = jwt.encode(
        {
            **user.database_claims(),
            "iss": INTERNAL_ISSUER,
            "aud": INTERNAL_AUDIENCE,
            "exp": int(time.time()) - 120,
        },
        INTERNAL_SECRET,
        algorithm="HS256",
    )
    # Someone holding only the user-token secret cannot forge an internal token.
    forged = InternalTokenIssuer(service="orchestrator", secret=JWT_SECRET).mint(user)
    minted = InternalTokenIssuer(
        service="orchestrator", secret=INTERNAL_SECRET, ttl_seconds=60
    ).mint(user)

    assert await refused(expired) == "token expired"
    assert await refused(forged) == "bad signature"
    assert (
        await refused(minted, verifier(internal_secret=None))
        == "internal tokens are not accepted here"
    )
    decoded = jwt.decode(minted, options={"verify_signature": False})
    assert decoded["exp"] - decoded["iat"] == 60


async def test_a_user_token_is_not_accepted_with_the_internal_audience() -> None:
    token = hs256(aud=INTERNAL_AUDIENCE)

    assert await refused(token) == "wrong audience"


async def test_a_cached_token_is_refused_once_it_expires() -> None:
    now = [time.time()]
    v = verifier(leeway_seconds=5, clock=lambda: now[0])
    token = hs256(exp=int(now[0]) + 60)

    assert (await v.verify(token)).user_id == USER  # verified, and now cached
    now[0] += 64
    assert (await v.verify(token)).user_id == USER  # within the leeway
    now[0] += 2

    assert await refused(token, v) == "token expired"


async def test_the_cache_holds_only_tokens_that_verified() -> None:
    v = verifier()
    forged = jwt.encode(claims(), "some-other-secret-that-is-long-enough", algorithm="HS256")

    for _ in range(2):
        assert await refused(forged, v) == "bad signature"
