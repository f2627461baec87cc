"""A fake Telegram Bot API served over real HTTP on loopback, driven from the test thread.

    api = FakeBotApi(); api.start()
    bot = telegram.Bot(TOKEN, base_url=f"{api.url}/bot", base_file_url=f"{api.url}/file/bot")

Requests arrive as POST /bot{token}/{method} (urlencoded, multipart or JSON). Every call is
recorded; sends are validated with telegram_rules and, with enforce_limits=True, rate limited.
Updates wait for getUpdates, or, once setWebhook registered a loopback URL, are posted to it in
order (getUpdates then answers 409, as Telegram's does).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes._http import LoopbackServer, QuietHandler
from tests.fakes.telegram_rules import album_caption, api_call_error, message_content
from tests.fakes.webhook import Push, Webhook, WebhookRefused, post_update

TOKEN = "123456789:TEST-feedbot-token"
ANONYMOUS_ADMIN_ID = 1087968824  # Telegram's "GroupAnonymousBot"
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendAudio", "sendVideo", "sendMediaGroup"}
)
#: the parameter each send method takes its file in (a URL, a file_id or an upload)
FILE_PARAM = {"sendPhoto": "photo", "sendDocument": "document", "sendAudio": "audio",
              "sendVideo": "video"}
#: params PTB sends as plain strings; everything else it JSON-encodes
STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "photo", "document", "callback_query_id", "file_id",
        "audio", "video", "thumbnail", "performer",
        "url", "language_code", "title", "description", "data", "inline_message_id",
        "business_connection_id", "message_effect_id", "custom_title", "secret_token",
    }
)
BLOCK_REASONS = ("blocked", "kicked", "deactivated", "not_found")
ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories",
)


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
        content: bool = False,
    ) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters
        #: rejected because of the message content (not the chat, limits, ...)
        self.content = content


@dataclass
class SentMessage:
    chat_id: int
    method: str
    params: dict[str, Any]
    #: the text/caption parameter exactly as sent (HTML source when parse_mode=HTML)
    text_or_caption: str
    message_id: int
    thread_id: int | None
    at: float
    #: what Telegram would display: parsed, trimmed text and its entities
    plain: str = ""
    entities: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CallRecord:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    description: str = ""
    #: Telegram refused the content (bad HTML, too long, bad photo URL): not delivered
    rejected: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class FailRule:
    method: str
    error_code: int | None  # None: answer normally (after `delay`)
    description: str
    times: int
    chat_id: int | None
    retry_after: int | None
    delay: float


@dataclass
class ChatState:
    id: int
    type: str
    title: str = ""
    username: str | None = None
    admins: tuple[int, ...] = ()
    bot_rights: dict[str, bool] = field(default_factory=dict)
    is_forum: bool = False
    bot_status: str = "member"
    blocked: str | None = None
    deleted_threads: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.title or f"User{self.id}"
        else:
            data["title"] = self.title or f"Chat {self.id}"
        if self.username:
            data["username"] = self.username
        if self.is_forum:
            data["is_forum"] = True
        return data


def user_dict(user_id: int, language_code: str = "en") -> dict[str, Any]:
    return {
        "id": user_id, "is_bot": False, "first_name": f"User{user_id}",
        "language_code": language_code,
    }


class RateLimiter:
    """Telegram's documented limits: ~30 msg/s per bot, 1 msg/s per private chat (burst of 3),
    20 msg/min per group or channel."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.global_window: deque[float] = deque()
        self.group_windows: dict[int, deque[float]] = {}
        self.private_buckets: dict[int, tuple[float, float]] = {}  # chat -> (tokens, at)

    def acquire(self, chat_id: int, private: bool) -> int | None:
        """Record a send and return None, or return the whole seconds to wait."""
        now = self.clock()
        waits = [_window_wait(self.global_window, now, 30, 1.0)]
        if private:
            tokens = self._tokens(chat_id, now)
            waits.append(0.0 if tokens >= 1 else 1 - tokens)
        else:
            window = self.group_windows.setdefault(chat_id, deque())
            waits.append(_window_wait(window, now, 20, 60.0))
        wait = max(waits)
        if wait > 0:
            return max(1, math.ceil(wait))
        self.global_window.append(now)
        if private:
            self.private_buckets[chat_id] = (self._tokens(chat_id, now) - 1, now)
        else:
            self.group_windows[chat_id].append(now)
        return None

    def _tokens(self, chat_id: int, now: float) -> float:
        tokens, at = self.private_buckets.get(chat_id, (3.0, now))
        return min(3.0, tokens + (now - at))


