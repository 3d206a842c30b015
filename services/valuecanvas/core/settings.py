"""Settings shared by every service, read from the environment and validated at start.

Each service subclasses :class:`ServiceSettings`; the environment names are the spec's
(DATABASE_URL, REDIS_URL, JWT_SECRET, ...). A bad or missing value stops the service with
one line naming the variable (see :func:`describe_validation_error`); the value itself is
never echoed, because it may be a secret.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    ModelWrapValidatorHandler,
    PostgresDsn,
    RedisDsn,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from valuecanvas.catalogue import catalogue


class Environment(StrEnum):
    LOCAL = "local"
    SANDBOX = "sandbox"
    STAGING = "staging"
    PRODUCTION = "production"


_NO_JWT_VERIFIER = "JWT_SECRET or JWT_JWKS_URL must be set"
SUPPORTED_JWT_ALGORITHMS = frozenset({"HS256", "RS256", "ES256"})

# Values copied from an example file rather than generated: refused outside local mode.
_PLACEHOLDER = re.compile(r"(your[_-]|change[_-]?me|placeholder|example|dummy|^x+$|^secret$)", re.I)
MIN_SECRET_LENGTH = 32


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value))


class ServiceSettings(BaseSettings):
    """What every service reads. Field ``foo_bar`` is the environment variable ``FOO_BAR``."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    # Set by each subclass, not by the environment.
    service_name: str = Field(default="service", exclude=True)

    environment: Environment = Environment.LOCAL
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535, description="each service's default is its catalogue port")
    # Addresses or networks whose X-Forwarded-For/-Proto are believed (the load balancer's);
    # empty: none, the connection's own address is the client's.
    trusted_proxies: list[str] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_enabled: bool = True

    database_url: PostgresDsn
    database_pool_max_size: int = Field(default=10, ge=1, le=200)
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    redis_url: RedisDsn | None = None
    redis_pool_max_size: int = Field(default=200, ge=1, le=10_000)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    # Supabase-compatible user tokens: HS256 with JWT_SECRET and/or RS256/ES256 from JWKS.
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: AnyHttpUrl | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_audience: str = "authenticated"
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)

    # Short-lived tokens one service mints for calls it makes on a user's behalf.
    internal_token_secret: SecretStr
    internal_token_ttl_seconds: int = Field(default=60, ge=5, le=900)

    # Where the other services are (service_url): a base URL made from each one's catalogue
    # entry ({name}, {port}): 127.0.0.1 on one machine, the Kubernetes Service in a cluster.
    service_url_template: str = "http://127.0.0.1:{port}"
    service_urls: dict[str, AnyHttpUrl] = Field(
        default_factory=dict, description="a service's base URL, overriding the template"
    )

    def service_url(self, service: str) -> str:
        if service in self.service_urls:
            return str(self.service_urls[service]).rstrip("/")
        entry = catalogue()[service]
        return self.service_url_template.format(name=entry.name, port=entry.port)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - SUPPORTED_JWT_ALGORITHMS)
        if unknown:
            raise ValueError(
                f"unsupported algorithm(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(SUPPORTED_JWT_ALGORITHMS))}"
            )
        if not value:
            raise ValueError("at least one algorithm is required")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _report_every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """When fields are bad, the token check below never runs: add its finding, so that
        one start names every missing variable (JWT_SECRET too), not just the first few."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if (
                not isinstance(data, dict)
                or data.get("jwt_secret")
                or data.get("jwt_jwks_url")
                or any(_NO_JWT_VERIFIER in error["msg"] for error in errors)
            ):
                raise
            details: list[InitErrorDetails] = [
                {
                    "type": error["type"]
                    if error["type"] == "missing"
                    else PydanticCustomError(error["type"], error["msg"].replace("{", "(")),
                    "loc": error["loc"],
                    "input": error.get("input"),
                }
                for error in errors
            ]
            details.append(
                {
                    "type": PydanticCustomError("jwt_verifier_missing", _NO_JWT_VERIFIER),
                    "loc": (),
                    "input": None,
                }
            )
            raise ValidationError.from_exception_data(exc.title, details) from None

    @model_validator(mode="after")
    def _check_secrets(self) -> ServiceSettings:
        if self.jwt_secret is None and self.jwt_jwks_url is None:
            raise ValueError(_NO_JWT_VERIFIER)
        if self.jwt_secret is not None and self.jwt_secret == self.internal_token_secret:
            raise ValueError("INTERNAL_TOKEN_SECRET must differ from JWT_SECRET")
        if self.environment is not Environment.LOCAL:
            for name, secret in self.secret_fields().items():
                value = secret.get_secret_value()
                if is_placeholder(value) or len(value) < MIN_SECRET_LENGTH:
                    raise ValueError(
                        f"{name.upper()} looks like a placeholder or is shorter than "
                        f"{MIN_SECRET_LENGTH} characters; generate a real secret"
                    )
        return self

    def secret_fields(self) -> dict[str, SecretStr]:
        """The secrets that are set, by field name (for placeholder checks and redaction)."""
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }


def describe_validation_error(service: str, error: ValidationError) -> str:
    """One line naming every bad variable, without echoing any value."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        variable = "_".join(str(part) for part in item["loc"] if isinstance(part, str)).upper()
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is not set"
        problems.append(f"{variable} {message}" if variable else message)
    return f"{service}: invalid configuration: " + "; ".join(problems)


class AgentSettings(ServiceSettings):
    """What the five agents share: the LLM they ask (through the llm-proxy only)."""

    agent_llm_model: str = Field(
        default="valuecanvas-default", pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="the llm-proxy's logical model",
    )  # fmt: skip
    agent_llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
