"""Which pictures of a post are worth showing: pure rules, no I/O.

Feeds carry pictures no reader wants as a post's photo: tracking pixels (declared 1×1 or 0×0,
medium.com/_/stat, feedburner's ~r/…/~4/), feedburner ads and "flare" buttons, gravatar and GitHub
avatars, share-button icons, WordPress smilies and emoji images. `is_junk_picture` tells them apart
by the URL and by what the <img> tag declares; `body_pictures` lists a body's <img> candidates.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin

#: an <img> that declares less than this (width or height) is a pixel, an icon or a smiley
MIN_SIDE = 40

_JUNK_URL = re.compile(
    r"medium\.com/_/stat|(?:feedburner|feedproxy\.google)\.com/~|feedsportal\.com|"
    r"doubleclick\.net|googlesyndication\.com|adserver|/ads?/|[/?&]ad[_-]?id=|"
    r"[/._-]pixel[/._?-]|/pixel$|stats\.wordpress\.com|pixel\.wp\.com|/b\.gif|/stat\?|"
    r"/tracking?/|/beacon|cpx\.php|/1x1\.|spacer\.gif|blank\.gif|clear\.gif|"
    r"gravatar\.com/avatar|avatars\d*\.githubusercontent\.com|/avatars?/|"
    r"s\.w\.org/images/core/emoji|/emoji/|/emojis?/|/smil(?:ies|ey)|/icons?/|/icon_|"
    r"share[-_]?(?:button|icon)|/share/|addtoany\.com|/buttons?/|"
    r"feeds\.wordpress\.com/[^/]+/(?:comments|go|delicious|facebook|twitter|stumble|digg|reddit)/",
    re.IGNORECASE,
)
_JUNK_CLASS = re.compile(r"smiley|emoji|avatar|icon|share|feedflare|tracking|pixel|badge",
                         re.IGNORECASE)
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"([a-zA-Z_:][-\w:.]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))")
_SIDE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", re.IGNORECASE)
_STYLE_SIDE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)\s*px", re.IGNORECASE)


@dataclass(frozen=True)
class Picture:
    url: str
    attrs: Mapping[str, str] = field(default_factory=dict)


def is_junk_picture(url: str, attrs: Mapping[str, str] | None = None) -> bool:
    """Whether a picture is a tracking pixel, an ad, an avatar, an icon or an emoji image."""
    attrs = attrs or {}
    if not url or url.startswith("data:") or _JUNK_URL.search(url):
        return True
    if _JUNK_CLASS.search(attrs.get("class", "")):
        return True
    sides = [_side(attrs.get("width", "")), _side(attrs.get("height", ""))]
    sides += [float(m.group(2)) for m in _STYLE_SIDE.finditer(attrs.get("style", ""))]
    return any(side is not None and side < MIN_SIDE for side in sides)


def _side(value: str) -> float | None:
    match = _SIDE.match(value)
    return float(match.group(1)) if match else None


def body_pictures(body_html: str) -> list[Picture]:
    """Every <img> of an HTML body, in order, with its attributes (src entity-decoded)."""
    found = []
    for tag in _IMG_TAG.findall(body_html or ""):
        attrs = {
            m.group(1).lower(): html.unescape(next(g for g in m.groups()[1:] if g is not None))
            for m in _ATTR.finditer(tag[4:])
        }
        src = attrs.get("src", "").strip() or attrs.get("data-src", "").strip()
        if src:
            found.append(Picture(src, attrs))
    return found


def good_pictures(candidates: list[Picture], base: str) -> list[str]:
    """The candidates that are worth showing, as absolute http(s) URLs, first come first, once
    each."""
    urls: list[str] = []
    for picture in candidates:
        url = picture.url.strip().replace(" ", "%20")
        absolute = urljoin(base, url) if url else ""
        if not absolute.lower().startswith(("http://", "https://")):
            continue
        if is_junk_picture(absolute, picture.attrs) or absolute in urls:
            continue
        urls.append(absolute)
    return urls
