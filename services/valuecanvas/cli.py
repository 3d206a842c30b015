"""``valuecanvas``: the platform's command line.

    valuecanvas serve NAME        run one of the eight services
    valuecanvas migrate           apply pending migrations (make up runs it; in Kubernetes, a PreSync Job)
                                  --login-role: then make DATABASE_URL's user the services' login role
    valuecanvas doctor            check the database the platform uses
    valuecanvas gen-types         regenerate the typed models from the migrated schema
    valuecanvas token             mint a user token signed with JWT_SECRET (local testing)
    valuecanvas seed-demo         a demo organization with an owner; prints the owner's token
    valuecanvas create-admin      the first admin: a user owning an organization; prints their token
    valuecanvas create-api-key    an API key for an organization; prints the key (shown once)

Settings come from the environment, or from ``--env-file`` (the local platform writes one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jwt
from pydantic import Field, PostgresDsn, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from valuecanvas.core.settings import describe_validation_error

DEFAULT_MIGRATIONS = Path("migrations")
SettingsT = TypeVar("SettingsT", bound=BaseSettings)
ResultT = TypeVar("ResultT")


class DatabaseCommandSettings(BaseSettings):
    """What migrate, doctor and gen-types need: the owner's connection, or the app's."""

    model_config = SettingsConfigDict(extra="ignore")

    migration_database_url: PostgresDsn | None = None
    database_url: PostgresDsn | None = None
    migrations_dir: Path = DEFAULT_MIGRATIONS

    def dsn(self) -> str:
        url = self.migration_database_url or self.database_url
        if url is None:
            raise SystemExit("valuecanvas: MIGRATION_DATABASE_URL or DATABASE_URL is not set")
        return str(url)


class TokenSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    jwt_secret: SecretStr
    jwt_audience: str = "authenticated"
    jwt_issuer: str | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)


def _load(cls: type[SettingsT], env_file: str | None, command: str) -> SettingsT:
    try:
        return cls(_env_file=env_file)
    except ValidationError as exc:
        raise SystemExit(describe_validation_error(f"valuecanvas {command}", exc)) from None


def _load_service(name: str, env_file: str | None, port: int | None) -> tuple[Any, Any]:
    from valuecanvas.core.logging import configure_logging, register_secrets
    from valuecanvas.registry import SERVICES

    spec = SERVICES[name]
    try:
        settings = spec.load_settings(env_file)
    except ValidationError as exc:
        print(describe_validation_error(spec.entry.name, exc), file=sys.stderr)
        raise SystemExit(2) from None
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    configure_logging(spec.entry.name, settings.log_level)
    register_secrets(*(secret.get_secret_value() for secret in settings.secret_fields().values()))
    return spec, settings


def worker_app() -> Any:
    """The app for one worker process of ``serve --workers N`` (uvicorn imports this)."""
    spec, settings = _load_service(
        os.environ["VALUECANVAS_SERVICE"],
        os.environ.get("VALUECANVAS_ENV_FILE") or None,
        int(os.environ["VALUECANVAS_PORT"]),
    )
    return spec.create_app(settings)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    spec, settings = _load_service(args.name, args.env_file, args.port)  # fails here, once
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        # X-Forwarded-For/-Proto are believed only from the listed proxies (the ALB's
        # subnets in a cluster); from anyone else, the connection's own address counts.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
        "timeout_graceful_shutdown": 10,
    }
    if args.workers > 1:
        # Each worker builds its own app (own pools and clients); they share the socket.
        os.environ.update(
            VALUECANVAS_SERVICE=args.name,
            VALUECANVAS_ENV_FILE=args.env_file or "",
            VALUECANVAS_PORT=str(settings.port),
        )
        uvicorn.run("valuecanvas.cli:worker_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(spec.create_app(settings), **options)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from valuecanvas.db.migrate import MigrationError, migrate

    settings = _load(DatabaseCommandSettings, args.env_file, "migrate")
    directory = args.dir or settings.migrations_dir
    if args.login_role and (
        settings.migration_database_url is None or settings.database_url is None
    ):
        print("migrate: --login-role needs MIGRATION_DATABASE_URL (the role that migrates) and "
              "DATABASE_URL (the services' login role)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        asyncio.run(migrate(settings.dsn(), directory))
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"migrate: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    if args.login_role:
        return _login_role(settings.dsn(), str(settings.database_url))
    return 0


def _login_role(owner_dsn: str, login_dsn: str) -> int:
    import psycopg

    from valuecanvas.db.login_role import MEMBER_OF, LoginRoleError, ensure_login_role

    try:
        role = ensure_login_role(owner_dsn, login_dsn)
    except LoginRoleError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:  # its message names no password: libpq's, or the server's
        print(f"migrate: the login role could not be made: {exc}", file=sys.stderr)
        return 1
    print(f"login role {role.name}: {'created' if role.created else 'checked, password set'}; "
          f"member of {', '.join(MEMBER_OF)}")  # fmt: skip
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from valuecanvas.db.doctor import report, run_checks

    settings = _load(DatabaseCommandSettings, args.env_file, "doctor")
    directory = args.dir or settings.migrations_dir
    checks = asyncio.run(run_checks(settings.dsn(), directory))
    return 1 if report(settings.dsn(), checks) else 0


def _gen_types(args: argparse.Namespace) -> int:
    from valuecanvas.db import typegen
    from valuecanvas.db.migrate import migrate

    if args.scratch:
        from valuecanvas.localdev.postgres import TemporaryPostgres

        with TemporaryPostgres() as postgres:
            asyncio.run(
                migrate(postgres.dsn(), args.dir or DEFAULT_MIGRATIONS, report=lambda _: None)
            )
            generated = asyncio.run(typegen.generate(postgres.dsn()))
    else:
        settings = _load(DatabaseCommandSettings, args.env_file, "gen-types")
        generated = asyncio.run(typegen.generate(settings.dsn()))
    stale = typegen.stale_files(generated)
    if args.check:
        if stale:
            print(f"gen-types: stale: {', '.join(stale)}; run `make types`", file=sys.stderr)
            return 1
        print("gen-types: generated files are up to date")
        return 0
    typegen.write(generated)
    print(f"gen-types: wrote {', '.join(sorted(generated))} in {typegen.GENERATED_DIR}")
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = _load(TokenSettings, args.env_file, "token")
    print(_mint(settings, args.user, args.organization, args.role))
    return 0


def _mint(
    settings: TokenSettings,
    user: uuid.UUID,
    organization: uuid.UUID | None,
    role: str,
    *,
    email: str | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user),
        "role": role,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
    }
    if organization:
        claims["organization_id"] = str(organization)
    if email:
        claims["email"] = email
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


class DemoSettings(TokenSettings):
    database_url: PostgresDsn


DEMO_EMAIL = "demo@valuecanvas.example"
DEMO_SLUG = "demo"


async def seed_demo(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The demo user and organization (created once; a rerun finds them)."""
    from valuecanvas.api_gateway.bootstrap import first_admin

    return await _with_pool(
        dsn, lambda pool: first_admin(pool, DEMO_EMAIL, "Demo Owner", "Demo Co", DEMO_SLUG)
    )


