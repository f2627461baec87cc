"""Settings: built-in defaults, then an optional TOML file, then environment variables.

The environment variable names are a public contract (README, Docker, outside tooling).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import FeedbotError

PUBLIC_API_URL = "https://api.telegram.org"
#: what the public Bot API fetches by URL; what a self-hosted server may take
PUBLIC_FILE_LIMIT_MB, LARGE_FILE_LIMIT_MB = 20, 2000
#: the ports Telegram's public Bot API posts webhooks to (a self-hosted server takes any)
PUBLIC_WEBHOOK_PORTS = (443, 80, 88, 8443)
#: what setWebhook accepts as secret_token
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: FEEDBOT_TELEGRAPH_URL values that turn Instant View pages off
TELEGRAPH_OFF = frozenset({"off", "none", "0", "false", "no"})
#: `feedbot run --role`: what a process does (docs/scaling.md). `all` is a checker, plus the
#: sender and the updates receiver whenever this process holds their seats
ROLES = ("all", "checker", "sender", "updates")
#: the proxies FEEDBOT_FEED_PROXY (aiohttp; SOCKS through aiohttp-socks) and
#: FEEDBOT_TELEGRAM_PROXY (httpx; SOCKS through httpx[socks], which speaks no SOCKS4) may name
FEED_PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
TELEGRAM_PROXY_SCHEMES = ("http", "https", "socks5")


class ConfigError(FeedbotError):
    kind = "config"


def _setting(default: Any, env: str, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    token: str = _setting(
        "", "TELEGRAM_BOT_TOKEN", "the bot's token from @BotFather (required for run)"
    )
    api_url: str = _setting(
        "https://api.telegram.org",
        "FEEDBOT_API_URL",
        "Bot API server base URL (self-hosted telegram-bot-api or a test fake)",
    )
    telegraph_url: str = _setting(
        "https://api.telegra.ph",
        "FEEDBOT_TELEGRAPH_URL",
        "Telegraph API base URL for Instant View pages of long posts (a test fake, or off: "
        "long posts are cut as before)",
    )
    db_path: str = _setting("data/feedbot.json", "FEEDBOT_DB", "path of the TinyDB database file")
    database_url: str = _setting(
        "",
        "FEEDBOT_DATABASE_URL",
        "postgresql://user:password@host:port/database (query parameters such as sslmode "
        "allowed): keep the state in PostgreSQL instead of the TinyDB file at FEEDBOT_DB",
    )
    role: str = _setting(
        "all",
        "FEEDBOT_ROLE",
        "what this process does: all, checker (polls feeds), sender (drains the outbox; one "
        "active per bot token) or updates (answers commands); other than all needs "
        "FEEDBOT_DATABASE_URL",
    )
    poll_interval: int = _setting(300, "FEEDBOT_POLL_INTERVAL", "default seconds between checks")
    allow_private: bool = _setting(
        False, "FEEDBOT_ALLOW_PRIVATE", "1 allows feeds on loopback/private addresses"
    )
    min_interval: int = _setting(
        60, "FEEDBOT_MIN_INTERVAL", "smallest check interval a chat may set (seconds)"
    )
    max_feed_bytes: int = _setting(
        5 * 1024 * 1024, "FEEDBOT_MAX_FEED_BYTES", "largest feed body accepted, decompressed"
    )
    fetch_timeout: float = _setting(
        30.0, "FEEDBOT_FETCH_TIMEOUT", "seconds one feed fetch may take"
    )
    max_concurrent_checks: int = _setting(
        20, "FEEDBOT_CONCURRENCY", "feeds checked at the same time"
    )
    backlog_limit: int = _setting(
        10, "FEEDBOT_BACKLOG_LIMIT", "most new posts sent per feed check; older ones summarised"
    )
    max_subscriptions: int = _setting(
        100, "FEEDBOT_MAX_SUBSCRIPTIONS", "subscriptions allowed per chat"
    )
    owners: tuple[int, ...] = _setting(
        (), "FEEDBOT_OWNERS", "comma-separated Telegram user ids of the operators"
    )
    allowed_chats: tuple[int, ...] = _setting(
        (), "FEEDBOT_ALLOWED_CHATS", "if set, only these user/chat ids may use the bot"
    )
    log_level: str = _setting("INFO", "FEEDBOT_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR")
    large_files: bool = _setting(
        False,
        "FEEDBOT_LARGE_FILES",
        "1 sends podcast and video files up to 2000 MB by URL (a self-hosted Bot API server at "
        "FEEDBOT_API_URL only; the public API fetches at most 20 MB)",
    )
    webhook_url: str = _setting(
        "",
        "FEEDBOT_WEBHOOK_URL",
        "receive updates by webhook at this https:// URL (http:// only on loopback) instead of "
        "long polling; its path is also the path served locally",
    )
    webhook_listen: str = _setting(
        "127.0.0.1:8443",
        "FEEDBOT_WEBHOOK_LISTEN",
        "HOST:PORT of the webhook's plain-HTTP server (behind a TLS reverse proxy)",
    )
    webhook_secret: str = _setting(
        "",
        "FEEDBOT_WEBHOOK_SECRET",
        "the secret Telegram sends with each webhook request (1-256 of A-Z a-z 0-9 _ -); unset: "
        "a random one per process, so processes sharing one URL must set the same one",
    )
    feed_proxy: str = _setting(
        "",
        "FEEDBOT_FEED_PROXY",
        "fetch feeds and posts' pages through this proxy: http://, https://, socks4:// or "
        "socks5://[user:password@]host:port (the feeds' addresses are still checked first)",
    )
    telegram_proxy: str = _setting(
        "",
        "FEEDBOT_TELEGRAM_PROXY",
        "talk to the Bot API through this proxy: http://, https:// or "
        "socks5://[user:password@]host:port",
    )

    @property
    def media_url_limit(self) -> int:
        """The largest declared file size sent as audio/video by URL, in bytes."""
        return (LARGE_FILE_LIMIT_MB if self.large_files else PUBLIC_FILE_LIMIT_MB) * 1024 * 1024

    @property
    def webhook_address(self) -> tuple[str, int]:
        """FEEDBOT_WEBHOOK_LISTEN as (host, port); validate() has checked it."""
        address = parse_listen(self.webhook_listen)
        assert address is not None
        return address

    @property
    def tick_seconds(self) -> float:
        """How often the scheduler looks for due feeds: often, never longer than the interval."""
        return float(max(1, min(5, self.poll_interval)))


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) for every setting: for --help and the README."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        if isinstance(default, bool):
            shown = "1" if default else "off"
        rows.append((f.metadata["env"], shown or "(none)", f.metadata["help"]))
    return rows


def _convert(name: str, kind: Any, raw: Any) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind_name == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind_name == "int":
            return int(raw)
        if kind_name == "float":
            return float(raw)
        if kind_name.startswith("tuple"):
            items = raw if isinstance(raw, list | tuple) else str(raw).replace(" ", "").split(",")
            return tuple(int(x) for x in items if str(x) != "")
        return str(raw)
    except ValueError as exc:
        raise ConfigError(
            f"setting {name}: {raw!r} is not a valid {kind_name}",
            key="error_config_value", args={"setting": name, "value": repr(raw), "type": kind_name},
        ) from exc


def load(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_path or env.get("FEEDBOT_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(
                f"config file not found: {path}", key="error_config_missing", args={"path": path}
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not valid TOML: {exc}",
                key="error_config_toml", args={"path": path, "detail": str(exc)},
            ) from exc
        known = {f.name for f in fields(Settings)}
        unknown = set(data) - known
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(
                f"unknown setting(s) in {path}: {names}",
                key="error_config_unknown", args={"path": path, "names": names},
            )
        values.update(data)
    for f in fields(Settings):
        if f.metadata["env"] in env and env[f.metadata["env"]] != "":
            values[f.name] = env[f.metadata["env"]]
    typed = {
        f.name: _convert(f.name, f.type, values[f.name])
        for f in fields(Settings)
        if f.name in values
    }
    settings = replace(Settings(), **typed)
    return validate(settings)


def validate(settings: Settings) -> Settings:
    if settings.poll_interval < 1:
        raise ConfigError(
            "FEEDBOT_POLL_INTERVAL must be at least 1 second", key="error_config_poll_interval"
        )
    if settings.max_concurrent_checks < 1:
        raise ConfigError("FEEDBOT_CONCURRENCY must be at least 1", key="error_config_concurrency")
    if not settings.api_url.startswith(("http://", "https://")):
        raise ConfigError(
            "FEEDBOT_API_URL must start with http:// or https://", key="error_config_api_url"
        )
    if settings.large_files and settings.api_url.rstrip("/") == PUBLIC_API_URL:
        raise ConfigError(
            "FEEDBOT_LARGE_FILES needs a self-hosted Bot API server (FEEDBOT_API_URL): "
            "the public API fetches at most 20 MB by URL",
            key="error_config_large_files",
        )
    telegraph = settings.telegraph_url.strip()
    if telegraph.lower() not in TELEGRAPH_OFF and not telegraph.startswith(
        ("http://", "https://")
    ):
        raise ConfigError(
            "FEEDBOT_TELEGRAPH_URL must start with http:// or https://, or be off",
            key="error_config_telegraph_url",
        )
    settings = replace(
        settings,
        api_url=settings.api_url.rstrip("/"),
        telegraph_url=telegraph.rstrip("/"),
        feed_proxy=_validate_proxy(
            "FEEDBOT_FEED_PROXY", settings.feed_proxy, FEED_PROXY_SCHEMES
        ),
        telegram_proxy=_validate_proxy(
            "FEEDBOT_TELEGRAM_PROXY", settings.telegram_proxy, TELEGRAM_PROXY_SCHEMES
        ),
    )
    _validate_webhook(settings)
    return settings


def _validate_proxy(setting: str, url: str, schemes: tuple[str, ...]) -> str:
    """A proxy URL as given (stripped, scheme in lower case), or "" for none; refuses what is not
    scheme://host:port with an optional user:password@ (the error shows the URL with its
    password masked)."""
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a port that is not a number or out of range
        host, port = "", None
    scheme = parts.scheme.lower()
    if (
        scheme not in schemes
        or not host
        or port is None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        shown = masked_proxy(url)
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(
            f"{setting} must be a proxy URL, {allowed} with [user:password@]host:port, "
            f"not {shown!r}",
            key="error_config_proxy",
            args={"setting": setting, "value": repr(shown), "schemes": allowed},
        )
    return scheme + url[len(parts.scheme):]


def masked_proxy(url: str) -> str:
    """A proxy URL fit for logs and errors: its password (if any) as ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{hostpart}"


