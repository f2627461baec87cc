"""Telegram's documented message rules as a pure validator (no I/O).

`api_call_error(method, params)` answers the `description` the Bot API would return for a send
whose content Telegram rejects (or None). `parse_html` implements the Bot API "HTML style"
parser: Telegram-HTML -> (plain text, entities with UTF-16 offsets). Where the real server is
lenient in ways feedbot must never rely on (unknown attributes, named entities, unsafe hrefs),
this validator is deliberately stricter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

PARSE_PREFIX = "Bad Request: can't parse entities: "

#: tag -> entity type it produces
TAG_TYPES: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

ENTITY_TYPES = frozenset(
    {
        "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number",
        "bold", "italic", "underline", "strikethrough", "spoiler", "blockquote",
        "expandable_blockquote", "code", "pre", "text_link", "text_mention", "custom_emoji",
    }
)

NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
UNSAFE_SCHEMES = ("javascript:", "data:", "vbscript:")
#: what Telegram strips from both ends of a message before counting / storing it
TRIM_CHARS = " \t\r\n\x0b\x0c"

TEXT_METHODS = frozenset({"sendMessage", "editMessageText"})
CAPTION_METHODS = frozenset(
    {"sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendAnimation", "editMessageCaption"}
)
MEDIA_FIELD = {"sendPhoto": "photo", "sendDocument": "document", "sendAudio": "audio",
               "sendVideo": "video"}
#: sendMediaGroup: 2-10 items; photos and videos mix, audio and documents only with their kind
MEDIA_GROUP_MIN, MEDIA_GROUP_MAX = 2, 10
MEDIA_GROUP_TYPES = frozenset({"photo", "video", "audio", "document"})
#: what Telegram accepts as a file by URL (anything else must be a file_id or an upload)
URL_SCHEMES = ("http://", "https://")

_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([A-Za-z][A-Za-z0-9]{0,31}));")
_NAME_RE = re.compile(r"[A-Za-z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[A-Za-z0-9_-]*")


class TelegramParseError(ValueError):
    """Telegram would answer 400 with `description`."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    start: int  # UTF-16 offset in the output
    byte_offset: int
    attrs: dict[str, str]
    language: str = ""