async def _with_pool(dsn: str, work: Callable[[Any], Awaitable[ResultT]]) -> ResultT:
    from valuecanvas.core.db import create_pool

    pool = await create_pool(dsn, max_size=1, connect_timeout=5)
    try:
        return await work(pool)
    finally:
        await pool.close()


def _database_down(command: str, exc: Exception) -> SystemExit:
    return SystemExit(
        f"valuecanvas {command}: the database does not answer ({type(exc).__name__}); "
        "is the platform up? (make up)"
    )


def _create_admin(args: argparse.Namespace) -> int:
    import asyncpg

    from valuecanvas.api_gateway.bootstrap import first_admin

    settings = _load(DemoSettings, args.env_file, "create-admin")
    try:
        user, organization = asyncio.run(
            _with_pool(
                str(settings.database_url),
                lambda pool: first_admin(pool, args.email, args.name, args.organization, args.slug),
            )
        )
    except (TimeoutError, OSError) as exc:
        raise _database_down("create-admin", exc) from None
    except asyncpg.PostgresError as exc:
        raise SystemExit(f"valuecanvas create-admin: {str(exc).splitlines()[0]}") from None
    print(
        f"create-admin: {args.email} ({user}) owns {args.organization!r} ({organization}); "
        f"their token (valid {settings.token_ttl_seconds} s) follows on stdout",
        file=sys.stderr,
    )
    print(_mint(settings, user, organization, "authenticated", email=args.email))
    return 0