def validate_role(settings: Settings) -> Settings:
    """`feedbot run`'s role, once `--role` is applied over FEEDBOT_ROLE."""
    if settings.role not in ROLES:
        raise ConfigError(
            f"unknown role {settings.role!r}: choose one of {', '.join(ROLES)}",
            key="error_config_role", args={"role": settings.role, "roles": ", ".join(ROLES)},
        )
    if settings.role != "all" and not settings.database_url:
        raise ConfigError(
            f"role {settings.role} needs FEEDBOT_DATABASE_URL: with the TinyDB file one "
            "process does everything (role all)",
            key="error_config_role_tinydb", args={"role": settings.role},
        )
    return settings


def parse_listen(text: str) -> tuple[str, int] | None:
    """HOST:PORT ("[::1]:8443" for IPv6) as (host, port), or None when it is not that."""
    host, _, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_webhook(settings: Settings) -> None:
    if parse_listen(settings.webhook_listen) is None:
        raise ConfigError(
            f"FEEDBOT_WEBHOOK_LISTEN (--listen) must be HOST:PORT, such as 127.0.0.1:8443, "
            f"not {settings.webhook_listen!r}",
            key="error_config_webhook_listen",
            args={"value": repr(settings.webhook_listen)},
        )
    if settings.webhook_secret and not WEBHOOK_SECRET.fullmatch(settings.webhook_secret):
        raise ConfigError(
            "FEEDBOT_WEBHOOK_SECRET must be 1 to 256 characters of A-Z, a-z, 0-9, _ and -",
            key="error_config_webhook_secret",
        )
    if settings.webhook_url:
        _validate_webhook_url(settings.webhook_url, settings.api_url == PUBLIC_API_URL)


def _validate_webhook_url(url: str, public_api: bool) -> None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a port that is not a number
        host, port = "", None
    secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))
    if not host or not secure:
        raise ConfigError(
            f"the webhook URL (--webhook or FEEDBOT_WEBHOOK_URL) must be https://HOST/PATH "
            f"(http:// only on a loopback address), not {url!r}",
            key="error_config_webhook_url",
            args={"url": repr(url)},
        )
    effective = port or (443 if parts.scheme == "https" else 80)
    if public_api and effective not in PUBLIC_WEBHOOK_PORTS:
        ports = ", ".join(map(str, PUBLIC_WEBHOOK_PORTS))
        raise ConfigError(
            f"the webhook URL {url!r} uses port {effective}: Telegram posts webhooks only to "
            f"ports {ports}",
            key="error_config_webhook_port",
            args={"url": repr(url), "port": effective, "ports": ports},
        )