@dataclass
class _HtmlParser:
    src: str
    pos: int = 0
    out: list[str] = field(default_factory=list)
    out_len: int = 0  # UTF-16 units emitted so far
    stack: list[_Open] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, detail: str) -> TelegramParseError:
        return TelegramParseError(PARSE_PREFIX + detail)

    def byte_offset(self, index: int) -> int:
        return len(self.src[:index].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.out_len += utf16_len(text)

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "<":
                self.tag()
            elif ch == "&":
                self.entity()
            else:
                nxt = min(_find(src, "<", self.pos), _find(src, "&", self.pos))
                self.emit(src[self.pos : nxt])
                self.pos = nxt
        if self.stack:
            raise self.fail(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def entity(self) -> None:
        m = _ENTITY_RE.match(self.src, self.pos)
        if m is None:  # a lone '&' is literal text
            self.emit("&")
            self.pos += 1
            return
        dec, hexa, name = m.groups()
        if name is not None:
            if name not in NAMED_ENTITIES:
                raise self.fail(
                    f'Character entity "&{name};" is not supported at byte offset '
                    f"{self.byte_offset(self.pos)}"
                )
            self.emit(NAMED_ENTITIES[name])
        else:
            code = int(dec) if dec is not None else int(hexa, 16)
            if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail(
                    f"Invalid numeric character entity at byte offset {self.byte_offset(self.pos)}"
                )
            self.emit(chr(code))
        self.pos = m.end()

    def tag(self) -> None:
        if self.src.startswith("</", self.pos):
            self.end_tag()
        else:
            self.start_tag()

    def end_tag(self) -> None:
        begin = self.pos
        m = _NAME_RE.match(self.src, begin + 2)
        assert m is not None
        name = m.group().lower()
        close = self.src.find(">", m.end())
        if close < 0 or self.src[m.end() : close].strip():
            raise self.fail(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        if not self.stack:
            raise self.fail(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        top = self.stack[-1]
        if top.tag != name:
            raise self.fail(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{top.tag}>", found "</{name}>"'
            )
        self.stack.pop()
        self.pos = close + 1
        self.close_entity(top)

    def start_tag(self) -> None:
        begin = self.pos
        m = _NAME_RE.match(self.src, begin + 1)
        assert m is not None
        name = m.group().lower()
        if name not in TAG_TYPES:
            raise self.fail(
                f'Unsupported start tag "{name}" at byte offset {self.byte_offset(begin)}'
            )
        self.pos = m.end()
        attrs = self.attributes(name, begin)
        self.check_attrs(name, attrs, begin)
        self.check_nesting(name, begin)
        self.stack.append(_Open(name, self.out_len, self.byte_offset(begin), attrs))

    def attributes(self, tag: str, begin: int) -> dict[str, str]:
        src = self.src
        attrs: dict[str, str] = {}
        while True:
            while self.pos < len(src) and src[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(src):
                raise self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            if src[self.pos] == ">":
                self.pos += 1
                return attrs
            m = _ATTR_NAME_RE.match(src, self.pos)
            assert m is not None
            attr = m.group().lower()
            if not attr:
                raise self.fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self.byte_offset(begin)}"
                )
            self.pos = m.end()
            attrs[attr] = self.attr_value(tag, begin)

    def attr_value(self, tag: str, begin: int) -> str:
        src = self.src
        while self.pos < len(src) and src[self.pos].isspace():
            self.pos += 1
        if self.pos >= len(src) or src[self.pos] != "=":
            return ""  # boolean attribute
        self.pos += 1
        while self.pos < len(src) and src[self.pos].isspace():
            self.pos += 1
        if self.pos >= len(src):
            raise self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        quote = src[self.pos]
        if quote in "\"'":
            end = src.find(quote, self.pos + 1)
            if end < 0:
                raise self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            raw, self.pos = src[self.pos + 1 : end], end + 1
        else:
            end = self.pos
            while end < len(src) and not src[end].isspace() and src[end] != ">":
                end += 1
            raw, self.pos = src[self.pos : end], end
        return self.decode_attr(raw, tag, begin)

    def decode_attr(self, raw: str, tag: str, begin: int) -> str:
        def sub(m: re.Match[str]) -> str:
            dec, hexa, name = m.groups()
            if name is not None:
                if name not in NAMED_ENTITIES:
                    raise self.fail(
                        f'Character entity "&{name};" is not supported in the tag "{tag}" '
                        f"at byte offset {self.byte_offset(begin)}"
                    )
                return NAMED_ENTITIES[name]
            code = int(dec) if dec is not None else int(hexa, 16)
            if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail(f"Invalid numeric character entity in the tag \"{tag}\"")
            return chr(code)

        return _ENTITY_RE.sub(sub, raw)

    def check_attrs(self, tag: str, attrs: dict[str, str], begin: int) -> None:
        allowed = {
            "a": {"href"},
            "code": {"class"},
            "span": {"class"},
            "blockquote": {"expandable"},
            "tg-emoji": {"emoji-id"},
        }.get(tag, set())
        at = self.byte_offset(begin)
        for attr in attrs:
            if attr not in allowed:
                raise self.fail(
                    f'Unsupported attribute "{attr}" in the tag "{tag}" at byte offset {at}'
                )
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise self.fail(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        if tag == "code" and "class" in attrs and not attrs["class"].startswith("language-"):
            cls = attrs["class"]
            raise self.fail(f'Unsupported class "{cls}" in the tag "code" at byte offset {at}')
        if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise self.fail(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {at}')
        if tag == "a" and is_unsafe_url(attrs.get("href", "")):
            raise self.fail(f'Unsupported URL scheme in the tag "a" at byte offset {at}')

    def check_nesting(self, tag: str, begin: int) -> None:
        at = self.byte_offset(begin)
        open_tags = [o.tag for o in self.stack]
        if "code" in open_tags or "pre" in open_tags:
            inside = open_tags[-1]
            code_in_pre = tag == "code" and open_tags[-1] == "pre" and not self.pre_has_text()
            if not code_in_pre:
                raise self.fail(
                    f'Tag "{tag}" can\'t be nested in tag "{inside}" at byte offset {at}'
                )
        if tag == "a" and "a" in open_tags:
            raise self.fail(f'Tag "a" can\'t be nested in tag "a" at byte offset {at}')
        if tag == "blockquote" and "blockquote" in open_tags:
            raise self.fail(
                f'Tag "blockquote" can\'t be nested in tag "blockquote" at byte offset {at}'
            )

    def tail(self, units: int) -> str:
        """The last `units` UTF-16 code units of the output."""
        data = "".join(self.out).encode("utf-16-le", "surrogatepass")
        return data[len(data) - 2 * units :].decode("utf-16-le", "surrogatepass")

    def pre_has_text(self) -> bool:
        return self.out_len > self.stack[-1].start

    def close_entity(self, item: _Open) -> None:
        length = self.out_len - item.start
        parent = self.stack[-1] if self.stack else None
        if item.tag == "code" and parent is not None and parent.tag == "pre":
            parent.language = item.attrs.get("class", "").removeprefix("language-")
            return  # folded into the enclosing pre entity
        if length == 0:
            return  # Telegram drops empty entities
        entity: dict[str, Any] = {
            "type": TAG_TYPES[item.tag],
            "offset": item.start,
            "length": length,
        }
        if item.tag == "a":
            entity["url"] = item.attrs.get("href") or self.tail(length)
        elif item.tag == "pre" and item.language:
            entity["language"] = item.language
        elif item.tag == "blockquote" and "expandable" in item.attrs:
            entity["type"] = "expandable_blockquote"
        elif item.tag == "tg-emoji":
            entity["custom_emoji_id"] = item.attrs["emoji-id"]
        self.entities.append(entity)


def _find(text: str, ch: str, start: int) -> int:
    i = text.find(ch, start)
    return len(text) if i < 0 else i


def is_unsafe_url(url: str) -> bool:
    cleaned = "".join(c for c in url if not c.isspace() and ord(c) >= 32).lower()
    return cleaned.startswith(UNSAFE_SCHEMES)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram-HTML -> (plain text, entities); raises TelegramParseError."""
    return _HtmlParser(text).run()


def check_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    """Validate an explicit `entities=` list against `text`; returns it decoded."""
    if isinstance(entities, str):
        try:
            entities = json.loads(entities)
        except ValueError as exc:
            raise TelegramParseError(PARSE_PREFIX + "entities must be a JSON array") from exc
    if not isinstance(entities, list):
        raise TelegramParseError(PARSE_PREFIX + "entities must be an array")
    total = utf16_len(text)
    for ent in entities:
        _check_entity(ent, total)
    return entities


def _check_entity(ent: Any, total: int) -> None:
    if not isinstance(ent, dict):
        raise TelegramParseError(PARSE_PREFIX + "entity must be an object")
    kind, offset, length = ent.get("type"), ent.get("offset"), ent.get("length")
    if kind not in ENTITY_TYPES:
        raise TelegramParseError(f"Bad Request: unsupported entity type \"{kind}\"")
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length <= 0:
        raise TelegramParseError(PARSE_PREFIX + "entity offset/length must be positive integers")
    if offset + length > total:
        raise TelegramParseError(PARSE_PREFIX + "entity is out of the text bounds")
    if kind == "text_link":
        url = ent.get("url")
        if not url or is_unsafe_url(str(url)):
            raise TelegramParseError(PARSE_PREFIX + "wrong URL in text_link entity")
    if kind == "text_mention" and not isinstance(ent.get("user"), dict):
        raise TelegramParseError(PARSE_PREFIX + "text_mention entity must have a user")
    if kind == "custom_emoji" and not ent.get("custom_emoji_id"):
        raise TelegramParseError(PARSE_PREFIX + "custom_emoji entity must have custom_emoji_id")


def trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips leading/trailing whitespace and shifts/clips entities accordingly."""
    stripped = text.lstrip(TRIM_CHARS)
    shift = utf16_len(text) - utf16_len(stripped)
    stripped = stripped.rstrip(TRIM_CHARS)
    total = utf16_len(stripped)
    out = []
    for ent in entities:
        start = max(ent["offset"] - shift, 0)
        end = min(ent["offset"] + ent["length"] - shift, total)
        if end > start:
            out.append({**ent, "offset": start, "length": end - start})
    return stripped, out


def message_content(method: str, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text (or caption) and entities Telegram would store for this call.

    Raises TelegramParseError with the API's description when the content is rejected.
    """
    is_caption = method not in TEXT_METHODS
    key = "caption" if is_caption else "text"
    raw = params.get(key)
    raw = "" if raw is None else str(raw)
    mode = str(params.get("parse_mode") or "")
    given = params.get("caption_entities" if is_caption else "entities")
    if mode and given not in (None, "", "[]", []):
        raise TelegramParseError("Bad Request: can't use parse_mode and entities together")
    if mode.lower() == "html":
        text, entities = parse_html(raw)
    elif mode and mode.lower() not in ("markdown", "markdownv2"):
        raise TelegramParseError("Bad Request: unsupported parse_mode")
    else:  # Markdown modes are only length-checked on the raw text
        text = raw
        entities = check_entities(raw, given) if given not in (None, "") else []
    text, entities = trim(text, entities)
    limit, too_long = (
        (CAPTION_LIMIT, "Bad Request: message caption is too long")
        if is_caption
        else (TEXT_LIMIT, "Bad Request: message is too long")
    )
    if not text and not is_caption:
        raise TelegramParseError("Bad Request: message text is empty")
    if utf16_len(text) > limit:
        raise TelegramParseError(too_long)
    return text, entities


def api_call_error(method: str, params: dict[str, Any]) -> str | None:
    """The `description` Telegram would answer for a content-rejected call, else None."""
    if method == "sendMediaGroup":
        return media_group_error(params.get("media"))
    if method not in TEXT_METHODS and method not in CAPTION_METHODS:
        return None
    media = MEDIA_FIELD.get(method)
    if media and not params.get(media):
        return f"Bad Request: there is no {media} in the request"
    if media and not isinstance(params[media], str | dict):
        return "Bad Request: wrong file identifier/HTTP URL specified"
    thumbnail = params.get("thumbnail")
    if thumbnail is not None and not isinstance(thumbnail, str | dict):
        return "Bad Request: wrong thumbnail"
    for key in ("duration", "width", "height"):
        if key in params and not isinstance(params[key], int):
            return f"Bad Request: field \"{key}\" must be of type Integer"
    try:
        message_content(method, params)
    except TelegramParseError as exc:
        return exc.description
    return None


def media_group_error(media: Any) -> str | None:
    """sendMediaGroup's rules: an array of 2-10 InputMedia, photos/videos together or audio or
    documents alone, each with its media and a valid caption of at most 1024 characters.
    (Telegram shows an album's caption only when it is on the first item, or on one item.)"""
    if isinstance(media, str):
        try:
            media = json.loads(media)
        except ValueError:
            return "Bad Request: can't parse media JSON object"
    if not isinstance(media, list):
        return "Bad Request: can't parse media JSON object"
    if not MEDIA_GROUP_MIN <= len(media) <= MEDIA_GROUP_MAX:
        return "Bad Request: wrong number of media in the group: 2-10 are allowed"
    kinds = set()
    for item in media:
        if not isinstance(item, dict) or item.get("type") not in MEDIA_GROUP_TYPES:
            return "Bad Request: unsupported media type in the group"
        if not isinstance(item.get("media"), str) or not item["media"]:
            return "Bad Request: there is no media in the request"
        kinds.add("visual" if item["type"] in ("photo", "video") else item["type"])
        try:
            message_content("sendPhoto", item)
        except TelegramParseError as exc:
            return exc.description
    if len(kinds) > 1:
        return "Bad Request: audio and documents can't be mixed with other media in a group"
    return None


def album_caption(media: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The caption an album shows under it (the first item's), as Telegram would store it."""
    return message_content("sendPhoto", media[0]) if media else ("", [])
