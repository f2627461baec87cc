"""Addresses as people type them: pure functions, no I/O.

A word from a chat becomes the URLs worth trying (`read_address`), or a refusal that needs no
network call. `canonical` is the form a feed URL is fetched, stored and compared in.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
#: query parameters that only say where a click came from
TRACKING_PREFIXES = ("utm_",)
TRACKING_NAMES = frozenset({
    "fbclid", "gclid", "dclid", "yclid", "msclkid", "mc_cid", "mc_eid", "_hsenc", "_hsmi",
    "igshid", "mkt_tok",
})
#: punctuation a sentence leaves around a pasted URL (ASCII and full-width)
TRAILING = ".,;:!?'\"”’»。，；：！？、…》」』）】"
LEADING = "<([{'\"“‘«《「『（【"
CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<", "）": "（", "】": "【"}
_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$", re.UNICODE)
#: a URL `without_credentials` gives back unchanged (urlsplit + urlunsplit lower a scheme,
#: drop an empty query, tabs, newlines and extra slashes): no user name, no fragment
_IS_PLAIN = re.compile(r"https?://[^/@#\s\x00-\x1f\x7f][^@#\s\x00-\x1f\x7f]*(?<!\?)\Z")
#: what a Telegram channel username looks like (without its @)
CHANNEL_NAME = re.compile(r"^[A-Za-z]\w{4,31}$")


@dataclass(frozen=True)
class Address:
    """A word that can be a web address: the URLs to try, in order."""

    word: str  # as typed, punctuation stripped
    candidates: tuple[str, ...]  # https first, then http, when no scheme was typed


@dataclass(frozen=True)
class NotAnAddress:
    word: str
    reason: str  # "not_url" | "not_http"


def strip_punctuation(word: str) -> str:
    """`word` without the punctuation a sentence puts around a URL: "(https://a.b/c)." ->
    "https://a.b/c". A closing bracket that the URL itself opened stays."""
    word = word.strip().lstrip(LEADING)
    while word:
        last = word[-1]
        if last in TRAILING:
            word = word[:-1]
        elif last in CLOSERS and word.count(CLOSERS[last]) < word.count(last):
            word = word[:-1]
        else:
            break
    return word


def read_address(raw: str) -> Address | NotAnAddress:
    """The URLs a typed word may mean. Words that cannot be a web address (no dot in the host,
    an unknown scheme, spaces) are refused here, before any lookup."""
    word = strip_punctuation(raw)
    if "://" in word:
        scheme = word.split("://", 1)[0].lower()
        if scheme not in DEFAULT_PORTS:
            return NotAnAddress(word, "not_http")
        # any host may follow an explicit scheme ("http://nas:8080/feed" on a home network);
        # whether it may be contacted is the SSRF guard's call
        return Address(word, (word,)) if _has_host(word) else NotAnAddress(word, "not_url")
    if ":" in word.split("/", 1)[0] and not _has_port(word):
        return NotAnAddress(word, "not_http")  # mailto:x, ftp:x, javascript:...
    for scheme in ("https", "http"):
        if not _plausible_host(f"{scheme}://{word}"):
            return NotAnAddress(word, "not_url")
    return Address(word, (f"https://{word}", f"http://{word}"))


def _has_port(word: str) -> bool:
    host_port = word.split("/", 1)[0]
    return bool(re.fullmatch(r"[^:]+:\d{1,5}|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host_port))


def _has_host(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return bool(parts.hostname) and not any(c.isspace() for c in url)


def _plausible_host(url: str) -> bool:
    """A host typed without a scheme: a dotted name with a real top-level domain, localhost
    or an IP address."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in url):
        return False
    if host == "localhost" or _is_ip(host):
        return True
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    tld = labels[-1]
    return len(tld) >= 2 and not tld.isdigit() and "_" not in tld


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def canonical(url: str) -> str:
    """The form a feed URL is fetched, stored and compared in: lower-case scheme and host, no
    default port, no fragment, no tracking parameters, "/" for an empty path. The trailing
    slash of a longer path stays: only the server can say whether it matters (a redirect)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking(k)
    ]
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(TRACKING_PREFIXES) or lowered in TRACKING_NAMES


def same_address(a: str, b: str) -> bool:
    """True when two URLs differ only in what `canonical` removes, or in a trailing slash."""
    return _loose(a) == _loose(b)


def _loose(url: str) -> str:
    parts = urlsplit(canonical(url))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") or "/"))


def urls_in_text(text: str) -> list[str]:
    """The words of a message that look like web addresses, each once, in order."""
    found: dict[str, None] = {}
    for raw in text.split():
        word = strip_punctuation(raw)
        if "://" not in word and "." not in word:
            continue
        address = read_address(word)
        if isinstance(address, Address):
            found.setdefault(address.word, None)
    return list(found)


def looks_like_channel_name(word: str) -> bool:
    """"mychannel": a channel's username typed without its @ (not a URL, not a number)."""
    return bool(CHANNEL_NAME.match(word))


