"""The application factory. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from aiohttp import web

from emotion import EmotionService, fer_available

from .calls.center import CALL_CENTER, CallCenter
from .calls.centre_settings import CENTRE, CentreSettings
from .calls.centre_settings import POLL_S as CENTRE_POLL_S
from .calls.cues import EMOTION, EmotionSetup
from .calls.desk import CALL_DESK, LocalDesk
from .cluster.service import running_cluster
from .config import SETTINGS, Settings
from .http import auth, openapi
from .http.accesslog import quiet_client_errors
from .http.auth import LOGIN_GUARD, LoginGuard, LoginLimits
from .http.pages import pages_ctx
from .http.ratelimit import CALL_LIMITER, AddressLimiter
from .http.routes import admin, callbacks, files, health, invites, qa, sessions, supervisor
from .http.routes import webhooks as webhook_routes
from .http.routes.invites import INVITE_KEY
from .http.security import MAX_BODY_BYTES, security_middleware
from .media import ice
from .media.analysis import settings_of as emotion_settings_of
from .media.nodes import MediaNodePool
from .media.pool import MEDIA_POOL, MediaWorkerPool, default_workers
from .metrics import METRICS, Metrics
from .recording.composer import COMPOSER, Composer
from .recording.retention import retention_loop
from .signalling import endpoint
from .signalling.endpoint import SOCKET_SINK, WEBSOCKETS, CenterSink
from .storage.api_keys import API_KEYS, ApiKeyStore
from .storage.files import private_dir, write_private
from .storage.migrations import migrate
from .storage.reviews import REVIEWS, ReviewStore
from .storage.schema import create_engine
from .storage.store import STORE, Store
from .webhooks.dispatcher import WEBHOOKS, WebhookDispatcher

log = logging.getLogger(__name__)

DEMO_FILE = "demo-accounts.txt"


def absolute_db_url(url: str) -> str:
    """Workers run elsewhere (their own cwd): a relative SQLite path must not depend on it."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def _demo_banner(lines: list[tuple[str, str, str]], path: Path) -> str:
    rows = "\n".join(f"  {role:<11} {user:<8} {password}" for user, role, password in lines)
    return (
        f"Demo accounts (also in {path}):\n  {'role':<11} {'username':<8} password\n{rows}\n"
        "  (api-key: send it as 'Authorization: Bearer <key>'; see README, \"Open a call from another system\")"
    )


async def _announce_demo_accounts(store: Store, settings: Settings) -> None:
    """Demo staff on an empty database: their passwords are logged this once and kept in a 0600 file."""
    path = settings.data_dir / DEMO_FILE
    if await store.count_users() > 0:
        if path.exists():
            log.warning("demo accounts exist; their passwords are in %s", path)
        return
    if path.exists() or path.is_symlink():
        # Left from an earlier database: its passwords no longer open anything.
        log.warning("replacing %s, left from an earlier database", path)
        path.unlink()
    created = await auth.ensure_demo_accounts(store)
    # A key for trying the REST API with curl (README): invites and session reads only.
    _key, secret = await ApiKeyStore(store.engine).create("demo", ("invites:write", "sessions:read"))
    created.append(("demo-key", "api-key", secret))
    write_private(path, "".join(f"{u} {r} {p}\n" for u, r, p in created).encode())
    log.warning(_demo_banner(created, path))


