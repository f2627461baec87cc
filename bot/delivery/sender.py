"""The sender: drains the persistent outbox into Telegram, at Telegram's limits, losing nothing.

Design
- The outbox in the storage is the truth. The sender mirrors it into one in-memory lane per chat
  (rebuilt from `store.pending()` whenever `wake()` is called) and serves lanes fairly
  (`FairScheduler`), each lane in `seq` order.
- Telegram's limits belong to the gateway (`bot.delivery.gateway.TelegramGateway`, PTB's rate
  limiter), which every call of the bot goes through, command replies included; the sender asks it
  when a chat may next send, so lanes are served in the order the limits allow them.
- Up to `max_in_flight` requests are under way at once, never two for the same chat: each lane
  sends its head, then `store.complete()` (durable), then its next message. A crash repeats at
  most the messages in flight, at most one per chat. With a 100 ms round trip, 30 msg/s needs
  only a few requests under way.
- A delivery only leaves the outbox when Telegram accepted it, or (logged at ERROR, counted in
  `failed_permanent`) when even the title+link fallback is refused, or when its chat is paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields

import telegram
from telegram.warnings import PTBUserWarning

from bot.delivery.gateway import POST_CALL, GatewayLimits, TelegramGateway
from bot.delivery.outcome import Outcome, Verdict, api_kwargs, call_for_stage, classify
from bot.delivery.pacing import FairScheduler, Lane, backoff_delay
from bot.models import Chat, Delivery
from bot.storage.base import Storage

log = logging.getLogger(__name__)

#: do_api_request warns when the endpoint also exists as a Bot method; we call it on purpose so
#: that what is sent is exactly the stored ApiCall.
_ENDPOINT_WARNING = r"Please use 'Bot\.\w+' instead of 'Bot\.do_api_request"


def _silence_endpoint_warning() -> None:
    warnings.filterwarnings("ignore", message=_ENDPOINT_WARNING, category=PTBUserWarning)


_silence_endpoint_warning()


@dataclass(frozen=True)
class DeliverySettings:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20  # groups, supergroups, channels (negative chat ids)
    pause_after_failures: int = 3  # consecutive forbidden/not-found answers before a pause
    max_backoff: float = 300.0
    #: first retry delay after a network error / 5xx / forbidden answer (doubles each time)
    min_backoff: float = 1.0
    #: >1 speeds every limit (and the server's retry_after) up by this factor: tests and
    #: benchmarks against a fake Bot API whose clock runs that much faster
    time_scale: float = 1.0
    #: how long stop() lets an in-flight send finish before cancelling it
    stop_grace: float = 10.0
    #: requests under way at once (different chats); 30 msg/s at a 100 ms round trip needs 3+
    max_in_flight: int = 16

    def limits(self) -> GatewayLimits:
        return GatewayLimits(
            global_per_second=self.global_per_second,
            private_per_second=self.private_per_second,
            private_burst=self.private_burst,
            group_per_minute=self.group_per_minute,
            time_scale=self.time_scale,
        )


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0  # transient failures (network, 5xx, forbidden before the pause)
    failed_permanent: int = 0  # deliveries given up after every fallback was refused
    rate_limited: int = 0  # 429 answers received
    dropped: int = 0  # deliveries removed because their chat is paused
    fallbacks: int = 0  # content rejected, next form tried
    migrated: int = 0
    paused_chats: int = 0
    outbox: int = 0  # deliveries known to be waiting (in memory view of the outbox)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:  # for the tick log line
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items())


class _GatewayView:
    """A lane's limiter as the gateway sees its chat (the gateway alone records sends)."""

    def __init__(self, gateway: TelegramGateway, chat_id: int) -> None:
        self.gateway, self.chat_id = gateway, chat_id

    def ready_at(self, spare: int = 0) -> float:
        return self.gateway.ready_at(self.chat_id)

    def record(self, at: float) -> None:
        pass

    def idle_since(self) -> float:
        return self.gateway.ready_at(self.chat_id)