def _window_wait(window: deque[float], now: float, limit: int, span: float) -> float:
    while window and window[0] <= now - span:
        window.popleft()
    return window[0] + span - now if len(window) >= limit else 0.0


class FakeBotApi:
    def __init__(
        self,
        token: str = TOKEN,
        *,
        enforce_limits: bool = False,
        clock: Callable[[], float] = time.monotonic,
        bot_username: str = "feedbot_test_bot",
        latency: float = 0.0,
    ) -> None:
        self.token = token
        #: seconds every call waits before it is handled, like a round trip to the real API
        self.latency = latency
        #: send calls being handled now, and the most seen at once (overall / for one chat)
        self.in_flight = 0
        self.most_in_flight = 0
        self.most_in_flight_per_chat = 0
        self._chat_in_flight: dict[str, int] = {}
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.enforce_limits = enforce_limits
        self.clock = clock
        self.count_429 = 0
        self._cond = threading.Condition(threading.RLock())
        self._limiter = RateLimiter(clock)
        self._chats: dict[int, ChatState] = {}
        self._migrated: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_message_id: dict[int, itertools.count[int]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._file_ids = itertools.count(1)
        self._fail_rules: list[FailRule] = []
        self._rejected_photo_urls: list[str] = []
        self._rejected_file_urls: list[str] = []
        self._commands: dict[str, list[Any]] = {}
        self._user_languages: dict[int, str] = {}
        self._calls: list[CallRecord] = []
        self._delivered: list[SentMessage] = []
        self._webhook: Webhook | None = None
        self._pushes: list[Push] = []
        self._pusher = threading.Thread(target=self._push_loop, name="webhook-pusher", daemon=True)
        self._server = LoopbackServer(_BotApiHandler, self)

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return self._server.base_url

    def start(self) -> FakeBotApi:
        self._server.start()
        self._pusher.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._server.stopping.set()
            self._cond.notify_all()
        self._server.stop()
        if self._pusher.is_alive():
            self._pusher.join(timeout=15)

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- scenario: chats
    def add_chat(
        self,
        chat_id: int,
        type: str = "group",
        title: str = "",
        username: str | None = None,
        admins: tuple[int, ...] = (),
        bot_rights: dict[str, bool] | None = None,
        is_forum: bool = False,
    ) -> None:
        """bot_rights=None: the bot is a plain member (in a channel: an admin allowed to post)."""
        if bot_rights is None and type == "channel":
            bot_rights = {"can_post_messages": True}
        with self._cond:
            self._chats[chat_id] = ChatState(
                chat_id, type, title, username, tuple(admins), dict(bot_rights or {}),
                is_forum, "administrator" if bot_rights else "member",
            )

    def block(self, chat_id: int, reason: str = "blocked") -> None:
        if reason not in BLOCK_REASONS:
            raise ValueError(f"reason must be one of {BLOCK_REASONS}")
        with self._cond:
            self._chat(chat_id).blocked = reason

    def unblock(self, chat_id: int) -> None:
        with self._cond:
            self._chat(chat_id).blocked = None

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Later sends into this forum topic answer 400 "message thread not found"."""
        with self._cond:
            self._chat(chat_id).deleted_threads.add(thread_id)

    def migrate(self, old_id: int, new_id: int) -> None:
        with self._cond:
            old = self._chat(old_id)
            self._chats[new_id] = ChatState(
                new_id, "supergroup", old.title, old.username, old.admins, dict(old.bot_rights),
                old.is_forum, old.bot_status,
            )
            self._migrated[old_id] = new_id
            self._queue_message(old, {"migrate_to_chat_id": new_id}, self._first_admin(old))
            self._queue_message(
                self._chats[new_id], {"migrate_from_chat_id": old_id}, self._first_admin(old)
            )

    # ---------------------------------------------------------------- scenario: users
    def set_user_language(self, user_id: int, language_code: str) -> None:
        """The user's Telegram app language (`from.language_code` of their updates; "en")."""
        with self._cond:
            self._user_languages[user_id] = language_code

    def _user_dict(self, user_id: int) -> dict[str, Any]:
        return user_dict(user_id, self._user_languages.get(user_id, "en"))

    def send_text(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        thread_id: int | None = None,
        sender_chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """A user (or channel / anonymous admin) writes `text`; queues the update."""
        extra = _text_message(text)
        return self._user_message(chat_id, extra, user_id, thread_id, sender_chat_id, reply_to)

    def push_text(self, chat_id: int, text: str, *, secret: str | None) -> int:
        """What a stranger posts to the registered webhook: a text message update sent with
        `secret` in the secret header (None: no header). Nothing is queued; the HTTP status."""
        with self._cond:
            hook = self._webhook
            if hook is None:
                raise AssertionError("no webhook is set")
            chat = self._chat(chat_id)
            update = {
                "update_id": next(self._update_ids),
                **self._message_payload(chat, _text_message(text), None),
            }
        return post_update(hook.url, update, secret)

    def send_document(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        caption: str | None = None,
        user_id: int | None = None,
        mime_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        with self._cond:
            file_id = self._store_file(f"documents/{filename}", content)
        doc = {
            "file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": filename,
            "mime_type": mime_type, "file_size": len(content),
        }
        extra: dict[str, Any] = {"document": doc}
        if caption:
            extra["caption"] = caption
        return self._user_message(chat_id, extra, user_id, None, None, None)

    def press_button(
        self, chat_id: int, message_id: int, data: str, user_id: int | None = None
    ) -> dict[str, Any]:
        with self._cond:
            chat = self._chat(chat_id)
            message = self._messages.get((chat_id, message_id)) or {
                "message_id": message_id, "date": int(time.time()), "chat": chat.as_dict(),
            }
            query = {
                "id": str(next(self._file_ids)),
                "from": self._user_dict(self._default_user(chat, user_id)),
                "message": message,
                "chat_instance": str(chat_id),
                "data": data,
            }
            self._queue_update({"callback_query": query})
            return query

    def bot_membership(
        self, chat_id: int, new_status: str, by_user: int | None = None
    ) -> dict[str, Any]:
        """The bot was blocked/kicked/added/promoted: queues a my_chat_member update."""
        with self._cond:
            chat = self._chat(chat_id)
            old_status, chat.bot_status = chat.bot_status, new_status
            if new_status in ("kicked", "left"):
                chat.blocked = "blocked" if chat.type == "private" else "kicked"
            elif new_status in ("member", "administrator"):
                chat.blocked = None
            change = {
                "chat": chat.as_dict(),
                "from": self._user_dict(self._default_user(chat, by_user)),
                "date": int(time.time()),
                "old_chat_member": self._member(chat, self.bot_id, old_status),
                "new_chat_member": self._member(chat, self.bot_id, new_status),
            }
            self._queue_update({"my_chat_member": change})
            return change

    # ---------------------------------------------------------------- scenario: failures
    def fail_next(
        self,
        method: str,
        error_code: int | None = 500,
        description: str = "Internal Server Error",
        times: int = 1,
        chat_id: int | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next `times` calls of `method` (to `chat_id`, if given) wait `delay` seconds and
        then fail with error_code/description; error_code=None answers normally after the delay
        (a client read timeout shorter than `delay` then sees a timeout although it was sent)."""
        with self._cond:
            self._fail_rules.append(
                FailRule(method, error_code, description, times, chat_id, retry_after, delay)
            )

    def reject_photo_urls(self, substring: str) -> None:
        with self._cond:
            self._rejected_photo_urls.append(substring)

    def reject_file_urls(self, substring: str) -> None:
        """Refuse every file given by a URL containing `substring` (audio, video, photo, album
        item), as Telegram does when it cannot fetch it or it is too large."""
        with self._cond:
            self._rejected_file_urls.append(substring)

    # ---------------------------------------------------------------- inspection
    def delivered(self, chat_id: int | None = None) -> list[SentMessage]:
        with self._cond:
            return [m for m in self._delivered if chat_id is None or m.chat_id == chat_id]

    def calls(self, method: str | None = None) -> list[CallRecord]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def rejected(self) -> list[CallRecord]:
        return [c for c in self.calls() if c.rejected]

    def pending_updates(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._updates)

    def webhook(self) -> Webhook | None:
        """What setWebhook registered (None: updates wait for getUpdates)."""
        with self._cond:
            return self._webhook

    def pushes(self) -> list[Push]:
        """Every post of a queued update to the webhook, with the status it got."""
        with self._cond:
            return list(self._pushes)

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """Current state of a message (after edits), None once deleted."""
        with self._cond:
            return self._messages.get((chat_id, message_id))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block the calling thread until predicate() holds; AssertionError on timeout.
        Never call this from the thread running the bot's event loop (use await_for)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"condition not met within {timeout}s")

    def wait_delivered(
        self, n: int, chat_id: int | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        try:
            self.wait_for(lambda: len(self.delivered(chat_id)) >= n, timeout)
        except AssertionError:
            got = len(self.delivered(chat_id))
            raise AssertionError(f"expected {n} deliveries to {chat_id}, got {got}") from None
        return self.delivered(chat_id)

    # the brief's interface takes a timeout; asyncio.timeout would not fit a polling helper
    async def await_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    async def await_delivered(
        self, n: int, chat_id: int | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        try:
            await self.await_for(lambda: len(self.delivered(chat_id)) >= n, timeout)
        except AssertionError:
            got = len(self.delivered(chat_id))
            raise AssertionError(f"expected {n} deliveries to {chat_id}, got {got}") from None
        return self.delivered(chat_id)

    # ---------------------------------------------------------------- request handling
    def handle_call(self, token: str, method_name: str, params: dict[str, Any]) -> tuple[int, Any]:
        """-> (HTTP status, JSON body). Runs on a server thread."""
        if token != self.token:
            return 401, _error(401, "Unauthorized")
        handler = _METHODS.get(method_name.lower())
        if handler is None:
            return 404, _error(404, "Not Found")
        method = handler.__name__.removeprefix("_m_")
        record = CallRecord(method, params, self.clock())
        with self._cond:
            self._calls.append(record)
            rule = self._take_fail_rule(method, params)
        chat_key = str(params.get("chat_id")) if method in SEND_METHODS else None
        with self._cond:
            self._note_in_flight(chat_key, +1)
        try:
            return self._handle_timed(handler, method, params, rule, record)
        finally:
            with self._cond:
                self._note_in_flight(chat_key, -1)

    def _note_in_flight(self, chat_key: str | None, step: int) -> None:
        if chat_key is None:
            return
        self.in_flight += step
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        now = self._chat_in_flight.get(chat_key, 0) + step
        self._chat_in_flight[chat_key] = now
        self.most_in_flight_per_chat = max(self.most_in_flight_per_chat, now)

    def _handle_timed(
        self,
        handler: Callable[[FakeBotApi, dict[str, Any]], Any],
        method: str,
        params: dict[str, Any],
        rule: FailRule | None,
        record: CallRecord,
    ) -> tuple[int, Any]:
        # half the round trip before the server sees the call, half for its answer to come back
        delay = self.latency / 2 if method != "getUpdates" else 0.0
        if delay and self._server.stopping.wait(delay):
            return 503, _error(503, "Service Unavailable: stopping")
        status, body = self._run(handler, method, params, rule, record)
        with self._cond:
            record.status = status
            record.description = body.get("description", "")
            if status == 429:
                self.count_429 += 1
            self._cond.notify_all()
        if delay:
            self._server.stopping.wait(delay)
        return status, body

    def _run(
        self,
        handler: Callable[[FakeBotApi, dict[str, Any]], Any],
        method: str,
        params: dict[str, Any],
        rule: FailRule | None,
        record: CallRecord,
    ) -> tuple[int, dict[str, Any]]:
        if rule is not None and rule.delay and self._server.stopping.wait(rule.delay):
            return 503, _error(503, "Service Unavailable: stopping")
        if rule is not None and rule.error_code is not None:
            extra = {"retry_after": rule.retry_after} if rule.retry_after is not None else None
            return rule.error_code, _error(rule.error_code, rule.description, extra)
        try:
            if method == "getUpdates":
                result = handler(self, params)  # waits without holding the lock
            else:
                with self._cond:
                    result = handler(self, params)
        except ApiError as exc:
            record.rejected = exc.content
            return exc.code, _error(exc.code, exc.description, exc.parameters)
        return 200, {"ok": True, "result": result}

    def _take_fail_rule(self, method: str, params: dict[str, Any]) -> FailRule | None:
        for rule in self._fail_rules:
            if rule.method != method:
                continue
            if rule.chat_id is not None and _as_int(params.get("chat_id")) != rule.chat_id:
                continue
            rule.times -= 1
            if rule.times <= 0:
                self._fail_rules.remove(rule)
            return rule
        return None

    # ---------------------------------------------------------------- state helpers (locked)
    def _chat(self, chat_id: int) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id <= 0:
                raise KeyError(f"unknown chat {chat_id}: add_chat() it first")
            chat = self._chats[chat_id] = ChatState(chat_id, "private")
        return chat

    def _resolve_chat(self, raw: Any) -> ChatState:
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if chat.username and chat.username.lower() == raw[1:].lower():
                    return chat
            raise ApiError(400, "Bad Request: chat not found")
        chat_id = _as_int(raw)
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        if chat_id not in self._chats and chat_id <= 0:
            raise ApiError(400, "Bad Request: chat not found")
        return self._chat(chat_id)

    def _writable_chat(self, params: dict[str, Any]) -> ChatState:
        chat = self._resolve_chat(params.get("chat_id"))
        if chat.blocked:
            raise ApiError(*_blocked_error(chat))
        if chat.type == "channel" and not chat.bot_rights.get("can_post_messages"):
            raise ApiError(400, "Bad Request: need administrator rights in the channel chat")
        thread_id = _as_int(params.get("message_thread_id"))
        if thread_id is not None and thread_id in chat.deleted_threads:
            raise ApiError(400, "Bad Request: message thread not found")
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        return next(self._next_message_id.setdefault(chat_id, itertools.count(1)))

    def _store_file(self, path: str, content: bytes) -> str:
        file_id = f"FILE{next(self._file_ids)}"
        self._files[file_id] = (f"{path}_{file_id}", content)
        return file_id

    def _default_user(self, chat: ChatState, user_id: int | None) -> int:
        if user_id is not None:
            return user_id
        return chat.id if chat.type == "private" else self._first_admin(chat)

    def _first_admin(self, chat: ChatState) -> int:
        return chat.admins[0] if chat.admins else 1000

    def _queue_update(self, payload: dict[str, Any]) -> None:
        self._updates.append({"update_id": next(self._update_ids), **payload})
        self._cond.notify_all()

    def _queue_message(
        self, chat: ChatState, extra: dict[str, Any], user_id: int | None,
        thread_id: int | None = None, sender_chat_id: int | None = None,
    ) -> dict[str, Any]:
        payload = self._message_payload(chat, extra, user_id, thread_id, sender_chat_id)
        self._queue_update(payload)
        return next(iter(payload.values()))

    def _message_payload(
        self, chat: ChatState, extra: dict[str, Any], user_id: int | None,
        thread_id: int | None = None, sender_chat_id: int | None = None,
    ) -> dict[str, Any]:
        """{"message" or "channel_post": the message}; the message is stored, not queued."""
        msg: dict[str, Any] = {
            "message_id": self._new_message_id(chat.id),
            "date": int(time.time()),
            "chat": chat.as_dict(),
        }
        kind = "channel_post" if chat.type == "channel" else "message"
        if chat.type == "channel":
            msg["sender_chat"] = chat.as_dict()
        elif sender_chat_id is not None:
            msg["from"] = {"id": ANONYMOUS_ADMIN_ID, "is_bot": True, "first_name": "Group"}
            msg["sender_chat"] = self._chat(sender_chat_id).as_dict()
        else:
            msg["from"] = self._user_dict(self._default_user(chat, user_id))
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = chat.is_forum
        msg.update(extra)
        self._messages[(chat.id, msg["message_id"])] = msg
        return {kind: msg}

    def _user_message(
        self, chat_id: int, extra: dict[str, Any], user_id: int | None,
        thread_id: int | None, sender_chat_id: int | None, reply_to: int | None,
    ) -> dict[str, Any]:
        with self._cond:
            chat = self._chat(chat_id)
            if reply_to is not None and (chat_id, reply_to) in self._messages:
                extra["reply_to_message"] = self._messages[(chat_id, reply_to)]
            return self._queue_message(chat, extra, user_id, thread_id, sender_chat_id)

    def _member(self, chat: ChatState, user_id: int, status: str) -> dict[str, Any]:
        user = (
            {"id": self.bot_id, "is_bot": True, "first_name": "FeedBot",
             "username": self.bot_username}
            if user_id == self.bot_id else self._user_dict(user_id)
        )
        member: dict[str, Any] = {"user": user, "status": status}
        if status == "administrator":
            rights = chat.bot_rights if user_id == self.bot_id else {}
            member.update({r: bool(rights.get(r, True)) for r in ADMIN_RIGHTS})
            member.update(can_be_edited=False, is_anonymous=False)
            if chat.type == "channel":
                member["can_post_messages"] = bool(rights.get("can_post_messages", True))
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _member_status(self, chat: ChatState, user_id: int) -> str:
        if user_id == self.bot_id:
            return chat.bot_status
        if chat.type == "private":
            return "member" if user_id == chat.id else "left"
        if chat.admins and user_id == chat.admins[0]:
            return "creator"
        return "administrator" if user_id in chat.admins else "member"

    def _deliver(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params)
        self._check_content(method, params)
        replied = self._reply_target(chat, params)
        plain, entities = message_content(method, params)
        self._admit(chat)
        thread_id = _as_int(params.get("message_thread_id"))
        msg = self._bot_message(chat, method, params, plain, entities, thread_id)
        if replied is not None:
            msg["reply_to_message"] = replied
        raw = params.get("caption" if method != "sendMessage" else "text")
        self._delivered.append(
            SentMessage(chat.id, method, params, "" if raw is None else str(raw),
                        msg["message_id"], thread_id, self.clock(), plain, entities)
        )
        return msg

    def _admit(self, chat: ChatState) -> None:
        """Telegram's flood control, when this fake enforces it: a 429 with retry_after."""
        if not self.enforce_limits:
            return
        wait = self._limiter.acquire(chat.id, chat.type == "private")
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})

    def _reply_target(self, chat: ChatState, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message a send replies to (reply_parameters), as Telegram checks it: a missing
        one is an error unless allow_sending_without_reply is set."""
        reply = params.get("reply_parameters")
        if not isinstance(reply, dict):
            return None
        target = self._messages.get((chat.id, _as_int(reply.get("message_id")) or 0))
        if target is None and not reply.get("allow_sending_without_reply"):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _check_content(self, method: str, params: dict[str, Any]) -> None:
        error = api_call_error(method, params)
        field = FILE_PARAM.get(method) if method != "sendDocument" else None
        if error is None and field and isinstance(params.get(field), str):
            error = self._file_error(field, params[field])
        if error is None and method == "sendMediaGroup":
            for item in params["media"]:
                error = error or self._file_error(str(item["type"]), str(item["media"]))
        if error is not None:
            raise ApiError(400, error, content=True)

    def _file_error(self, kind: str, value: str) -> str | None:
        """A file given by URL must be one Telegram can fetch; else it must be a known file_id."""
        is_url = value.startswith(("http://", "https://"))
        refused = self._rejected_file_urls + (self._rejected_photo_urls if kind == "photo" else [])
        if (is_url and any(s in value for s in refused)) or (
            not is_url and value not in self._files
        ):
            return "Bad Request: wrong file identifier/HTTP URL specified"
        return None

    def _bot_message(
        self, chat: ChatState, method: str, params: dict[str, Any], plain: str,
        entities: list[dict[str, Any]], thread_id: int | None,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": self._new_message_id(chat.id),
            "date": int(time.time()),
            "chat": chat.as_dict(),
        }
        if chat.type == "channel":
            msg["sender_chat"] = chat.as_dict()
        else:
            msg["from"] = self._member(chat, self.bot_id, "member")["user"]
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = chat.is_forum
        key = "text" if method == "sendMessage" else "caption"
        if plain or key == "text":
            msg[key] = plain
        if entities:
            msg["entities" if key == "text" else "caption_entities"] = entities
        if method == "sendPhoto":
            file_id = self._store_file("photos/photo.jpg", b"")
            msg["photo"] = [{"file_id": file_id, "file_unique_id": f"u{file_id}",
                             "width": 800, "height": 600, "file_size": 1}]
        elif method in ("sendAudio", "sendVideo"):
            kind = FILE_PARAM[method]
            file_id = self._store_file(f"{kind}s/{kind}", b"")
            media: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                     "duration": _as_int(params.get("duration")) or 0}
            for extra in ("title", "performer"):
                if params.get(extra):
                    media[extra] = params[extra]
            if kind == "video":
                media.update(width=640, height=360)
            msg[kind] = media
        elif method == "sendDocument":
            file_id = self._store_file("documents/doc", b"")
            msg["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}"}
        if isinstance(params.get("reply_markup"), dict):
            msg["reply_markup"] = params["reply_markup"]
        self._messages[(chat.id, msg["message_id"])] = msg
        return msg

    # ---------------------------------------------------------------- Bot API methods
    def _m_getMe(self, params: dict[str, Any]) -> Any:
        return {
            "id": self.bot_id, "is_bot": True, "first_name": "FeedBot",
            "username": self.bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }

    def _m_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = _as_int(params.get("offset")) or 0
        limit = min(max(_as_int(params.get("limit")) or 100, 1), 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        allowed = params.get("allowed_updates") or None
        with self._cond:
            self._refuse_while_webhook_is_set()
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            while not self._updates and not self._server.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
                if self._webhook is not None:
                    raise ApiError(409, "Conflict: terminated by setWebhook request")
            updates = self._updates[:limit]
        if allowed:
            updates = [u for u in updates if set(u) & set(allowed)]
        return updates

    def _refuse_while_webhook_is_set(self) -> None:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )

    def _m_setWebhook(self, params: dict[str, Any]) -> Any:
        if not params.get("url"):  # an empty URL removes the webhook
            return self._m_deleteWebhook(params)
        try:
            self._webhook = Webhook.from_params(params)
        except WebhookRefused as exc:
            raise ApiError(400, str(exc)) from None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        if self._webhook is None:
            pending = len(self._updates)
            return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}
        last = self._pushes[-1] if self._pushes else None
        error = None if last is None or last.accepted else f"Wrong response: {last.status}"
        return self._webhook.info(len(self._updates), error)

    # ---------------------------------------------------------------- webhook delivery
    def _push_loop(self) -> None:
        """Post queued updates to the webhook one at a time, oldest first; an update leaves the
        queue once the webhook answers 2xx, and is tried again after a pause otherwise."""
        stopping = self._server.stopping
        while True:
            with self._cond:
                while not stopping.is_set() and not (self._webhook and self._updates):
                    self._cond.wait(0.5)
                if stopping.is_set():
                    return
                hook, update = self._webhook, self._updates[0]
                assert hook is not None
                if not hook.wants(update):
                    self._updates.pop(0)
                    continue
            status = post_update(hook.url, update, hook.secret)
            with self._cond:
                push = Push(update["update_id"], status, hook.secret)
                self._pushes.append(push)
                if push.accepted:
                    self._updates = [u for u in self._updates if u is not update]
                self._cond.notify_all()
            if not push.accepted:
                stopping.wait(0.1)

    def _m_setMyCommands(self, params: dict[str, Any]) -> Any:
        self._commands[_commands_key(params)] = list(params.get("commands") or [])
        return True

    def _m_getMyCommands(self, params: dict[str, Any]) -> Any:
        return self._commands.get(_commands_key(params), [])

    def _m_deleteMyCommands(self, params: dict[str, Any]) -> Any:
        self._commands.pop(_commands_key(params), None)
        return True

    def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        return self._deliver("sendMessage", params)

    def _m_sendPhoto(self, params: dict[str, Any]) -> Any:
        return self._deliver("sendPhoto", params)

    def _m_sendAudio(self, params: dict[str, Any]) -> Any:
        return self._deliver("sendAudio", params)

    def _m_sendVideo(self, params: dict[str, Any]) -> Any:
        return self._deliver("sendVideo", params)

    def _m_sendMediaGroup(self, params: dict[str, Any]) -> Any:
        """An album: one message per item, sharing a media_group_id; the caption shown under
        the album is the first item's (SentMessage.plain of every item holds it)."""
        chat = self._writable_chat(params)
        self._check_content("sendMediaGroup", params)
        items: list[dict[str, Any]] = params["media"]
        plain, entities = album_caption(items)
        self._admit(chat)
        thread_id = _as_int(params.get("message_thread_id"))
        group_id = f"album{len(self._delivered)}"
        out = []
        for index, item in enumerate(items):
            kind = str(item["type"])
            first = index == 0
            msg = self._bot_message(chat, "sendMediaGroup", item, plain if first else "",
                                    entities if first else [], thread_id)
            msg.pop("text", None)
            file_id = self._store_file(f"{kind}s/{kind}", b"")
            media: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"u{file_id}"}
            if kind in ("photo", "video"):
                media.update(width=800, height=600)
            if kind in ("audio", "video"):
                media["duration"] = 0
            msg[kind] = [media] if kind == "photo" else media
            msg["media_group_id"] = group_id
            self._delivered.append(
                SentMessage(chat.id, "sendMediaGroup", {**params, "item": item},
                            str(item.get("caption") or ""), msg["message_id"], thread_id,
                            self.clock(), plain, entities)
            )
            out.append(msg)
        return out

    def _m_sendDocument(self, params: dict[str, Any]) -> Any:
        return self._deliver("sendDocument", params)

    def _m_editMessageText(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        key = (chat.id, _as_int(params.get("message_id")) or 0)
        current = self._messages.get(key)
        if current is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        self._check_content("editMessageText", params)
        plain, entities = message_content("editMessageText", params)
        markup = params.get("reply_markup")
        if plain == current.get("text") and entities == current.get("entities", []) and (
            markup == current.get("reply_markup")
        ):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        current.update(text=plain, entities=entities, edit_date=int(time.time()))
        if markup:
            current["reply_markup"] = markup
        else:  # as Telegram does: an edit without reply_markup removes the inline keyboard
            current.pop("reply_markup", None)
        return current

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        current = self._messages.get((chat.id, _as_int(params.get("message_id")) or 0))
        if current is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if markup == current.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        if markup:
            current["reply_markup"] = markup
        else:
            current.pop("reply_markup", None)
        return current

    def _m_deleteMessage(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        if self._messages.pop((chat.id, _as_int(params.get("message_id")) or 0), None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    def _m_getChat(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
             "gifts_from_channels"), False,
        )
        return {**chat.as_dict(), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}

    def _m_getChatMember(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        user_id = _as_int(params.get("user_id"))
        if user_id is None:
            raise ApiError(400, "Bad Request: invalid user_id specified")
        return self._member(chat, user_id, self._member_status(chat, user_id))

    def _m_getChatAdministrators(self, params: dict[str, Any]) -> Any:
        chat = self._resolve_chat(params.get("chat_id"))
        if chat.type == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        ids = list(chat.admins) + ([self.bot_id] if chat.bot_status == "administrator" else [])
        return [self._member(chat, uid, self._member_status(chat, uid)) for uid in ids]

    def _m_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id"))
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self._files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}",
                "file_size": len(content), "file_path": path}

    def _m_close(self, params: dict[str, Any]) -> Any:
        return True

    def _m_logOut(self, params: dict[str, Any]) -> Any:
        return True

    def file_content(self, token: str, path: str) -> bytes | None:
        if token != self.token:
            return None
        with self._cond:
            for file_path, content in self._files.values():
                if file_path == path:
                    return content
        return None


_METHODS: dict[str, Callable[[FakeBotApi, dict[str, Any]], Any]] = {
    name.removeprefix("_m_").lower(): func
    for name, func in vars(FakeBotApi).items()
    if name.startswith("_m_")
}


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def _blocked_error(chat: ChatState) -> tuple[int, str]:
    if chat.blocked == "not_found":
        return 400, "Bad Request: chat not found"
    if chat.blocked == "deactivated":
        return 403, "Forbidden: user is deactivated"
    if chat.type == "private":
        return 403, "Forbidden: bot was blocked by the user"
    return 403, f"Forbidden: bot was kicked from the {chat.type} chat"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _text_message(text: str) -> dict[str, Any]:
    """A text message's own fields; a leading /command is marked as Telegram marks it."""
    extra: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        extra["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return extra


def _commands_key(params: dict[str, Any]) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Undo PTB's encoding: JSON-encoded values for everything but plain-string params."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in STRING_PARAMS or not isinstance(value, str):
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        data = json.loads(body or b"{}")
        return data if isinstance(data, dict) else {}
    if ctype == "multipart/form-data":
        return decode_params(_parse_multipart(content_type, body))
    return decode_params(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            out[str(name)] = {"filename": filename, "size": len(data), "content": data}
        else:
            out[str(name)] = data.decode("utf-8")
    # PTB uploads files under a random field name and passes "attach://<name>" as the value
    for key, value in list(out.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            out[key] = out.get(value.removeprefix("attach://"), value)
    return out


class _BotApiHandler(QuietHandler):
    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        self._dispatch(self.read_body())

    def _dispatch(self, body: bytes) -> None:
        api: FakeBotApi = self.server.owner
        parts = urlsplit(self.path)
        segments = unquote(parts.path).strip("/").split("/", 2)
        if len(segments) == 3 and segments[0] == "file" and segments[1].startswith("bot"):
            self._serve_file(api, segments[1][3:], segments[2])
            return
        if len(segments) != 2 or not segments[0].startswith("bot"):
            self._json(404, _error(404, "Not Found"))
            return
        params = decode_params(dict(parse_qsl(parts.query, keep_blank_values=True)))
        try:
            params.update(parse_body(self.headers.get("Content-Type", ""), body))
        except ValueError:
            self._json(400, _error(400, "Bad Request: invalid request body"))
            return
        status, payload = api.handle_call(segments[0][3:], segments[1], params)
        self._json(status, payload)

    def _serve_file(self, api: FakeBotApi, token: str, path: str) -> None:
        content = api.file_content(token, path)
        if content is None:
            self._json(404, _error(404, "Not Found"))
        else:
            self.send_bytes(200, content, {"Content-Type": "application/octet-stream"})

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, default=_json_default).encode()
        self.send_bytes(status, body, {"Content-Type": "application/json"})


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"size": len(value)}
    raise TypeError(type(value).__name__)
