"""Settings: flags, then ``RAPPORT_*`` environment variables, then a TOML file, then defaults."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_REASONS: tuple[tuple[str, str], ...] = (
    ("order", "An order"),
    ("complaint", "A complaint"),
    ("not_working", "Something doesn't work"),
    ("wrong_info", "Wrong information"),
    ("other", "Something else"),
)

# (code, label, category): the rep's outcome of a call, chosen at wrap-up.
DEFAULT_DISPOSITIONS: tuple[tuple[str, str, str], ...] = (
    ("resolved", "Resolved", "Resolved"),
    ("resolved_with_replacement", "Resolved: replacement or refund", "Resolved"),
    ("follow_up", "Needs a follow-up", "Open"),
    ("escalated", "Escalated", "Open"),
    ("information", "Information only", "Resolved"),
    ("call_dropped", "Call dropped", "Not resolved"),
    ("not_resolved", "Not resolved", "Not resolved"),
)

# The customer page's languages: (code, native name, direction).
LANGUAGES: tuple[tuple[str, str, str], ...] = (
    ("en", "English", "ltr"),
    ("nl", "Nederlands", "ltr"),
    ("cs", "Čeština", "ltr"),
    ("fa", "فارسی", "rtl"),
    ("nb", "Norsk bokmål", "ltr"),
)

# Self-help shown before queueing, per reason: (title, body, url). A TOML file may give
# {reason = [{title = "...", body = "...", url = "..."}]}; a title or body may be a table per language.
DEFAULT_HELP: dict[str, tuple[dict[str, Any], ...]] = {
    "order": (
        {
            "title": {"en": "Where is my order?", "nl": "Waar is mijn bestelling?"},
            "body": {
                "en": "The tracking link is in your order confirmation e-mail. Most orders arrive in 2 to 4 "
                "working days.",
                "nl": "De track-and-tracelink staat in je bevestigingsmail. De meeste bestellingen komen binnen "
                "2 tot 4 werkdagen.",
            },
            "url": None,
        },
    ),
    "not_working": (
        {
            "title": {"en": "Restart the device", "nl": "Start het apparaat opnieuw"},
            "body": {
                "en": "Unplug it for 30 seconds, plug it back in and wait until the light is steady.",
                "nl": "Haal de stekker er 30 seconden uit, steek hem terug en wacht tot het lampje constant brandt.",
            },
            "url": None,
        },
        {
            "title": {"en": "Check for updates", "nl": "Zoek naar updates"},
            "body": {
                "en": "Open the app's settings and choose Update. Many faults are fixed by the latest version.",
                "nl": "Open de instellingen van de app en kies Bijwerken. Veel storingen verdwijnen met de "
                "nieuwste versie.",
            },
            "url": None,
        },
    ),
}


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_browser(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str | None = None
    https: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    # Empty by default: aiortc would otherwise fall back to Google's public STUN server.
    ice_servers: tuple[IceServer, ...] = ()
    # Real networks (docs/networking.md). A TURN relay (coturn with use-auth-secret): every session gets its own
    # credentials, valid turn_ttl_s, for these turn:/turns: URLs; the secret is coturn's static-auth-secret.
    turn_secret: str | None = None
    turn_urls: tuple[str, ...] = ()
    turn_ttl_s: int = 3600
    # The UDP ports the server's media sockets bind ("50000-50100"), so a firewall rule can name them; unset: any.
    rtc_ports: tuple[int, int] | None = None
    # The address peers reach this server on (a cloud VM behind 1:1 NAT), announced as an extra host candidate.
    public_ip: str | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    session_token_ttl_s: int = 4 * 3600
    reconnect_grace_s: float = 30.0
    heartbeat_s: float = 5.0
    media_stall_s: float = 6.0
    ws_max_pending: int = 256
    ws_rate_per_s: float = 20.0
    ws_rate_burst: int = 40
    # Demo staff and an API key, made on an empty database only when asked (`rapport serve --demo`).
    create_demo_accounts: bool = False
    # Failed logins allowed per login_window_s: per (username, address), per address, and server-wide.
    # Checked before argon2 runs; at most login_concurrency checks at once, the rest wait up to login_queue_s.
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_failures_server_wide: int = 100
    login_window_s: float = 60.0
    login_concurrency: int = 2
    login_queue_s: float = 5.0
    # Open staff sockets re-check their login this often; a revoked login or disabled user is closed (4001).
    login_recheck_s: float = 30.0
    # Emotion cues (customer's video only, with consent). The deployment picks the toggle's default.
    emotion_cues: bool = True
    # The centre's policy, set by an admin on /admin: cues may run at all. Apart from emotion_cues, which says
    # whether this process runs a model (a front door with media nodes runs none, its nodes do).
    emotion_cues_allowed: bool = True
    emotion_default_consent: bool = True
    emotion_raise_threshold: float = 0.5
    emotion_clear_threshold: float = 0.3
    emotion_hold_s: float = 1.0
    emotion_analysis_fps: float = 5.0
    # Recording: "always" (with notice), "ask" (the customer chooses) or "never".
    recording_policy: str = "ask"
    recordings_dir: Path | None = None
    recording_min_free_mb: int = 500
    # Recording files older than this are deleted (sessions on legal hold excepted); 0 keeps them.
    recording_retention_days: int = 90
    retention_check_s: float = 3600.0
    # After a call, a background process composes one side-by-side file for QA.
    compose_recordings: bool = True
    dispositions: tuple[tuple[str, str, str], ...] = DEFAULT_DISPOSITIONS
    help_articles: Mapping[str, tuple[dict[str, Any], ...]] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_HELP)
    )
    # "forward": carry each side's encoded media to the other without decoding (the default);
    # "transcode": decode and re-encode (aiortc's usual relay; the benchmark's baseline).
    media_path: str = "forward"
    # Calls with media at once; 0 = the measured model (calls per core x cores, see README).
    max_calls: int = 0
    # Behind a proxy, /metrics and webhooks (docs/security.md). A reverse proxy's X-Forwarded-For and
    # X-Forwarded-Proto are believed only from these addresses or CIDR networks; empty: from nobody.
    trusted_proxies: tuple[str, ...] = ()
    # GET /metrics from anywhere with "Authorization: Bearer <metrics_token>"; without it, loopback peers only.
    metrics_token: str | None = None
    # Hosts (names as in the URL, or literal addresses) webhooks may reach although they are internal
    # (loopback, private, link-local ...); every other host is checked on the address it resolves to.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Media worker processes: -1 = one per core, 0 = media in the front door's own process.
    media_workers: int = -1
    # Routing: how long a call rings at one rep before it goes to the next.
    ring_timeout_s: float = 15.0
    # Anonymous load: what one visitor (or many) can make the server hold and send. 0 turns a limit off.
    # Waiting calls at once, from one client address and in all (then 429 / 503 from POST /api/v1/calls).
    max_waiting_per_address: int = 5
    max_waiting_calls: int = 200
    # Longest wait in the queue; then the call ends (end reason max_wait) and the customer may ask for a callback.
    max_wait_s: float = 1800.0
    # Supervisor assist. A listening (or whispering) supervisor is shown to the customer only with this on; by
    # default the customer page's notice ("calls may be monitored for quality") covers it, as on most phone
    # lines. A barge-in is always shown: the customer sees and hears whoever joins.
    disclose_listening: bool = False
    # A live call needs attention once it runs this many times the usual handle time of its reason (the median
    # of the last calls' handle times here; long_call_default_s until there are five).
    long_call_factor: float = 2.0
    long_call_default_s: float = 900.0
    # Chat lines per participant of a call: a sustained rate with a burst, and lines stored per session.
    chat_per_minute: int = 30
    chat_burst: int = 10
    max_chat_per_session: int = 500
    # Photos and files in chat (and the rep's snapshots): the largest upload, files kept per call, how long the rep
    # waits for the customer's camera to send a snapshot, and snapshots a rep may ask for a minute.
    max_file_mb: float = 10.0
    max_files_per_session: int = 30
    snapshot_timeout_s: float = 15.0
    snapshots_per_minute: int = 6
    # Queue snapshots and positions go out at most this often however fast the queue changes.
    queue_updates_per_s: float = 4.0
    # SDP: ICE candidates per offer (aiortc checks every one a client lists) and offers per participant a minute.
    max_offer_candidates: int = 32
    offers_per_minute: int = 10
    # A JSON request body must arrive within this (a client that stalls, or breaks its chunks mid-body, would
    # otherwise hold a handler for ever): then 400.
    body_timeout_s: float = 15.0
    reasons: tuple[tuple[str, str], ...] = DEFAULT_REASONS
    languages: tuple[tuple[str, str, str], ...] = LANGUAGES
    # More than one box (docs/scaling.md). With a Redis URL this process is one front door of a cluster that
    # shares PostgreSQL (``database_url``) and Redis; without it, one box keeps everything in its own memory.
    redis_url: str | None = None
    # This process's name in the cluster (heartbeats, the session -> node map, logs); default: host:port.
    node_id: str | None = None
    # Authenticates the front doors to the media nodes (HMAC challenge on every link); required with media nodes.
    cluster_secret: str | None = None
    # Calls' media on ``rapport media-node`` processes found through Redis, instead of local workers.
    media_nodes: bool = False
    # A media node or a cluster leader that missed heartbeats this long is gone.
    node_timeout_s: float = 3.0

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'rapport.sqlite3'}"

    @property
    def clustered(self) -> bool:
        return self.redis_url is not None

    @property
    def node_name(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"


SETTINGS = web.AppKey("settings", Settings)


_FIELD_TYPES = {f.name: f for f in fields(Settings)}


def parse_ice_servers(value: Any) -> tuple[IceServer, ...]:
    """Accept ``"stun:a,turn:b"``, a JSON list, or a TOML list of tables/strings."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return parse_ice_servers(json.loads(text))
        return tuple(IceServer(urls=(u.strip(),)) for u in text.split(",") if u.strip())
    servers: list[IceServer] = []
    for item in value:
        if isinstance(item, str):
            servers.append(IceServer(urls=(item,)))
        elif isinstance(item, Mapping):
            urls = item.get("urls")
            url_list = (urls,) if isinstance(urls, str) else tuple(urls or ())
            if not url_list:
                raise ValueError("ice server needs 'urls'")
            servers.append(IceServer(urls=url_list, username=item.get("username"), credential=item.get("credential")))
        else:
            raise ValueError(f"bad ice server entry: {item!r}")
    return tuple(servers)


