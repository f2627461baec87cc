"""The fake Bot API's webhook side: what setWebhook registered, and one update posted to it the way
Telegram posts it (JSON body, the secret in X-Telegram-Bot-Api-Secret-Token). Posts go to
loopback IP addresses only, over plain HTTP."""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: what Telegram accepts as secret_token
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: the status recorded for a post that got no HTTP answer (refused, reset, timed out)
NO_ANSWER = 0


class WebhookRefused(ValueError):
    """setWebhook's parameters are not acceptable (the description Telegram would give)."""


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str | None
    allowed_updates: tuple[str, ...]
    max_connections: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Webhook:
        url = str(params["url"])
        if not is_loopback_http(url):
            raise WebhookRefused(
                "Bad Request: bad webhook: the fake Bot API posts only to http:// URLs on a "
                "loopback IP address"
            )
        secret = params.get("secret_token") or None
        if secret is not None and not SECRET.fullmatch(str(secret)):
            raise WebhookRefused("Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates") or ()
        return cls(url, secret, tuple(allowed), int(params.get("max_connections") or 40))

    def wants(self, update: dict[str, Any]) -> bool:
        return not self.allowed_updates or bool(set(update) & set(self.allowed_updates))

    def info(self, pending: int, last_error: str | None) -> dict[str, Any]:
        """getWebhookInfo's answer."""
        out: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
            "max_connections": self.max_connections,
        }
        if self.allowed_updates:
            out["allowed_updates"] = list(self.allowed_updates)
        if last_error is not None:
            out["last_error_message"] = last_error
        return out


@dataclass(frozen=True)
class Push:
    """One post of an update to the webhook and the HTTP status it got (NO_ANSWER: none)."""

    update_id: int
    status: int
    #: the secret header sent (None: no header)
    secret: str | None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def is_loopback_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = ipaddress.ip_address(parts.hostname or "")
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme == "http" and host.is_loopback


def post_update(url: str, update: dict[str, Any], secret: str | None) -> int:
    """POST one update as Telegram does; the HTTP status, or NO_ANSWER."""
    if not is_loopback_http(url):  # never anything but loopback, whatever was registered
        raise ValueError(f"not a loopback http:// URL: {url}")
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    try:
        conn.request("POST", target, body=json.dumps(update).encode(), headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return NO_ANSWER
    finally:
        conn.close()
