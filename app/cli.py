"""`aigw`: serve the gateway, migrate its database, and bootstrap tokens and gateways.

Every command reads `AIGW_*` settings (AIGW_DATABASE_URL above all) and applies pending migrations
first, so a fresh install needs no preparation: `aigw tokens create --account A --permission edit`
prints a token the management API accepts. The commands reuse the API's own queries (app.db.tokens,
app.db.gateways), so both paths validate and store identically, and with AIGW_REDIS_URL set they
announce their changes to running servers the same way (app/services/invalidation.py).

Every command says on stderr which database it uses (a relative SQLite path follows the current
directory); the read-only ones (`tokens list`, `gateways list`) refuse rather than create a
SQLite file that does not exist. stdout carries only results (a token's value, JSON lines).

Exit status: 0 done, 1 refused (already exists, not found, no database), 2 invalid arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.settings import Settings
from app.db import gateways, tokens
from app.db.location import describe, missing_sqlite_file
from app.db.migrate import upgrade
from app.db.session import create_engine, session_factory
from app.services.invalidation import Change, announce

T = TypeVar("T")
APP_FACTORY = "app.main:create_app_from_env"


class Refused(Exception):
    """A command that could not be done as asked (exit status 1)."""


def _account(value: str) -> str:
    if not 1 <= len(value) <= 64:
        raise argparse.ArgumentTypeError("account ids are 1 to 64 characters")
    return value


def _print(model: BaseModel) -> None:
    print(json.dumps(model.model_dump(mode="json")))


def _say(message: str) -> None:
    print(f"aigw: {message}", file=sys.stderr, flush=True)


def _open_database(settings: Settings, *, read_only: bool = False) -> None:
    """Say which database this command uses, and migrate it. A read-only command never creates a
    SQLite file: an empty new database would only answer "nothing here", silently."""
    _say(f"database {describe(settings.database_url)}")
    missing = missing_sqlite_file(settings.database_url) if read_only else None
    if missing is not None:
        raise Refused(
            f"no database at {missing}; run this from the directory the server runs in, or set "
            "AIGW_DATABASE_URL to the server's database (e.g. sqlite:////absolute/path/aigw.db)"
        )
    upgrade(settings.database_url)


def _with_session(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
    changes: Callable[[T], list[Change]] | None = None,
    *,
    may_create: bool | None = None,
) -> T:
    """Run `work` in a session; then tell running servers what it changed (`changes` of its result),
    so their cached copies are evicted at once rather than when their TTL ends. A command that only
    reads (no `changes`) or could not succeed on a new database (`may_create=False`) never creates
    one."""
    _open_database(settings, read_only=not (changes is not None if may_create is None else may_create))

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
        finally:
            await engine.dispose()
        if changes is not None:
            await announce(settings.redis_url, changes(result))
        return result

    return asyncio.run(run())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn  # only `serve` needs it

    from app.server.protocol import protocol_class

    if args.workers > 1 and not settings.redis_url:
        # Each worker would keep its own cache, rate-limit and spend counters: limits would admit N
        # times the configured rate or budget, and a response cached by one worker would miss in others.
        sys.exit(
            "aigw serve: --workers > 1 needs shared state: set AIGW_REDIS_URL (cache, rate limits, "
            "spend limits). Run one worker, or several replicas sharing Redis and PostgreSQL."
        )
    from app.startup import report

    _say("migrating the database…")
    _open_database(settings)
    for line in report(settings, args.host, args.port, tls=bool(args.ssl_certfile)):
        print(line, file=sys.stderr, flush=True)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "factory": True,
        # A per-request access line costs CPU on the hot path; the request log is the record.
        "access_log": args.access_log,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_interval_s,
        "ws_max_size": settings.ws_max_frame_bytes,
        # Compressing small JSON frames costs more CPU than the bytes it saves on a LAN or loopback.
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "timeout_keep_alive": 30,
        # uvicorn's own httptools protocol times out neither a request head nor a body that stops
        # arriving, and bounds no head size: ours does (app/server/protocol.py).
        "http": protocol_class(settings.client_read_timeout_s, settings.max_request_head_bytes),
    }
    if args.workers > 1:
        options["workers"] = args.workers
    if args.ssl_certfile:
        options.update(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    from app.server.graceful import run

    run(uvicorn.Config(APP_FACTORY, **options))


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    _open_database(settings)
    _say("database schema is up to date")


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> None:
    data = tokens.TokenCreate.model_validate(
        {
            "name": args.name,
            "permissions": args.permission or ["run"],
            "gateways": args.gateway or ["*"],
            "expires_on": args.expires_on,
        }
    )
    created = _with_session(
        settings,
        lambda s: tokens.create_token(s, args.account, data),
        lambda created: [Change("token", args.account, created.id)],
    )
    print(f"token id: {created.id}", file=sys.stderr)
    print(created.value)  # the only time the value is ever shown


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> list[tokens.TokenPublic]:
        rows, _total = await tokens.list_tokens(session, args.account, per_page=1_000_000)
        return [tokens.TokenPublic.model_validate(row) for row in rows]

    for token in _with_session(settings, work):
        _print(token)


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> tokens.TokenPublic:
        row = await tokens.get_token(session, args.account, args.id)
        if row is None:
            raise Refused(f"token {args.id!r} not found in account {args.account!r}")
        return tokens.TokenPublic.model_validate(await tokens.revoke_token(session, row))

    changes = lambda token: [Change("token", args.account, token.id)]  # noqa: E731
    _print(_with_session(settings, work, changes, may_create=False))  # nothing to revoke in a new one


def cmd_gateways_create(settings: Settings, args: argparse.Namespace) -> None:
    fields: dict[str, Any] = {"id": args.id, "authentication": args.authentication}
    fields["collect_logs"] = not args.no_collect_logs
    optional = {
        "cache_ttl": args.cache_ttl,
        "rate_limiting_limit": args.rate_limit,
        "rate_limiting_interval": args.rate_limit_interval,
        "rate_limiting_technique": args.rate_limit_technique,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})
    data = gateways.GatewayCreate.model_validate(fields)

    async def work(session: AsyncSession) -> gateways.GatewayPublic:
        try:
            row = await gateways.create_gateway(session, args.account, data)
        except gateways.GatewayExists as exc:
            raise Refused(f"gateway {args.id!r} already exists in account {args.account!r}") from exc
        return gateways.GatewayPublic.model_validate(row)

    _print(_with_session(settings, work, lambda gateway: [Change("gateway", args.account, gateway.id)]))


def cmd_gateways_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> list[gateways.GatewayPublic]:
        rows, _total = await gateways.list_gateways(session, args.account, per_page=1_000_000)
        return [gateways.GatewayPublic.model_validate(row) for row in rows]

    for gateway in _with_session(settings, work):
        _print(gateway)


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser("serve", help="apply migrations, then run the gateway with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--ssl-certfile")
    serve.add_argument("--ssl-keyfile")
    serve.add_argument("--access-log", action="store_true", help="print one line per HTTP request")
    serve.set_defaults(handler=cmd_serve)
    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)


def _add_tokens(commands: Any) -> None:
    group = commands.add_parser("tokens", help="mint, list and revoke tokens").add_subparsers(
        dest="action", required=True
    )
    create = group.add_parser("create", help="mint a token and print its value (shown once)")
    create.add_argument("--account", required=True, type=_account)
    create.add_argument("--name", default="")
    create.add_argument(
        "--permission", action="append", choices=tokens.PERMISSIONS, help="repeatable; default run"
    )
    create.add_argument("--gateway", action="append", help="repeatable; default every gateway (*)")
    create.add_argument("--expires-on", help="ISO 8601 date-time; default never")
    create.set_defaults(handler=cmd_tokens_create)
    listing = group.add_parser("list", help="list an account's tokens (never their values)")
    listing.add_argument("--account", required=True, type=_account)
    listing.set_defaults(handler=cmd_tokens_list)
    revoke = group.add_parser("revoke", help="revoke a token")
    revoke.add_argument("--account", required=True, type=_account)
    revoke.add_argument("--id", required=True)
    revoke.set_defaults(handler=cmd_tokens_revoke)


def _add_gateways(commands: Any) -> None:
    group = commands.add_parser("gateways", help="create and list gateways").add_subparsers(
        dest="action", required=True
    )
    create = group.add_parser("create", help="create a gateway")
    create.add_argument("--account", required=True, type=_account)
    create.add_argument("--id", required=True)
    create.add_argument("--authentication", action="store_true", help="require a run token")
    create.add_argument("--cache-ttl", type=int, metavar="SECONDS")
    create.add_argument("--no-collect-logs", action="store_true")
    create.add_argument("--rate-limit", type=int, metavar="N", help="requests per interval")
    create.add_argument("--rate-limit-interval", type=int, metavar="SECONDS")
    create.add_argument("--rate-limit-technique", choices=("fixed", "sliding"))
    create.set_defaults(handler=cmd_gateways_create)
    listing = group.add_parser("list", help="list an account's gateways")
    listing.add_argument("--account", required=True, type=_account)
    listing.set_defaults(handler=cmd_gateways_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigw", description="A self-hosted AI gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    _add_tokens(commands)
    _add_gateways(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(getattr(args, "ssl_certfile", None)) != bool(getattr(args, "ssl_keyfile", None)):
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    try:
        args.handler(Settings(), args)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "input"
            print(f"aigw: invalid {field}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except Refused as exc:
        print(f"aigw: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
