"""A subscription's own request headers and HTTP basic auth (issue 18): pure, no I/O.

What users type after `/set N header` and `/set N auth` is read here (`read_header_edit`,
`read_auth`), refused by name when the fetcher could not send it or owns it (`OptionError`), and
shown back masked (`shown_headers`, `shown_auth`): only a few harmless headers' values are ever
shown in full, a password never.

These settings are part of the feed's identity, not options of a subscription: fetching is per
feed, shared by its subscribers, so a chat's cookie or password must never fetch what another
chat gets. A feed fetched with headers is its own record, keyed by its URL plus a marker that is
never sent (`#feedbot-h=<random>`, bot.feeds.urls.with_marker), with the headers stored on it
(`Feed.request_headers`); basic auth is one of them (`Authorization: Basic …`).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.errors import OptionError
from bot.feeds.urls import userinfo

#: RFC 9110 token characters: what a header name is made of
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: headers the fetcher or the connection owns (framing, hop-by-hop, conditional GET,
#: compression), or that belong to a proxy: never set by a user
FETCHER_OWNED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "expect", "accept-encoding", "content-encoding", "range", "if-range",
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
    "proxy-authorization", "proxy-authenticate", "proxy-connection", "http2-settings",
    "content-type", "cookie2",
})
#: headers whose value is shown in full on the card (nothing secret in them)
SHOWN_IN_FULL = frozenset({"user-agent", "accept", "accept-language", "referer"})
#: headers kept on a redirect to another origin (scheme, host, port): they carry no secret.
#: Every other header of the user's (Cookie, Authorization, an API key) goes only to the
#: feed's own origin
SENT_ANYWHERE = frozenset({"user-agent", "accept", "accept-language"})
AUTHORIZATION = "Authorization"
MAX_HEADERS = 10
MAX_NAME = 64
MAX_VALUE = 4000
MAX_TOTAL = 8000  # bytes of names and values together
MASK = "••••"
#: what removes every header at once (`/set N header off`)
CLEAR_ALL = frozenset({"off", "none", "-", "clear", "reset"})
SHOWN_VALUE = 80  # characters of a value shown in full, before "…"


@dataclass(frozen=True)
class HeaderEdit:
    """One `/set N header …`: set `name` to `value`, remove `name` (value None), or (name
    "") remove them all."""

    name: str
    value: str | None = None


Headers = tuple[tuple[str, str], ...]


def read_header_edit(raw: str) -> HeaderEdit:
    """`Name: value` (set or replace), `-Name` (remove), `off` (remove all)."""
    text = raw.strip()
    if not text:
        raise OptionError("set_header_usage")
    if text.lower() in CLEAR_ALL:
        return HeaderEdit("")
    if text.startswith("-") and ":" not in text:
        return HeaderEdit(check_name(text[1:].strip()), None)
    name, colon, value = text.partition(":")
    if not colon:
        raise OptionError("set_header_usage")
    name = check_name(name.strip())
    return HeaderEdit(name, check_value(name, value.strip()))


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not _TOKEN.match(name):
        shown = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
        raise OptionError("set_header_bad_name", name=shown, limit=MAX_NAME)
    if name.lower() in FETCHER_OWNED or name.lower().startswith("proxy-"):
        raise OptionError("set_header_owned", name=name)
    return name


def check_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise OptionError("set_header_line_break", name=name)
    if any(c != "\t" and (ord(c) < 0x20 or ord(c) > 0x7E) for c in value):
        raise OptionError("set_header_bad_value", name=name)
    if not value:
        raise OptionError("set_header_empty", name=name)
    if len(value) > MAX_VALUE:
        raise OptionError("set_header_too_long", name=name, limit=MAX_VALUE)
    return value


def edited(current: Mapping[str, str], edit: HeaderEdit) -> dict[str, str]:
    """The headers after `edit` (names compared without case; a name keeps the case last
    typed); OptionError when they would be too many or too long together."""
    if not edit.name:
        return {}
    headers = {k: v for k, v in current.items() if k.lower() != edit.name.lower()}
    if edit.value is None:
        return headers
    headers[edit.name] = edit.value
    check_all(headers)
    return headers


def secret_in(change: Mapping[str, object]) -> bool:
    """Whether a /set change (SubscriptionOptions field -> value) sets a password or a header
    whose value is masked: the user typed a secret into the chat."""
    edit = change.get("headers")
    masked = isinstance(edit, HeaderEdit) and edit.value is not None and (
        edit.name.lower() not in SHOWN_IN_FULL
    )
    return bool(change.get("auth")) or masked


def check_all(headers: Mapping[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        raise OptionError("set_header_too_many", limit=MAX_HEADERS)
    if sum(len(k) + len(v) for k, v in headers.items()) > MAX_TOTAL:
        raise OptionError("set_header_too_large", limit=MAX_TOTAL)


# ------------------------------------------------------------------ basic auth
def read_auth(raw: str) -> str:
    """`user:password` (the password may hold colons and spaces), or "" for `off`."""
    text = raw.strip()
    if text.lower() in CLEAR_ALL:
        return ""
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise OptionError("set_auth_usage")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise OptionError("set_auth_bad")
    if len(text) > MAX_VALUE // 2:
        raise OptionError("set_header_too_long", name=AUTHORIZATION, limit=MAX_VALUE // 2)
    return text


def basic_header(credentials: str) -> str:
    """`user:password` as an Authorization value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def basic_credentials(headers: Mapping[str, str]) -> str:
    """The `user:password` of a Basic Authorization header among `headers`, else ""."""
    value = header(headers, AUTHORIZATION)
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded if ":" in decoded else ""


def with_auth(current: Mapping[str, str], credentials: str) -> dict[str, str]:
    """The headers with `credentials` (`user:password`; "" removes it) as their basic auth."""
    headers = {k: v for k, v in current.items() if k.lower() != AUTHORIZATION.lower()}
    if credentials:
        headers[AUTHORIZATION] = basic_header(credentials)
        check_all(headers)
    return headers


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


# ------------------------------------------------------------------ shown back
def other_headers(headers: Mapping[str, str]) -> Headers:
    """The headers but a Basic Authorization (shown as the auth option), in order."""
    basic = bool(basic_credentials(headers))
    return tuple(
        (k, v) for k, v in headers.items() if not (basic and k.lower() == AUTHORIZATION.lower())
    )


def shown_headers(headers: Sequence[tuple[str, str]]) -> list[str]:
    """Each header as the card shows it (Telegram HTML): `Cookie: ••••`, a User-Agent whole."""
    shown = []
    for name, value in headers:
        if name.lower() in SHOWN_IN_FULL:
            cut = value if len(value) <= SHOWN_VALUE else value[: SHOWN_VALUE - 1] + "…"
        else:
            cut = MASK
        shown.append(f"<code>{html.escape(name)}: {html.escape(cut)}</code>")
    return shown


def shown_auth(credentials: str) -> str:
    """`user:••••` (Telegram HTML); "" when there is none."""
    user = credentials.partition(":")[0]
    return f"<code>{html.escape(user)}:{MASK}</code>" if credentials else ""


def cross_origin_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What of the user's headers may go to another origin than the feed's own."""
    return {k: v for k, v in headers.items() if k.lower() in SENT_ANYWHERE}


def own_headers(url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """A feed record's own headers: those stored with it, and a user name and password before
    its host as basic auth (a feed subscribed to as `https://user:pass@host/feed`)."""
    own = dict(headers)
    given = userinfo(url)
    if given and header(own, AUTHORIZATION) is None:
        own[AUTHORIZATION] = basic_header(given)
    return own