# ----------------------------------------------------------- private feed addresses
#: words of query parameter names that carry a secret: private feeds of GitLab (`feed_token`),
#: GitHub (`token`), Redmine (`key`), trackers (`passkey`), signed URLs (`sig`)
SECRET_WORDS = frozenset({
    "token", "key", "apikey", "secret", "password", "passwd", "pass", "passkey", "pwd", "auth",
    "sig", "signature", "session", "sessionid", "sid", "credential", "credentials", "hash",
})
SECRET_ENDINGS = ("token", "key", "secret", "password")


def _secret_name(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", name.lower())
    return any(w in SECRET_WORDS or w.endswith(SECRET_ENDINGS) for w in words if w)


#: a value that looks generated rather than typed: long, and letters mixed with digits
_TOKEN_VALUE = re.compile(r"^[A-Za-z0-9_\-.~+/=%]{16,}$")


def _looks_generated(value: str) -> bool:
    return bool(_TOKEN_VALUE.match(value)) and any(c.isdigit() for c in value) and any(
        c.isalpha() for c in value
    )


def is_private_url(url: str) -> bool:
    """Whether `url` carries credentials: a user name or password before the host, or a query
    parameter that looks like a token (by its name or its value)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if "@" in parts.netloc or has_marker(url):
        return True
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and (_secret_name(name) or _looks_generated(value)):
            return True
    return False


#: the fragment that keys a feed fetched with request headers of its own (never sent: a
#: fragment is not part of a request; bot.feeds.request_headers)
MARKER = "feedbot-h="


def has_marker(url: str) -> bool:
    return urlsplit(url.strip()).fragment.startswith(MARKER)


def with_marker(url: str, token: str | None) -> str:
    """`url` keyed for the feed record fetched with its own headers (`token`: the marker's
    value), or (None) the plain feed's."""
    parts = urlsplit(url.strip())
    return urlunsplit(parts._replace(fragment=f"{MARKER}{token}" if token else ""))


def without_credentials(url: str) -> str:
    """`url` without its user name and password, and without a marker."""
    url = url.strip()
    if _IS_PLAIN.match(url):  # the common case, asked at every check: nothing to take out
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host, fragment=""))


def userinfo(url: str) -> str:
    """`user:password` before the host ("" for none), as typed (percent-escapes decoded)."""
    if "@" not in url:
        return ""
    parts = urlsplit(url.strip())
    if "@" not in parts.netloc:
        return ""
    return unquote(parts.netloc.rpartition("@")[0])


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`: where its credentials may go."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return ("", "", None)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def moved_feed_url(url: str, location: str) -> str | None:
    """Where a feed whose every redirect was permanent is kept from now on. A feed fetched with
    credentials (a password before the host, headers of its own) keeps them, and its marker,
    only on its own origin: a move elsewhere is not followed (the credentials are not sent
    there; the next check asks the old address again)."""
    if "@" not in urlsplit(url.strip()).netloc and not has_marker(url):
        return location
    if origin(url) != origin(location):
        return None
    old, new = urlsplit(url.strip()), urlsplit(location.strip())
    user = old.netloc.rpartition("@")[0]
    host = new.netloc.rpartition("@")[2]
    return urlunsplit(new._replace(netloc=f"{user}@{host}" if user else host,
                                   fragment=old.fragment))


def public_url(url: str) -> str:
    """`url` as it may be shown where others read (a channel, a group): without its user
    name, password, query and fragment when it carries credentials, else unchanged."""
    if not is_private_url(url):
        return url
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, host, parts.path or "/", "", ""))
    return shown + ("?…" if parts.query else "")
