"""A rendered post sent at once rather than through the outbox: /preview shows the newest post of
a feed as a chat would get it. The same forms in the same order as the sender tries them (the
rendered ones, then the last-resort plain text, then title and link), the same request
parameters, and the follow-up as a reply to the first message; as an interactive call, so it
goes ahead of the posts waiting in the chat."""

from __future__ import annotations

from typing import Any

from telegram import Bot

from bot.delivery.outcome import Verdict, api_kwargs, call_for_stage, classify
from bot.models import Delivery, RenderedMessage


async def send_rendered(
    bot: Bot,
    chat_id: int,
    message: RenderedMessage,
    *,
    feed_url: str,
    entry_key: str,
    thread_id: int | None = None,
    silent: bool = False,
    reply_to: int | None = None,
) -> int | None:
    """Send `message` (and its follow-up) to `chat_id` now; the first message's id, or None
    when Telegram refused every form. Errors other than a refused form are raised."""
    delivery = Delivery(
        id="direct", chat_id=chat_id, feed_url=feed_url, entry_key=entry_key, message=message,
        created=0.0, thread_id=thread_id, silent=silent,
    )
    first = await _send_forms(bot, delivery, reply_to)
    if first is not None and message.follow_up is not None:
        delivery.message = message.follow_up
        await _send_forms(bot, delivery, first)
    return first


async def _send_forms(bot: Bot, delivery: Delivery, reply_to: int | None) -> int | None:
    stage = 0
    while (call := call_for_stage(delivery, stage)) is not None:
        kwargs = api_kwargs(call, delivery, reply_to=reply_to)
        try:
            result: Any = await bot.do_api_request(call.method, api_kwargs=kwargs)
        except Exception as exc:
            if classify(exc).verdict is not Verdict.CONTENT:
                raise
            stage += 1
            continue
        first = result[0] if isinstance(result, list) and result else result
        return first.get("message_id") if isinstance(first, dict) else None
    return None