class Sender:
    #: a chat whose next delivery is held (Delivery.not_before) looks again at least this
    #: often (seconds): the wall clock may jump
    hold_recheck: float = 30.0

    def __init__(
        self, bot: telegram.Bot, store: Storage, settings: DeliverySettings | None = None
    ) -> None:
        _silence_endpoint_warning()  # pytest resets warning filters per test
        gateway = getattr(bot, "rate_limiter", None)
        if not isinstance(gateway, TelegramGateway):
            raise TypeError("the sender needs a bot whose rate limiter is the TelegramGateway")
        self.bot = bot
        self.gateway = gateway
        self.store = store
        self.settings = settings or DeliverySettings()
        self.stats = DeliveryStats()
        #: wall-clock time, for deliveries held until an epoch second (Delivery.not_before)
        self.clock: Callable[[], float] = time.time
        self._sched = FairScheduler()
        self._event = asyncio.Event()
        self._dirty = True
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._serving: dict[int, asyncio.Task[None]] = {}  # chat id -> its request under way
        self._completed: set[str] = set()  # completed since the current reload read the outbox
        self._stage: dict[str, int] = {}  # delivery id -> fallback stage reached
        self._no_thread: set[str] = set()  # deliveries whose forum topic is gone
        self._accepted: set[str] = set()  # sent but store.complete() failed: never resend
        self._migrated: dict[int, int] = {}
        #: chat id -> (entry key, message id) of its last delivery Telegram accepted: what the
        #: rest of a post replies to. Lost on restart, when the rest is sent as a plain message
        self._last_message: dict[int, tuple[str, int]] = {}

    # ------------------------------------------------------------------ public API
    def wake(self) -> None:
        self._dirty = True
        self._event.set()

    async def run(self) -> None:
        """Drain the outbox until `stop()`; may run again after (a sender seat regained)."""
        self._task = asyncio.current_task()
        self._stopping = False
        self._dirty = True
        log.info("sender started")
        try:
            while not self._stopping:
                try:
                    await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sender step failed; retrying in 1s")
                    await self._wait(1.0)
        finally:
            await self._finish_serving()
            self._task = None
            log.info("sender stopped")

    async def stop(self) -> None:
        self._stopping = True
        self._event.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        # the task itself gives its sends `stop_grace` to end, then cancels them: wait a little
        # longer, so that it is not cancelled while it does
        done, _ = await asyncio.wait({task}, timeout=self.settings.stop_grace + 2.0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 (interface)
        """Wait until the outbox is empty; False on timeout (tests and shutdown)."""
        self.wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self._dirty and self._sched.queued() == 0 and not self._serving:
                if await self.store.outbox_depth() == 0:
                    return True
                self.wake()  # enqueued behind our back
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)

    def resume_chat(self, chat_id: int) -> None:
        """The chat is reachable again: forget its backoff and failure count."""
        lane = self._sched.lanes.get(chat_id)
        if lane is not None:
            lane.blocked_until = -math.inf
            lane.transient_failures = 0
            lane.chat_failures = 0
        self.wake()

    # --------------------------------------------------------------------- the loop
    async def _step(self) -> None:
        if self._dirty:
            self._dirty = False
            self._event.clear()
            await self._reload()
        if len(self._serving) >= self.settings.max_in_flight:
            await self._wait(None)
            return
        lane, eligible = self._sched.peek()
        if lane is None:
            await self._wait(None)
            return
        now = time.monotonic()
        if eligible > now:
            await self._wait(eligible - now)
            return
        self._sched.pop(lane)
        if lane.chat_id in self._serving:
            return  # never two requests for one chat; it is rescheduled when its own ends
        self._serving[lane.chat_id] = asyncio.create_task(
            self._serve_lane(lane), name=f"send:{lane.chat_id}"
        )

    async def _serve_lane(self, lane: Lane) -> None:
        try:
            await self._serve(lane)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("chat %s: delivery step failed; retrying", lane.chat_id)
            self._back_off(lane)
        finally:
            self._serving.pop(lane.chat_id, None)
            if self._sched.lanes.get(lane.chat_id) is lane:
                self._sched.schedule(lane, time.monotonic())
            self._event.set()

    async def _finish_serving(self) -> None:
        if not self._serving:
            return
        tasks = set(self._serving.values())
        try:
            await asyncio.wait(tasks, timeout=self.settings.stop_grace)
        finally:  # cancelled while waiting too: no send outlives the sender
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait(self, seconds: float | None) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()

    async def _reload(self) -> None:
        """Mirror the store's outbox into the lanes (new deliveries, migrations, drops)."""
        self._completed = set()
        by_chat: dict[int, list[Delivery]] = {}
        for delivery in await self.store.pending():
            by_chat.setdefault(delivery.chat_id, []).append(delivery)
        now = time.monotonic()
        for lane in self._sched.lanes.values():
            if lane.chat_id not in by_chat:
                lane.queue.clear()
        for chat_id, items in by_chat.items():
            chat = await self.store.get_chat(chat_id)
            if chat is not None and chat.paused:
                await self._drop(chat_id, "chat is paused")
                continue
            lane = self._lane(chat_id)
            lane.chat_failures = chat.failures if chat is not None else 0
            # a delivery completed while the outbox was being read must not come back
            lane.queue = deque(d for d in items if d.id not in self._completed)
            if not lane.scheduled and chat_id not in self._serving:
                self._sched.schedule(lane, now)
        self._sched.prune(now)
        self.stats.outbox = self._sched.queued()

    def _lane(self, chat_id: int) -> Lane:
        lane = self._sched.lanes.get(chat_id)
        if lane is None:
            lane = Lane(chat_id, _GatewayView(self.gateway, chat_id))
            self._sched.lanes[chat_id] = lane
        return lane

    # ---------------------------------------------------------------- one delivery
    async def _serve(self, lane: Lane) -> None:
        if not lane.queue:
            return
        delivery = lane.queue[0]
        if delivery.id in self._accepted:
            await self._complete(lane, delivery)
            return
        held = delivery.not_before - self.clock()
        if held > 0:  # quiet hours: the chat's order waits behind it
            lane.blocked_until = time.monotonic() + min(held, self.hold_recheck)
            return
        stage = self._stage.get(delivery.id, 0)
        call = call_for_stage(delivery, stage)
        if call is None:
            await self._give_up(lane, delivery)
            return
        kwargs = api_kwargs(call, delivery, with_thread=delivery.id not in self._no_thread,
                            reply_to=self._reply_target(delivery))
        try:
            result = await self.bot.do_api_request(
                call.method, api_kwargs=kwargs, rate_limit_args=POST_CALL  # type: ignore[call-arg]
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._handle_failure(lane, delivery, classify(exc))
            return
        self._remember_message(delivery, result)
        self._accepted.add(delivery.id)
        await self._complete(lane, delivery)

    async def _complete(self, lane: Lane, delivery: Delivery, *, sent: bool = True) -> None:
        try:
            await self.store.complete(delivery.id)
        except Exception:
            log.exception("could not mark delivery %s done; will retry (not resend)", delivery.id)
            self._back_off(lane)
            return
        self._completed.add(delivery.id)
        self._accepted.discard(delivery.id)
        self._forget(delivery.id)
        if lane.queue and lane.queue[0].id == delivery.id:
            lane.queue.popleft()
        self.stats.sent += int(sent)
        self.stats.outbox = max(0, self.stats.outbox - 1)
        lane.transient_failures = 0
        if lane.chat_failures:
            await self._reset_failures(lane)

    def _reply_target(self, delivery: Delivery) -> int | None:
        last = self._last_message.get(delivery.chat_id)
        if delivery.reply_to_previous and last is not None and last[0] == delivery.entry_key:
            return last[1]
        return None

    def _remember_message(self, delivery: Delivery, result: object) -> None:
        first = result[0] if isinstance(result, list) and result else result  # albums: a list
        if isinstance(first, dict) and isinstance(first.get("message_id"), int):
            self._last_message[delivery.chat_id] = (delivery.entry_key, first["message_id"])

    def _forget(self, delivery_id: str) -> None:
        self._stage.pop(delivery_id, None)
        self._no_thread.discard(delivery_id)

    async def _reset_failures(self, lane: Lane) -> None:
        chat = await self.store.get_chat(lane.chat_id)
        if chat is not None and chat.failures:
            chat.failures = 0
            await self.store.save_chat(chat)
        lane.chat_failures = 0

    def _back_off(self, lane: Lane) -> float:
        lane.transient_failures += 1
        s = self.settings
        delay = backoff_delay(lane.transient_failures, s.min_backoff / s.time_scale, s.max_backoff)
        lane.blocked_until = time.monotonic() + delay
        return delay

    async def _handle_failure(self, lane: Lane, delivery: Delivery, outcome: Outcome) -> None:
        verdict = outcome.verdict
        if verdict is Verdict.RATE_LIMITED:
            # the gateway has paused the chat (or the bot) for exactly retry_after
            self.stats.rate_limited += 1
        elif verdict is Verdict.MIGRATED:
            await self._migrate(lane.chat_id, outcome.new_chat_id)
        elif verdict is Verdict.CHAT_GONE:
            await self._chat_gone(lane, delivery, outcome.detail)
        elif verdict is Verdict.NO_THREAD:
            log.warning("chat %s: topic %s is gone, posting to the main thread",
                        lane.chat_id, delivery.thread_id)
            self._no_thread.add(delivery.id)
            self.stats.fallbacks += 1
        elif verdict is Verdict.CONTENT:
            stage = self._stage.get(delivery.id, 0)
            self._stage[delivery.id] = stage + 1
            self.stats.fallbacks += 1
            log.warning("chat %s rejected form %d of %s (%s): trying the next form",
                        lane.chat_id, stage, delivery.entry_key, outcome.detail)
        else:
            await self._transient(lane, delivery, outcome.detail)

    async def _transient(self, lane: Lane, delivery: Delivery, detail: str) -> None:
        delay = self._back_off(lane)
        self.stats.retried += 1
        delivery.attempts += 1
        log.warning("chat %s: send failed (%s); retry #%d in %.1fs",
                    lane.chat_id, detail, delivery.attempts, delay)
        with contextlib.suppress(Exception):
            await self.store.record_attempt(delivery)

    async def _chat_gone(self, lane: Lane, delivery: Delivery, detail: str) -> None:
        chat = await self.store.get_chat(lane.chat_id) or Chat(
            id=lane.chat_id, type="private" if lane.chat_id > 0 else "group"
        )
        if chat.paused:  # paused meanwhile (my_chat_member "kicked")
            await self._drop(lane.chat_id, "chat is paused")
            return
        chat.failures += 1
        lane.chat_failures = chat.failures
        if chat.failures < self.settings.pause_after_failures:
            await self.store.save_chat(chat)
            await self._transient(lane, delivery, detail)
            return
        chat.paused = True
        await self.store.save_chat(chat)
        self.stats.paused_chats += 1
        log.info("chat %s paused after %d failures (%s)", lane.chat_id, chat.failures, detail)
        await self._drop(lane.chat_id, detail)

    async def _drop(self, chat_id: int, reason: str) -> None:
        dropped = await self.store.drop_chat_deliveries(chat_id)
        lane = self._sched.lanes.get(chat_id)
        if lane is not None:
            for delivery in lane.queue:
                self._forget(delivery.id)
            lane.queue.clear()
        if dropped:
            self.stats.dropped += dropped
            self.stats.outbox = max(0, self.stats.outbox - dropped)
            log.info("dropped %d deliveries for chat %s (%s)", dropped, chat_id, reason)

    async def _migrate(self, old_id: int, new_id: int) -> None:
        if await migrate_once(self.store, self, old_id, new_id):
            self.stats.migrated += 1
        self.wake()

    async def _give_up(self, lane: Lane, delivery: Delivery) -> None:
        log.error("chat %s refused every form of %s from %s, even title+link: giving it up",
                  lane.chat_id, delivery.entry_key, delivery.feed_url)
        self.stats.failed_permanent += 1
        await self._complete(lane, delivery, sent=False)

    # -------------------------------------------- what the update handlers hear of a chat
    async def chat_migrated(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: its chat, queue and settings move to the new id."""
        await self._migrate(old_id, new_id)

    async def bot_membership_changed(self, chat_id: int, new_status: str) -> None:
        """my_chat_member: re-added -> resume the chat; kicked/left -> pause it and drop its
        queue."""
        chat = await self.store.get_chat(chat_id) or Chat(
            id=chat_id, type="private" if chat_id > 0 else "group"
        )
        if new_status in ("member", "administrator", "creator"):
            if chat.paused or chat.failures:
                chat.paused = False
                chat.failures = 0
                await self.store.save_chat(chat)
                log.info("chat %s resumed (bot is %s)", chat_id, new_status)
            self.resume_chat(chat_id)
        elif new_status in ("kicked", "left", "banned"):
            chat.paused = True
            await self.store.save_chat(chat)
            self.stats.paused_chats += 1
            log.info("chat %s paused (bot %s)", chat_id, new_status)
            await self._drop(chat_id, f"bot {new_status}")
            self.wake()


async def migrate_once(store: Storage, sender: Sender, old_id: int, new_id: int) -> bool:
    """Move a chat to its new id once, whoever notices first (update handler or a send)."""
    if sender._migrated.get(old_id) == new_id or old_id == new_id:
        return False
    sender._migrated[old_id] = new_id
    if await store.get_chat(old_id) is None and await store.get_chat(new_id) is not None:
        return False  # already done before a restart
    await store.migrate_chat(old_id, new_id)
    log.info("chat %s migrated to %s", old_id, new_id)
    return True
