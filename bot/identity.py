"""Entry identity: which key makes two sightings of a post "the same post"."""

from __future__ import annotations

import hashlib
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid")


def entry_key(
    guid: str | None, link: str | None, title: str, published: datetime | None, summary: str
) -> str:
    """guid/id, else the link, else a hash of title, date and summary."""
    if guid and guid.strip():
        return guid.strip()
    if link and link.strip():
        return normalize_link(link)
    date = published.isoformat() if published else ""
    digest = hashlib.sha256("\x1f".join((title, date, summary)).encode()).hexdigest()[:32]
    return f"sha256:{digest}"


def normalize_link(url: str) -> str:
    """A link in a stable form: lower-case scheme and host, no fragment, no tracking params."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(_TRACKING_PREFIXES)
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def fingerprint(key: str) -> str:
    """Short stable digest of a key, as kept in seen-sets (keeps the database small)."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