def _create_api_key(args: argparse.Namespace) -> int:
    from valuecanvas.api_gateway.bootstrap import BootstrapError, new_api_key

    settings = _load(DemoSettings, args.env_file, "create-api-key")
    expires = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    )
    try:
        key_id, new = asyncio.run(
            _with_pool(
                str(settings.database_url),
                lambda pool: new_api_key(pool, args.organization, args.name, args.scope, expires),
            )
        )
    except (TimeoutError, OSError) as exc:
        raise _database_down("create-api-key", exc) from None
    except BootstrapError as exc:
        raise SystemExit(f"valuecanvas create-api-key: {exc}") from None
    print(
        f"create-api-key: {new.prefix} ({key_id}) for {args.organization!r}, scopes "
        f"{', '.join(args.scope)}; the key follows on stdout, shown this once",
        file=sys.stderr,
    )
    print(new.key)
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    settings = _load(DemoSettings, args.env_file, "seed-demo")
    try:
        user, organization = asyncio.run(seed_demo(str(settings.database_url)))
    except (TimeoutError, OSError) as exc:
        raise _database_down("seed-demo", exc) from None
    print(
        f"seed-demo: organization 'Demo Co' ({organization}), owner {DEMO_EMAIL} ({user}); "
        f"their token (valid {settings.token_ttl_seconds} s) follows on stdout",
        file=sys.stderr,
    )
    print(_mint(settings, user, organization, "authenticated", email=DEMO_EMAIL))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from valuecanvas.registry import SERVICES

    parser = argparse.ArgumentParser(prog="valuecanvas", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--env-file", help="read settings from this file as well as the environment"
        )
        return sub

    serve = command("serve", "run one of the eight services")
    serve.add_argument("name", choices=sorted(SERVICES))
    serve.add_argument("--port", type=int, help="override the service's port")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port")
    serve.set_defaults(handler=_serve)

    for name, help_text, handler in (
        ("migrate", "apply pending migrations", _migrate),
        ("doctor", "check the database: reachable, migrated, RLS forced, roles present", _doctor),
    ):
        sub = command(name, help_text)
        sub.add_argument("--dir", type=Path, help="the migrations folder (default: migrations)")
        sub.set_defaults(handler=handler)
        if name == "migrate":
            sub.add_argument(
                "--login-role", action="store_true",
                help="then make DATABASE_URL's user the services' login role (created if missing, "
                "its password set, NOINHERIT, a member of the API roles)",
            )  # fmt: skip

    gen = command("gen-types", "regenerate the typed models from the migrated schema")
    gen.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    gen.add_argument("--scratch", action="store_true", help="migrate a throwaway database first")
    gen.add_argument("--dir", type=Path, help="the migrations folder (with --scratch)")
    gen.set_defaults(handler=_gen_types)

    token = command("token", "mint a user token signed with JWT_SECRET (for local testing)")
    token.add_argument("--user", type=uuid.UUID, required=True, help="the user id (sub)")
    token.add_argument("--organization", type=uuid.UUID, help="the organization id claim")
    token.add_argument("--role", default="authenticated", choices=["authenticated", "anon"])
    token.set_defaults(handler=_token)

    demo = command("seed-demo", "create a demo organization and owner; print the owner's token")
    demo.set_defaults(handler=_seed_demo)

    admin = command(
        "create-admin", "the first admin: a user owning an organization; prints their token"
    )
    admin.add_argument("--email", required=True, help="the admin's email (found, or created)")
    admin.add_argument("--name", help="their full name")
    admin.add_argument("--organization", required=True, help="the organization's name")
    admin.add_argument("--slug", required=True, help="its slug (found, or created)")
    admin.set_defaults(handler=_create_admin)

    key = command("create-api-key", "an API key for an organization; prints the key (shown once)")
    key.add_argument("--organization", required=True, help="the organization's slug")
    key.add_argument("--name", required=True, help="what the key is for")
    key.add_argument(
        "--scope", action="append", required=True,
        choices=["value-cases:read", "value-cases:write", "admin"],
        help="a scope (repeat for several)",
    )  # fmt: skip
    key.add_argument("--expires-in-days", type=int, help="no expiry if not given")
    key.set_defaults(handler=_create_api_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
