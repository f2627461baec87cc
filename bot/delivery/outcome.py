"""What a Bot API error means for a delivery, and the last-resort forms of a message (no I/O)."""

from __future__ import annotations

import enum
import html
import re
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram import (
    InputMedia,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.models import ApiCall, Delivery, RenderedMessage

TEXT_LIMIT = 4096
TITLE_LIMIT = 300


class Verdict(enum.Enum):
    RATE_LIMITED = "rate_limited"  # 429: wait exactly retry_after, then the same call again
    MIGRATED = "migrated"  # group became a supergroup: move the chat, resend
    CHAT_GONE = "chat_gone"  # blocked / kicked / deactivated / not found: count, maybe pause
    NO_THREAD = "no_thread"  # forum topic deleted: resend to the chat's main thread
    CONTENT = "content"  # Telegram refuses this form of the message: next fallback
    TRANSIENT = "transient"  # timeouts, network, 5xx, anything unknown: back off, retry forever


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    detail: str
    retry_after: float = 0.0
    new_chat_id: int = 0


#: 400 answers that are about the chat, not about the message
_CHAT_GONE_400 = (
    "chat not found",
    "user not found",
    "peer_id_invalid",
    "group chat was deactivated",
    "chat_write_forbidden",
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "bot was kicked",
    "bot is not a member",
    "user is deactivated",
)
_NO_THREAD_400 = ("message thread not found", "topic_deleted", "topic deleted")


def retry_after_seconds(value: int | float | timedelta) -> float:
    """PTB 22 gives RetryAfter.retry_after as int seconds or timedelta (PTB_TIMEDELTA)."""
    if isinstance(value, timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value))


def classify(exc: Exception) -> Outcome:
    """Map a send failure to what the sender should do. Order matters: BadRequest and TimedOut
    are NetworkError subclasses in PTB."""
    detail = str(exc)
    if isinstance(exc, RetryAfter):
        return Outcome(Verdict.RATE_LIMITED, detail, retry_after=read_retry_after(exc))
    if isinstance(exc, ChatMigrated):
        return Outcome(Verdict.MIGRATED, detail, new_chat_id=int(exc.new_chat_id))
    if isinstance(exc, Forbidden):
        return Outcome(Verdict.CHAT_GONE, detail)
    if isinstance(exc, BadRequest):
        low = detail.lower()
        if any(marker in low for marker in _CHAT_GONE_400):
            return Outcome(Verdict.CHAT_GONE, detail)
        if any(marker in low for marker in _NO_THREAD_400):
            return Outcome(Verdict.NO_THREAD, detail)
        return Outcome(Verdict.CONTENT, detail)
    if isinstance(exc, NetworkError | TelegramError):
        return Outcome(Verdict.TRANSIENT, detail or type(exc).__name__)
    return Outcome(Verdict.TRANSIENT, f"{type(exc).__name__}: {detail}")


def read_retry_after(exc: RetryAfter) -> float:
    # Reading the attribute warns about the int -> timedelta migration; the value is what we need.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return retry_after_seconds(exc.retry_after)


def api_kwargs(
    call: ApiCall, delivery: Delivery, *, with_thread: bool = True, reply_to: int | None = None
) -> dict[str, Any]:
    """The exact parameters of the request: the rendered call plus where it goes."""
    kwargs: dict[str, Any] = {**call.params, "chat_id": delivery.chat_id}
    if isinstance(kwargs.get("media"), list):  # PTB sends an album's items only as InputMedia
        kwargs["media"] = [input_media(item) for item in kwargs["media"]]
    if with_thread and delivery.thread_id is not None:
        kwargs["message_thread_id"] = delivery.thread_id
    if delivery.silent:
        kwargs["disable_notification"] = True
    if reply_to is not None:  # the message may since be deleted: send anyway
        kwargs["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
    return kwargs


_INPUT_MEDIA: dict[str, type[InputMedia]] = {
    "photo": InputMediaPhoto, "video": InputMediaVideo, "audio": InputMediaAudio,
    "document": InputMediaDocument,
}
_INPUT_MEDIA_FIELDS = ("caption", "parse_mode", "has_spoiler", "show_caption_above_media")


def input_media(item: dict[str, Any]) -> InputMedia:
    """One album item of a stored sendMediaGroup call as PTB's InputMedia."""
    kind = _INPUT_MEDIA.get(str(item.get("type")), InputMediaPhoto)
    known = {k: item[k] for k in _INPUT_MEDIA_FIELDS if k in item}
    if kind in (InputMediaAudio, InputMediaDocument):
        known.pop("has_spoiler", None)
        known.pop("show_caption_above_media", None)
    return kind(media=str(item.get("media") or ""), **known)


def call_for_stage(delivery: Delivery, stage: int) -> ApiCall | None:
    """Stage 0..n-1 are the rendered attempts; then a cut plain text; then title + link."""
    attempts = delivery.message.attempts
    if stage < len(attempts):
        return attempts[stage]
    extra = stage - len(attempts)
    if extra == 0:
        return ApiCall("sendMessage", {"text": cut_utf16(plain_text(delivery.message), TEXT_LIMIT)})
    if extra == 1:
        return ApiCall("sendMessage", {"text": title_and_link(delivery)})
    return None


def plain_text(message: RenderedMessage) -> str:
    """The text of the safest rendered form, without markup; never empty."""
    return _bare_text(message) or _first_link(message) or "📰"  # no words: any chat's language


def _bare_text(message: RenderedMessage) -> str:
    last = message.attempts[-1].params
    text = str(last.get("text") or last.get("caption") or "")
    if str(last.get("parse_mode") or "").lower() == "html":
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return text.strip()


def title_and_link(delivery: Delivery) -> str:
    lines = [ln.strip() for ln in _bare_text(delivery.message).splitlines() if ln.strip()]
    title = cut_utf16(lines[0], TITLE_LIMIT) if lines else ""
    link = _first_link(delivery.message)
    if not link and delivery.entry_key.startswith(("http://", "https://")):
        link = delivery.entry_key
    parts = [title] + ([link] if link and link not in title else [])
    return "\n".join(p for p in parts if p) or f"📰 {delivery.feed_url}"


_URL_RE = re.compile(r"https?://[^\s<>\"']+")


def _first_link(message: RenderedMessage) -> str:
    for call in message.attempts:
        preview = call.params.get("link_preview_options")
        # a picture shown above the text as its preview is not the post's link
        if isinstance(preview, dict) and isinstance(preview.get("url"), str) and not preview.get(
            "show_above_text"
        ):
            return str(preview["url"])
    for call in message.attempts:
        for key in ("text", "caption"):
            found = _URL_RE.search(html.unescape(str(call.params.get(key) or "")))
            if found:
                return found.group().rstrip(".,;:!?)")
    return ""


def cut_utf16(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units (Telegram's measure), with an ellipsis."""
    if len(text.encode("utf-16-le")) // 2 <= limit:
        return text
    units = 0
    out = []
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if units + size > limit - 1:
            break
        out.append(ch)
        units += size
    return "".join(out).rstrip() + "…"
