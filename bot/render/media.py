"""What of a post plays or shows as media: audio/video enclosures, albums, link lines (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.i18n import t
from bot.models import Enclosure, Entry
from bot.render.convert import escape

#: Telegram fetches photos by URL up to 5 MB
PICTURE_URL_LIMIT = 5 * 1024 * 1024
ALBUM_MIN, ALBUM_MAX = 2, 10
MAX_LINES = 5
#: what sendAudio plays (other audio would arrive as a file, if at all)
_AUDIO_TYPES = ("audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mp3", "audio/x-mpeg",
                "x-audio/mp3", "audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac")
_AUDIO_EXT = (".mp3", ".m4a")
_VIDEO_TYPES = ("video/mp4", "video/mpeg4", "video/x-m4v", "video/m4v")
_VIDEO_EXT = (".mp4", ".m4v")
_VIDEO_PAGE = re.compile(
    r"^https?://(www\.|m\.)?(youtube\.com/(watch\?|shorts/)|youtu\.be/|vimeo\.com/\d)", re.I
)


_LINE_KEYS = {"audio": "media_listen", "listen": "media_listen", "video": "media_watch",
              "watch": "media_watch"}


@dataclass(frozen=True)
class Playable:
    kind: str  # "audio" | "video" (the Bot API's parameter: sendAudio's audio=, sendVideo's video=)
    url: str
    length: int | None
    #: Telegram may fetch it: its declared size is within the URL limit (or not declared)
    sendable: bool


def playable(entry: Entry, limit: int) -> Playable | None:
    """The post's first audio or video enclosure Telegram can play, if any."""
    for enc in entry.enclosures:
        kind = _kind(enc)
        if kind in ("audio", "video") and _is_web_url(enc.url):
            fits = enc.length is None or enc.length <= 0 or enc.length <= limit
            return Playable(kind, enc.url.strip(), enc.length, fits)
    return None


def _kind(enc: Enclosure) -> str:
    """"audio" or "video" when sendAudio/sendVideo plays it; "listen"/"watch" for other audio or
    video (a link line only); "image"; "" for any other file."""
    mime = enc.type.lower().split(";", 1)[0].strip()
    path = urlsplit(enc.url.strip()).path.lower()
    if mime in _AUDIO_TYPES or (not mime and path.endswith(_AUDIO_EXT)):
        return "audio"
    if mime in _VIDEO_TYPES or (not mime and path.endswith(_VIDEO_EXT)):
        return "video"
    if mime.startswith("audio/"):
        return "listen"
    if mime.startswith("video/"):
        return "watch"
    if mime.startswith("image/"):
        return "image"
    return ""


def enclosure_lines(entry: Entry, lang: str, shown: set[str], *, pictures: bool = True) -> str:
    """One line per enclosure the message does not carry (`shown`) as media or picture:
    "🎧 Listen", "▶ Watch", "📎 file name", with its size (and the episode's length) when known.
    Without `pictures` (the chat turned them off), image enclosures get no line either."""
    lines: list[str] = []
    seen = set(shown)
    for enc in entry.enclosures:
        url = enc.url.strip()
        kind = _kind(enc)
        if url in seen or (kind == "image" and not pictures) or not _is_web_url(url):
            continue
        seen.add(url)
        key = _LINE_KEYS.get(kind, "media_file")
        details = [size_text(enc.length)] if enc.length and enc.length > 0 else []
        if key != "media_file" and entry.duration:
            details.append(duration_text(entry.duration))
        extra = f" ({', '.join(details)})" if details else ""
        lines.append(t(key, lang, url=escape(url, quote=True), name=escape(_file_name(url)),
                       details=escape(extra)))
    return "\n".join(lines[:MAX_LINES])


def album_images(entry: Entry) -> tuple[str, ...]:
    """The pictures of an album (2-10 web URLs Telegram may fetch), else ()."""
    images = tuple(
        url for url in dict.fromkeys(u.strip() for u in entry.images)
        if _is_web_url(url) and not too_big_picture(entry, url)
    )[:ALBUM_MAX]
    return images if len(images) >= ALBUM_MIN else ()


def too_big_picture(entry: Entry, url: str) -> bool:
    """An image enclosure declared larger than Telegram fetches for a photo."""
    return any(
        e.url.strip() == url and (e.length or 0) > PICTURE_URL_LIMIT for e in entry.enclosures
    )


def is_video_page(link: str) -> bool:
    """A YouTube / Vimeo page: Telegram's link preview of it plays the video."""
    return bool(_VIDEO_PAGE.match(link or ""))


def size_text(length: int) -> str:
    mb = length / (1024 * 1024)
    if mb >= 1:
        return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"
    return f"{max(1, round(length / 1024))} KB"


def duration_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _file_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return name[:60] or urlsplit(url).netloc


def _is_web_url(url: str) -> bool:
    return bool(re.match(r"https?://[^\s/]", url.strip(), re.I))