def _emotion_ctx(injected: EmotionService | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        service = injected
        message = "emotion cues are on"
        if service is None and not settings.emotion_cues:
            message = "emotion cues are turned off on this server (emotion_cues = false)"
        elif service is None:
            available, message = fer_available()
            if available:
                # A worker process: TensorFlow never loads into the server, and a model crash cannot hurt calls.
                service = EmotionService(settings=emotion_settings_of(settings))
                message = "emotion cues are starting (loading the model)"
        if service is not None:
            await service.start()
            log.info("emotion cues on: analysing customers' video (with their consent) in a worker")
        else:
            log.warning("%s. Calls work as usual, without emotion cues.", message)
        app[EMOTION] = EmotionSetup(service, message)
        yield
        if service is not None and injected is None:
            await service.aclose()

    return ctx


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    private_dir(settings.data_dir)
    private_dir(settings.recordings_path)
    engine = create_engine(settings.db_url)
    try:
        await migrate(engine)
        store = Store(engine)
        if settings.create_demo_accounts:
            await _announce_demo_accounts(store, settings)
        elif await store.count_users() == 0:
            log.warning(
                "no staff accounts yet: add one with `rapport users add NAME --role admin`, or start with --demo"
            )
        app[STORE] = store
        yield
    finally:
        await engine.dispose()


async def _centre_ctx(app: web.Application) -> AsyncIterator[None]:
    # What an admin changed on /admin over the configured defaults; a cluster's front doors poll for changes.
    settings = app[SETTINGS]
    centre = CentreSettings(settings, app[STORE], poll_s=CENTRE_POLL_S if settings.clustered else None)
    async with _running(app, CENTRE, centre):
        yield


async def _api_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    app[API_KEYS] = ApiKeyStore(app[STORE].engine)
    yield


async def _invite_key_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.clustered and settings.cluster_secret:
        # Every front door must open the links any of them signed: one key, derived from the shared secret.
        app[INVITE_KEY] = hmac.new(settings.cluster_secret.encode(), b"rapport invite links", hashlib.sha256).digest()
    else:
        app[INVITE_KEY] = await asyncio.to_thread(invites.load_secret, settings.data_dir)
    yield


async def _reviews_ctx(app: web.Application) -> AsyncIterator[None]:
    reviews = ReviewStore(app[STORE].engine)
    await reviews.ensure_scorecard()
    app[REVIEWS] = reviews
    yield


class _Service(Protocol):
    """A part that runs while the app serves: started before, closed after."""

    async def start(self) -> object: ...

    async def aclose(self) -> None: ...


S = TypeVar("S", bound=_Service)


@contextlib.asynccontextmanager
async def _running(app: web.Application, key: web.AppKey[S], service: S) -> AsyncIterator[None]:
    """``service`` started and set at ``key`` for the block; closed after it, and when starting fails part-way."""
    try:
        await service.start()
        app[key] = service
        yield
    finally:
        await service.aclose()


async def _webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    # The node's own name (not host:port, which two hosts may share): at start it takes back its own jobs.
    settings = app[SETTINGS]
    webhooks = WebhookDispatcher(app[STORE].engine, allowed_hosts=settings.webhook_allowed_hosts, node=settings.node_id)
    async with _running(app, WEBHOOKS, webhooks):
        yield


async def _composer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    composer = Composer(
        app[STORE],
        settings.recordings_path,
        enabled=settings.compose_recordings,
        on_event=app[WEBHOOKS].emit,
        node=settings.node_id,
    )
    async with _running(app, COMPOSER, composer):
        yield


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    async with _running(app, METRICS, Metrics()):
        yield


async def _media_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.media_nodes:
        # A cluster's media runs on ``rapport media-node`` processes found through Redis (docs/scaling.md).
        nodes = MediaNodePool(settings, app[METRICS].transit)
        async with _running(app, MEDIA_POOL, nodes):
            log.info("media: on media nodes (%d linked)", len(nodes.links))
            yield
        return
    workers = default_workers() if settings.media_workers < 0 else settings.media_workers
    policy = ice.IcePolicy.of(settings)
    # This process carries calls too when it has no workers (or they all fail): the same ports and address.
    previous = ice.install(policy)
    try:
        if workers == 0:
            yield  # calls are carried in this process
            return
        pool = MediaWorkerPool(workers, absolute_db_url(settings.db_url), app[METRICS].transit, policy)
        app[METRICS].watch_processes(pool.task_counts)
        async with _running(app, MEDIA_POOL, pool):
            log.info("media: %d worker process(es), %s path", workers, settings.media_path)
            yield
    finally:
        ice.install(previous)


def _new_call_center(app: web.Application) -> CallCenter:
    emotion = app[EMOTION]
    pool = app.get(MEDIA_POOL)
    center = CallCenter(
        app[STORE],
        app[SETTINGS],
        emotion=emotion.service,
        emotion_unavailable=emotion.message,
        on_recorded=app[COMPOSER].enqueue,
        on_event=callbacks.finish_on_end(app),
        metrics=app[METRICS],
        pool=pool,
        centre=app[CENTRE],
    )
    if pool is not None:
        pool.on_lost = center.media_lost
    return center


async def _call_center_ctx(app: web.Application) -> AsyncIterator[None]:
    if app[SETTINGS].clustered:
        # A cluster's call centre runs on whichever front door leads (docs/scaling.md).
        async with running_cluster(app, lambda: _new_call_center(app)):
            yield
        return
    center = _new_call_center(app)
    # The one place calls and their peers close: after endpoint.close_sockets told every client "going away".
    async with _running(app, CALL_CENTER, center):
        app[CALL_DESK] = LocalDesk(center)
        app[SOCKET_SINK] = CenterSink(center)
        yield


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    retention = asyncio.create_task(
        retention_loop(
            app[STORE],
            settings.recordings_path,
            retention_days=settings.recording_retention_days,
            every_s=settings.retention_check_s,
            node=settings.node_id,
        ),
        name="retention",
    )
    yield
    retention.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await retention


# In dependency order: aiohttp starts them in this order and cleans up in reverse, and a failure
# part-way cleans up the ones already started.
SERVICES: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = (
    _storage_ctx,
    health.readiness_ctx,
    _centre_ctx,
    _api_keys_ctx,
    _invite_key_ctx,
    _reviews_ctx,
    _webhooks_ctx,
    _composer_ctx,
    _metrics_ctx,
    _media_pool_ctx,
    _call_center_ctx,
    _retention_ctx,
)


def create_app(settings: Settings, *, emotion_service: EmotionService | None = None) -> web.Application:
    """The Rapport application. ``emotion_service`` replaces the default fer worker (tests)."""
    quiet_client_errors()
    app = web.Application(
        middlewares=[security_middleware(settings)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[LOGIN_GUARD] = LoginGuard(
        LoginLimits(
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            server_wide=settings.login_failures_server_wide,
            window_s=settings.login_window_s,
            concurrent=settings.login_concurrency,
            queue_s=settings.login_queue_s,
        )
    )
    app[CALL_LIMITER] = AddressLimiter(limit=30, window_s=60.0)
    app[WEBSOCKETS] = set()
    app.cleanup_ctx.append(pages_ctx)  # first: a broken page stops the start before any service runs
    app.cleanup_ctx.append(_emotion_ctx(emotion_service))
    app.cleanup_ctx.extend(SERVICES)
    # Before the cleanups: every socket hears "going away", then the call centre's cleanup closes the calls.
    app.on_shutdown.append(endpoint.close_sockets)
    health.setup_routes(app)
    sessions.setup_routes(app)
    invites.setup_routes(app)
    callbacks.setup_routes(app)
    qa.setup_routes(app)
    supervisor.setup_routes(app)
    admin.setup_routes(app)
    webhook_routes.setup_routes(app)
    files.setup_routes(app)
    openapi.setup_routes(app)
    endpoint.setup_routes(app)
    return app
