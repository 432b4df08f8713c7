"""The ``rapport`` command: ``serve``, ``media-node``, ``users add|disable|enable``, ``api-keys`` and
``db upgrade|current``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from .config import Settings, load_settings
from .http.apikeys import SCOPES
from .storage.files import private_dir, restrict_new_files
from .storage.schema import Engine
from .storage.users import ROLES

log = logging.getLogger("rapport")


def _serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "https": True if args.https else None,
        "cert_file": args.cert,
        "key_file": args.key,
        "ice_servers": args.ice_servers,
        "public_url": args.public_url,
        "rtc_ports": args.rtc_ports,
        "public_ip": args.public_ip,
        "create_demo_accounts": True if args.demo else None,
    }


def _announce(settings: Settings) -> None:
    from .tls import lan_address, terminal_qr

    local = f"{settings.scheme}://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0', '::') else settings.host}"
    local += f":{settings.port}"
    lines = [f"Rapport is up. Rep console: {local}/console   Customer page: {local}/call"]
    lan = lan_address() if settings.host in ("0.0.0.0", "::") else None
    join = settings.public_url.rstrip("/") + "/call" if settings.public_url else None
    if join is None and lan:
        join = f"{settings.scheme}://{lan}:{settings.port}/call"
    if join:
        lines.append(f"Customers on this network join at {join}")
        if not settings.https:
            lines.append("Phones only allow the camera over HTTPS: restart with --https for a LAN demo.")
        lines.append(terminal_qr(join))
    log.warning("\n".join(lines))


def serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .http.security import AccessLogger

    settings = load_settings(_serve_overrides(args), config_file=args.config)
    ssl_context = None
    if settings.https:
        from .tls import ssl_context as make_context

        ssl_context, cert = make_context(settings.cert_file, settings.key_file, settings.data_dir)
        log.info("HTTPS with %s", cert)
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        _announce(settings)

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        print=None,
        access_log_class=AccessLogger,  # invite tokens show as a hash prefix
    )
    return 0


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"give HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def media_node(args: argparse.Namespace) -> int:
    """``rapport media-node``: carry calls' media for the cluster's front doors (docs/scaling.md)."""
    import signal

    from .media.node import NodeConfigError, run_node
    from .media.pool import default_capacity

    overrides = {
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "cluster_secret": args.cluster_secret,
        "node_id": args.node_id,
        "data_dir": args.data_dir,
        "rtc_ports": args.rtc_ports,
        "public_ip": args.public_ip,
    }
    settings = load_settings(overrides, config_file=args.config)
    host, port = args.listen
    capacity = args.capacity if args.capacity is not None else default_capacity(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_node(
            settings,
            host=host,
            port=port,
            capacity=capacity,
            advertise=args.advertise,
            detector=args.emotion_detector,
            detector_mode=args.emotion_mode,
            stop=stop,
        )

    try:
        asyncio.run(run())
    except NodeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


@contextlib.asynccontextmanager
async def migrated_engine(settings: Settings) -> AsyncIterator[Engine]:
    """The database, brought up to date, for one command."""
    from .storage.migrations import migrate
    from .storage.schema import create_engine

    private_dir(settings.data_dir)
    engine = create_engine(settings.db_url)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


def users_add(args: argparse.Namespace) -> int:
    from .http.auth import hash_password
    from .storage.store import Store

    settings = load_settings({"data_dir": args.data_dir}, config_file=args.config)
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("error: give a password of at least 8 characters on stdin", file=sys.stderr)
        return 2

    async def add() -> None:
        async with migrated_engine(settings) as engine:
            store = Store(engine)
            existing = await store.user_with_hash(args.name)
            if existing is not None:
                ended = await store.set_password(existing[0].id, hash_password(password))
                print(f"updated password of {args.name}; ended {ended} login(s) made with the old one")
            else:
                await store.create_user(args.name, args.display_name or args.name, args.role, hash_password(password))
                print(f"added {args.role} {args.name}")

    asyncio.run(add())
    return 0


def users_set_active(args: argparse.Namespace) -> int:
    """``users disable``: the user can no longer log in, and every login they hold ends (sockets within
    ``login_recheck_s``). ``users enable`` lets them log in again."""
    from .storage.store import Store

    settings = load_settings({"data_dir": args.data_dir}, config_file=args.config)
    active = args.users_command == "enable"

    async def run() -> int:
        async with migrated_engine(settings) as engine:
            store = Store(engine)
            found = await store.user_with_hash(args.name)
            if found is None:
                print(f"error: no user {args.name}", file=sys.stderr)
                return 1
            ended = await store.set_active(found[0].id, active)
            if active:
                print(f"enabled {args.name}")
            else:
                print(f"disabled {args.name}; ended {ended} login(s)")
            return 0

    return asyncio.run(run())


def api_keys(args: argparse.Namespace) -> int:
    from .http.apikeys import parse_scopes
    from .storage.api_keys import ApiKeyStore

    settings = load_settings({"data_dir": args.data_dir}, config_file=args.config)
    if args.keys_command == "create":
        try:
            scopes = parse_scopes(args.scopes)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    async def run() -> int:
        async with migrated_engine(settings) as engine:
            keys = ApiKeyStore(engine)
            if args.keys_command == "create":
                key, secret = await keys.create(args.name, scopes)
                print(f"created API key {key.id} ({key.name}, scopes {','.join(key.scopes)})")
                print("the key, shown once; keep it secret:", file=sys.stderr)
                print(secret)
            elif args.keys_command == "revoke":
                if not await keys.revoke(args.id):
                    print(f"error: no live API key {args.id}", file=sys.stderr)
                    return 1
                print(f"revoked API key {args.id}")
            else:
                for key in await keys.list():
                    state = "revoked" if key.revoked_at else "live"
                    print(f"{key.id}\t{key.prefix}…\t{key.name}\t{','.join(key.scopes)}\t{state}")
            return 0

    return asyncio.run(run())


def db(args: argparse.Namespace) -> int:
    """``db upgrade`` applies every revision the database lacks (the server does this at start too);
    ``db current`` prints the database's revision without changing anything."""
    from .storage import migrations
    from .storage.schema import create_engine

    settings = load_settings({"data_dir": args.data_dir}, config_file=args.config)

    async def run() -> int:
        private_dir(settings.data_dir)
        engine = create_engine(settings.db_url)
        try:
            head = migrations.head()
            if args.db_command == "upgrade":
                try:
                    await migrations.migrate(engine)
                except migrations.SchemaError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                print(f"database at revision {await migrations.current(engine)} (head)")
                return 0
            revision = await migrations.current(engine)
            if revision is not None:
                print(
                    f"{revision} (head)" if revision == head else f"{revision} (head is {head}: run rapport db upgrade)"
                )
            else:
                step = await migrations.legacy_step(engine)
                print("none" if step is None else f"none (pre-Alembic schema step {step})")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rapport", description="Two-way video customer support server")
    parser.add_argument("--config", type=Path, help="TOML settings file (also RAPPORT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve_p = sub.add_parser("serve", help="run the server")
    serve_p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 for phones on the LAN)")
    serve_p.add_argument("--port", type=int)
    serve_p.add_argument("--data-dir", type=Path, help="database, recordings and certificates (default ./data)")
    serve_p.add_argument("--https", action="store_true", help="serve HTTPS (self-signed unless --cert/--key)")
    serve_p.add_argument("--cert", type=Path, help="PEM certificate for --https")
    serve_p.add_argument("--key", type=Path, help="PEM private key for --https")
    serve_p.add_argument(
        "--ice-servers", help='STUN/TURN for browsers and server: "stun:host:3478,turn:..." or a JSON list'
    )
    serve_p.add_argument("--public-url", help="the URL customers use, for invite links and the QR code")
    serve_p.add_argument("--rtc-ports", help='UDP ports for media, e.g. "50000-50100" (docs/networking.md)')
    serve_p.add_argument("--public-ip", help="the address peers reach this server on (cloud 1:1 NAT)")
    serve_p.add_argument(
        "--demo", action="store_true", help="on an empty database, make demo staff accounts and print them once"
    )
    serve_p.set_defaults(func=serve)

    node_p = sub.add_parser("media-node", help="run a media node for a cluster's front doors (docs/scaling.md)")
    node_p.add_argument("--listen", type=_listen_address, required=True, help="HOST:PORT the front doors dial")
    node_p.add_argument("--advertise", help="the address front doors dial and peers reach, if not the listen one")
    node_p.add_argument("--database-url", help="the cluster's database (recordings' and cue timelines' rows)")
    node_p.add_argument("--redis-url", help="the cluster's Redis, where the node announces itself")
    node_p.add_argument("--cluster-secret", help="the shared secret front doors authenticate with (required)")
    node_p.add_argument("--capacity", type=int, help="calls this node carries (default: the per-core model)")
    node_p.add_argument("--node-id", help="this node's name in the cluster (default HOST:PORT)")
    node_p.add_argument("--rtc-ports", help='UDP ports for media, e.g. "50000-50100" (docs/networking.md)')
    node_p.add_argument("--public-ip", help="the address peers reach this node on (cloud 1:1 NAT)")
    node_p.add_argument("--data-dir", type=Path, help="data folder (default ./data)")
    node_p.add_argument("--emotion-detector", help="MODULE:FACTORY of the emotion detector (default: fer)")
    node_p.add_argument("--emotion-mode", choices=("process", "thread"), default="process", help=argparse.SUPPRESS)
    node_p.set_defaults(func=media_node)

    users_p = sub.add_parser("users", help="manage staff accounts")
    users_sub = users_p.add_subparsers(dest="users_command", required=True)
    add_p = users_sub.add_parser("add", help="add a user (password on stdin); resets it if the user exists")
    add_p.add_argument("name")
    add_p.add_argument("--role", required=True, choices=ROLES)
    add_p.add_argument("--display-name")
    add_p.add_argument("--data-dir", type=Path)
    add_p.set_defaults(func=users_add)
    for command, text in (
        ("disable", "disable a user and end their logins and sockets"),
        ("enable", "let a disabled user log in again"),
    ):
        p = users_sub.add_parser(command, help=text)
        p.add_argument("name")
        p.add_argument("--data-dir", type=Path)
        p.set_defaults(func=users_set_active)

    keys_p = sub.add_parser("api-keys", help="API keys for other systems")
    keys_sub = keys_p.add_subparsers(dest="keys_command", required=True)
    create_p = keys_sub.add_parser("create", help="create a key and print it once")
    create_p.add_argument("--name", required=True)
    create_p.add_argument("--scopes", required=True, help="comma-separated, from: " + ", ".join(SCOPES))
    revoke_p = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke_p.add_argument("id", type=int)
    keys_sub.add_parser("list", help="list keys (never the secrets)")
    for p in (create_p, revoke_p, keys_sub.choices["list"]):
        p.add_argument("--data-dir", type=Path)
        p.set_defaults(func=api_keys)

    db_p = sub.add_parser("db", help="the database schema (Alembic)")
    db_sub = db_p.add_subparsers(dest="db_command", required=True)
    for command, text in (
        ("upgrade", "apply every schema revision the database lacks"),
        ("current", "print the database's schema revision"),
    ):
        p = db_sub.add_parser(command, help=text)
        p.add_argument("--data-dir", type=Path)
        p.set_defaults(func=db)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Before any file exists: the database and its -wal/-shm, keys and recordings are the owner's only.
    restrict_new_files()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aioice/aiortc are chatty at INFO about every candidate pair; alembic about its plugins (we log the revision).
    for noisy in ("aioice", "aiortc", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
