"""Relayed calls: how a process without the sender's seat still has one process own Telegram's
limits for the whole bot.

On PostgreSQL several processes serve one bot token, and only the one holding the sender's seat
(bot.delivery.seats) talks to Telegram for anything that counts against its limits. Elsewhere the
gateway hands each such call (a reply, an edit, an owner alert) to `RelayClient`, which stores it
(`Storage.relay_call`, announced by NOTIFY) and waits for its answer; the seat holder's
`RelayServer` takes it, sends it through its own gateway at interactive priority (ahead of
posts), and stores Telegram's answer, which the client returns (or raises) as if it had made the
call itself: a handler cannot tell the difference. Calls that upload a file, and reads that do
not count (`getChatMember`, `answerCallbackQuery`), go straight out.

Hand-written because no library relays Bot API calls between processes; the wire format is
PTB's own request parameters (`RequestParameter`), so what is sent is what PTB would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import telegram
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    TelegramError,
    TimedOut,
)
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.delivery.gateway import Priority
from bot.storage.base import TOPIC_ANSWERS, TOPIC_CALLS, CallAnswer, RelayedCall, Storage

log = logging.getLogger(__name__)

#: how long a relayed call waits for the active sender (a standby takes over within seconds)
ANSWER_WAIT_S = 60.0
#: how long the taker of a call has before another sender may take it again
TAKE_LEASE_S = 60.0
#: how often waiting parts look again even without an announcement (a lost NOTIFY)
POLL_S = 1.0

_ERRORS: dict[str, type[TelegramError]] = {
    cls.__name__: cls for cls in (BadRequest, Forbidden, InvalidToken, NetworkError, TimedOut)
}


def wire_params(data: dict[str, Any]) -> dict[str, Any] | None:
    """The call's parameters as PTB would put them on the wire (JSON-ready); None when the
    call uploads a file (it is not relayed)."""
    request = RequestData([RequestParameter.from_input(k, v) for k, v in data.items()])
    if request.contains_files:
        return None
    return dict(request.parameters)


def error_of(answer: CallAnswer) -> TelegramError:
    """The exception the active sender's call raised, raised again here."""
    if answer.error == "ChatMigrated":
        return ChatMigrated(int(answer.result))
    return _ERRORS.get(answer.error, TelegramError)(answer.message)


def answer_of(exc: TelegramError) -> CallAnswer:
    if isinstance(exc, ChatMigrated):
        return CallAnswer(False, exc.new_chat_id, "ChatMigrated", exc.message)
    name = next((n for n, cls in _ERRORS.items() if type(exc) is cls), "TelegramError")
    if isinstance(exc, TimedOut):
        name = "TimedOut"
    return CallAnswer(False, error=name, message=exc.message)


class RelayClient:
    """The gateway's way to the active sender, in a process without the sender's seat."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self._waiting: dict[str, asyncio.Future[CallAnswer]] = {}
        self._pump: asyncio.Task[None] | None = None
        self.relayed = 0

    def params_for(self, data: dict[str, Any]) -> dict[str, Any] | None:
        return wire_params(data)

    async def call(self, endpoint: str, params: dict[str, Any], priority: int) -> Any:
        call = RelayedCall(uuid.uuid4().hex, endpoint, params, int(priority), time.time())
        future: asyncio.Future[CallAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[call.id] = future
        self._start_pump()
        try:
            await self.store.relay_call(call)
            self.relayed += 1
            answer = await asyncio.wait_for(future, ANSWER_WAIT_S)
        except TimeoutError:
            raise TimedOut(
                f"no sender answered {endpoint} within {ANSWER_WAIT_S:g} s (is one running?)"
            ) from None
        finally:
            self._waiting.pop(call.id, None)
        if answer.ok:
            return answer.result
        raise error_of(answer)

    def _start_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._collect(), name="relay answers")

    async def _collect(self) -> None:
        """Collect the answers of every call waiting, whenever one is announced."""
        event = await self.store.watch(TOPIC_ANSWERS)
        while self._waiting:
            event.clear()
            for call_id, future in list(self._waiting.items()):
                if future.done():
                    continue
                try:
                    answer = await self.store.collect_answer(call_id)
                except Exception:
                    log.exception("could not read relayed answers; trying again")
                    break
                if answer is not None and not future.done():
                    future.set_result(answer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), POLL_S)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


class RelayServer:
    """In the process holding the sender's seat: sends the calls other processes relayed."""

    def __init__(self, bot: telegram.Bot, store: Storage, *, batch: int = 32) -> None:
        self.bot = bot
        self.store = store
        self.batch = batch
        self.served = 0
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        event = await self.store.watch(TOPIC_CALLS)
        try:
            while True:
                event.clear()
                try:
                    calls = await self.store.take_calls(self.batch, TAKE_LEASE_S)
                except Exception:
                    log.exception("could not take relayed calls; trying again")
                    calls = []
                for call in calls:
                    task = asyncio.create_task(self._serve(call), name=f"relayed {call.endpoint}")
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if len(calls) < self.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), POLL_S)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _serve(self, call: RelayedCall) -> None:
        try:
            result = await self.bot.do_api_request(  # type: ignore[call-arg]
                call.endpoint, api_kwargs=call.params,
                rate_limit_args={"priority": Priority(min(call.priority, Priority.NOTICE))},
            )
            answer = CallAnswer(True, result)
        except TelegramError as exc:
            answer = answer_of(exc)
        self.served += 1
        try:
            await self.store.answer_call(call.id, answer)
        except Exception:
            log.exception("could not store the answer to a relayed %s", call.endpoint)
