"""The application factory. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import WSCloseCode, web

from emotion import EmotionService, EmotionSettings, fer_available

from .calls.center import CallCenter
from .config import Settings
from .http import auth, openapi
from .http.accesslog import quiet_client_errors
from .http.apikeys import ApiKeyStore
from .http.auth import LoginGuard, LoginLimits
from .http.ratelimit import AddressLimiter
from .http.routes import invites, qa, sessions, supervisor
from .http.routes import webhooks as webhook_routes
from .http.security import MAX_BODY_BYTES, security_middleware
from .keys import (
    API_KEYS,
    CALL_CENTER,
    CALL_LIMITER,
    COMPOSER,
    EMOTION,
    INVITE_KEY,
    LOGIN_GUARD,
    REVIEWS,
    SETTINGS,
    STORE,
    WEBSOCKETS,
    EmotionSetup,
)
from .media.pool import MediaWorkerPool, default_workers
from .metrics import Metrics
from .recording.composer import Composer
from .recording.retention import retention_loop
from .signalling import endpoint
from .storage.files import private_dir, write_private
from .storage.migrations import migrate
from .storage.reviews import ReviewStore
from .storage.schema import create_engine
from .storage.store import Store
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


def _emotion_settings(settings: Settings) -> EmotionSettings:
    return EmotionSettings(
        analysis_fps=settings.emotion_analysis_fps,
        raise_threshold=settings.emotion_raise_threshold,
        clear_threshold=settings.emotion_clear_threshold,
        hold_seconds=settings.emotion_hold_s,
    )


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
                service = EmotionService(settings=_emotion_settings(settings))
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
    await migrate(engine)
    store = Store(engine)
    app[STORE] = store
    if settings.create_demo_accounts:
        await _announce_demo_accounts(store, settings)
    elif await store.count_users() == 0:
        log.warning("no staff accounts yet: add one with `rapport users add NAME --role admin`, or start with --demo")
    app[API_KEYS] = ApiKeyStore(engine)
    app[INVITE_KEY] = await asyncio.to_thread(invites.load_secret, settings.data_dir)
    reviews = ReviewStore(engine)
    await reviews.ensure_scorecard()
    app[REVIEWS] = reviews
    webhooks = WebhookDispatcher(engine, allowed_hosts=settings.webhook_allowed_hosts)
    await webhooks.start()
    app[WEBHOOKS] = webhooks
    composer = Composer(store, settings.recordings_path, enabled=settings.compose_recordings, on_event=webhooks.emit)
    app[COMPOSER] = composer
    emotion = app[EMOTION]
    metrics = Metrics()
    pool = None
    workers = default_workers() if settings.media_workers < 0 else settings.media_workers
    if workers > 0:
        pool = MediaWorkerPool(workers, absolute_db_url(settings.db_url), metrics.transit)
        await pool.start()
        log.info("media: %d worker process(es), %s path", workers, settings.media_path)
    center = CallCenter(
        store,
        settings,
        emotion=emotion.service,
        emotion_unavailable=emotion.message,
        on_recorded=composer.enqueue,
        on_event=webhooks.emit,
        metrics=metrics,
        pool=pool,
    )
    if pool is not None:
        pool.on_lost = center.media_lost
    await center.start()
    await center.metrics.start()
    await composer.start()
    app[CALL_CENTER] = center
    retention = asyncio.create_task(
        retention_loop(
            store,
            settings.recordings_path,
            retention_days=settings.recording_retention_days,
            every_s=settings.retention_check_s,
        ),
        name="retention",
    )
    yield
    retention.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await retention
    await center.aclose()
    if pool is not None:
        await pool.aclose()
    await center.metrics.aclose()
    await composer.aclose()
    await webhooks.aclose()
    await engine.dispose()


async def _close_websockets(app: web.Application) -> None:
    # Close sockets first so clients hear "going away", then the calls (and their peers).
    sockets: set[web.WebSocketResponse] = app[WEBSOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
    if CALL_CENTER in app:
        await app[CALL_CENTER].aclose()


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
    app.cleanup_ctx.append(_emotion_ctx(emotion_service))
    app.cleanup_ctx.append(_storage_ctx)
    app.on_shutdown.append(_close_websockets)
    sessions.setup_routes(app)
    invites.setup_routes(app)
    qa.setup_routes(app)
    supervisor.setup_routes(app)
    webhook_routes.setup_routes(app)
    openapi.setup_routes(app)
    endpoint.setup_routes(app)
    return app
