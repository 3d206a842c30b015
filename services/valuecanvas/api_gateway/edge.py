"""What the gateway adds at the edge: CORS from the environment's allow-list, and security
headers on every answer.

- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere.
- ``Content-Security-Policy``: nothing at all may load from an API answer; the docs pages
  (Swagger UI, ReDoc, served from the package's own assets) may load their own scripts,
  styles and images and nothing from elsewhere. Their one inline bootstrap script needs
  'unsafe-inline' for scripts on those two pages only.
- ``Strict-Transport-Security`` only where TLS ends in front of the gateway
  (GATEWAY_HSTS_SECONDS > 0: the ALB in staging and production).
- ``Cache-Control: no-store`` on the API's answers unless the route set its own (they
  carry keys and personal data).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
CORS_ALLOWED_HEADERS = ["authorization", "content-type", "x-api-key", "x-request-id"]
CORS_EXPOSED_HEADERS = ["x-request-id", "ratelimit", "ratelimit-policy", "retry-after", "location"]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self.hsts = (
            f"max-age={hsts_seconds}; includeSubDomains".encode() if hsts_seconds > 0 else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope["path"] in DOCS_PATHS else API_CSP).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", csp),
                    (b"x-frame-options", b"DENY"),
                ]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                if self.hsts is not None:
                    headers.append((b"strict-transport-security", self.hsts))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def edge_middleware(cors_origins: list[str], hsts_seconds: int) -> list[Middleware]:
    """Inner first: CORS answers preflights before the pipeline asks for credentials, and
    the security headers go on everything, CORS refusals included."""
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_credentials=True,  # only ever for the listed origins: no wildcard
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        ),
        Middleware(SecurityHeadersMiddleware, hsts_seconds=hsts_seconds),
    ]
