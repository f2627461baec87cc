"""Entry identity: which key makes two sightings of a post "the same post".

An entry's key is its guid, else its link, else a hash of its text. Some feeds give their posts
a new guid on every fetch, so each entry also gets one second identity, chosen per feed:
- its normalised link, where no other entry of the feed has that link;
- else its title, date and link together, where no other entry has all three the same (feeds
  whose every item links to one page);
- else none. A post whose guid changes but whose second identity does not is the same post.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
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


def title_date_link_key(title: str, published: datetime | None, link: str) -> str:
    """The identity a post's title, date and link give it together ("" without all three)."""
    if not (title.strip() and published and link.strip()):
        return ""
    parts = (normalize_link(link), title.strip(), published.isoformat())
    return "tdl:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


#: which second identity an entry gets (see the module's docstring)
NO_SECOND, BY_LINK, BY_TITLE_DATE_LINK = 0, 1, 2


def second_identities(
    link_keys: Sequence[str], key_is_link: Sequence[bool], tdl_keys: Sequence[str]
) -> list[int]:
    """Per entry of one feed: its link where unique in the feed (and not already its key), else
    its title-date-link key where unique (and its key is not the link), else nothing. Works on
    keys or on their prints alike; "" means the entry has no such key."""
    links, tdls = Counter(k for k in link_keys if k), Counter(k for k in tdl_keys if k)
    choices = []
    for link, is_link, tdl in zip(link_keys, key_is_link, tdl_keys, strict=True):
        if is_link:
            choices.append(NO_SECOND)
        elif link and links[link] == 1:
            choices.append(BY_LINK)
        elif tdl and tdls[tdl] == 1:
            choices.append(BY_TITLE_DATE_LINK)
        else:
            choices.append(NO_SECOND)
    return choices