def parse_turn_urls(value: Any) -> tuple[str, ...]:
    """``"turn:host:3478?transport=udp,turns:host:5349?transport=tcp"`` or a list of such URLs."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    urls = tuple(str(u).strip() for u in items if str(u).strip())
    for url in urls:
        if not url.startswith(("turn:", "turns:")):
            raise ValueError(f"turn_urls: {url!r} is not a turn: or turns: URL")
    return urls


def parse_port_range(value: Any) -> tuple[int, int] | None:
    """``"50000-50100"`` (inclusive) or a two-item list; empty: any port. A call needs two ports (one a side)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split("-")]
    else:
        parts = [str(p) for p in value]
    try:
        low, high = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, -1)
    except ValueError:
        low, high = 0, -1
    if not 1024 <= low < high <= 65535:
        raise ValueError(
            f"rtc_ports: {value!r} is not a port range such as 50000-50100 (1024-65535, low-high, two ports or more)"
        )
    return low, high


def parse_public_ip(value: Any) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"public_ip: {value!r} is not an IP address") from None


def _coerce(name: str, value: Any) -> Any:
    if name == "ice_servers":
        return parse_ice_servers(value)
    if name == "reasons":
        return tuple((str(code), str(label)) for code, label in value)
    if name == "help_articles":
        return {str(reason): tuple(dict(a) for a in articles) for reason, articles in dict(value).items()}
    if name == "languages":
        return tuple((str(code), str(label), str(direction)) for code, label, direction in value)
    if name == "dispositions":
        return tuple((str(code), str(label), str(category)) for code, label, category in value)
    current = getattr(Settings(), name)
    if name == "media_path" and value not in ("forward", "transcode"):
        raise ValueError("media_path must be forward or transcode")
    if name == "recording_policy" and value not in ("always", "ask", "never"):
        raise ValueError("recording_policy must be always, ask or never")
    if name in ("data_dir", "cert_file", "key_file", "recordings_dir"):
        return Path(value) if value not in (None, "") else None
    if name in ("allowed_origins", "trusted_proxies", "webhook_allowed_hosts"):
        items = tuple(o.strip() for o in value.split(",")) if isinstance(value, str) else tuple(value)
        items = tuple(str(o).strip() for o in items if str(o).strip())
        if name == "trusted_proxies":
            for entry in items:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or a CIDR network") from None
        return items
    if name == "metrics_token":
        return (str(value).strip() or None) if value is not None else None
    if name == "turn_secret":
        return (str(value).strip() or None) if value is not None else None
    if name == "turn_urls":
        return parse_turn_urls(value)
    if name == "rtc_ports":
        return parse_port_range(value)
    if name == "public_ip":
        return parse_public_ip(value)
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources; ``overrides`` (from flags) win, then env, then TOML."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (Path(env["RAPPORT_CONFIG"]) if env.get("RAPPORT_CONFIG") else None)
    if path is not None:
        with path.open("rb") as fh:
            values.update(tomllib.load(fh))
    for name in _FIELD_TYPES:
        key = f"RAPPORT_{name.upper()}"
        if key in env:
            values[name] = env[key]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    if "metrics_public" in values:
        raise ValueError("metrics_public is gone: set metrics_token and send 'Authorization: Bearer <token>'")
    unknown = set(values) - set(_FIELD_TYPES)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    data_dir = _coerce("data_dir", values.get("data_dir", Settings.data_dir))
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    coerced["data_dir"] = data_dir
    return dataclasses.replace(Settings(), **coerced)


__all__ = [
    "DEFAULT_DISPOSITIONS",
    "DEFAULT_HELP",
    "DEFAULT_REASONS",
    "LANGUAGES",
    "SETTINGS",
    "IceServer",
    "Settings",
    "load_settings",
    "parse_ice_servers",
]
