"""Webhook signing, shared by the gateway (which shows a webhook's secret once, when it is
registered) and the orchestrator (which signs every delivery).

A secret is derived from ``INTERNAL_TOKEN_SECRET`` and the webhook's id, so it is stored
nowhere. A delivery carries ``ValueCanvas-Timestamp`` (Unix seconds) and
``ValueCanvas-Signature: v1=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` under the
secret. A receiver recomputes it and refuses a timestamp older than its tolerance
(:func:`verify`; five minutes by default), which stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from uuid import UUID

TIMESTAMP_HEADER = "ValueCanvas-Timestamp"
SIGNATURE_HEADER = "ValueCanvas-Signature"


def signing_secret(internal_token_secret: str, webhook: UUID) -> str:
    """The webhook's signing secret: the same wherever the platform's secret is known."""
    key = hmac.new(internal_token_secret.encode(), b"valuecanvas webhook signing", hashlib.sha256)
    return "whsec_" + hmac.new(key.digest(), str(webhook).encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:  # fmt: skip
    """What a receiver does: the signature matches and the timestamp is recent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))
