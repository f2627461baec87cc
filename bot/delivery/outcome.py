"""What a Bot API error means for a delivery, and which form of its message to try next (no
I/O; the last-resort forms themselves are rendering: bot.render.fallback)."""

from __future__ import annotations

import enum
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

from bot.models import ApiCall, Delivery
from bot.render.fallback import last_resort_calls


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
    last_resorts = last_resort_calls(delivery.message, delivery.entry_key, delivery.feed_url)
    return last_resorts[extra] if extra < len(last_resorts) else None
