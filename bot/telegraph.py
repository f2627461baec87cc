"""Instant View pages: a post published to Telegraph (telegra.ph/api) once, for every chat.

Why Telegraph's plain HTTP API on aiohttp rather than a client library: the bot needs two calls
(createAccount once, createPage per post), both a form POST answered by `{"ok", "result" |
"error"}`. The Python wrappers installable here (`telegraph` 2.2.0, last released in 2022, on
httpx; smaller ones unmaintained since 2019-2022) would add a dependency with its own session,
timeouts and exceptions for those two POSTs, and hide the seconds of a flood wait, which the
publisher needs to stay away for exactly that long. aiohttp is already how the bot fetches feeds.

The base URL is `FEEDBOT_TELEGRAPH_URL` (tests point it at tests/fakes/telegraph.py). The account
token is made once and kept in the storage (`Storage.keep_telegraph_token`). A page's URL is kept
in memory per post, so a check decided again (or retried after a crash of its task) does not
publish the post twice. Any failure (an HTTP error, a timeout, a flood wait, a refusal) is
logged and the post goes out as a message, as it would without pages; after one, publishing
rests a while (the flood wait, else `FAILURE_REST_S`) so a check of many long posts does not
wait for a dead service once per post.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.render.telegraph import PageDraft
from bot.storage.base import Storage

log = logging.getLogger(__name__)

#: seconds one Telegraph call may take
CALL_TIMEOUT_S = 10.0
#: after a failure other than a flood wait, no page is tried for this long
FAILURE_REST_S = 60.0
#: page URLs remembered (one per post published lately)
CACHE_SIZE = 4096
ACCOUNT_NAME = "feedbot"  # createAccount's short_name (1-32 characters): only we see it
_FLOOD_RE = re.compile(r"FLOOD_WAIT_(\d+)")


class TelegraphError(Exception):
    """A call Telegraph did not answer with a result; `retry_after` for a flood wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TelegraphClient:
    """The two calls of Telegraph's API the bot makes."""

    def __init__(self, base_url: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def create_account(self, short_name: str = ACCOUNT_NAME) -> str:
        """A new account's access token."""
        result = await self._call(
            "createAccount", {"short_name": short_name, "author_name": short_name}
        )
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            raise TelegraphError("createAccount answered without an access_token")
        return token

    async def create_page(self, token: str, draft: PageDraft) -> str:
        """The URL of a new page."""
        params = {
            "access_token": token,
            "title": draft.title,
            "author_name": draft.author_name,
            "author_url": draft.author_url,
            "content": json.dumps(draft.content, ensure_ascii=False, separators=(",", ":")),
            "return_content": "false",
        }
        result = await self._call("createPage", params)
        url = result.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise TelegraphError("createPage answered without a page url")
        return url

    async def _call(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        async with self._session.post(f"{self.base_url}/{method}", data=params) as response:
            if response.status != 200:
                raise TelegraphError(
                    f"{method}: HTTP {response.status}",
                    _retry_after(response.headers.get("Retry-After")),
                )
            try:
                answer = await response.json(content_type=None)
            except ValueError as exc:
                raise TelegraphError(f"{method}: the answer is not JSON") from exc
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = str(answer.get("error", "no result")) if isinstance(answer, dict) else "?"
            flood = _FLOOD_RE.search(error)
            raise TelegraphError(f"{method}: {error}", float(flood.group(1)) if flood else None)
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class PagePublisher:
    """Publishes posts' pages with the bot's one account; None where a page could not be made."""

    def __init__(
        self,
        client: TelegraphClient,
        store: Storage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._pages: OrderedDict[str, str] = OrderedDict()
        self._rest_until = 0.0
        #: pages made since start (tools and logs)
        self.published = 0

    async def publish(self, post_key: str, draft: PageDraft) -> str | None:
        """The page URL of the post `post_key` names (its feed and identity): published now,
        or earlier when this same draft was; None when Telegraph failed (logged)."""
        key = hashlib.blake2b(
            f"{post_key}\0{draft.title}\0{json.dumps(draft.content)}".encode(), digest_size=16
        ).hexdigest()
        known = self._pages.get(key)
        if known is not None:
            self._pages.move_to_end(key)
            return known
        if not self.available():
            return None
        try:
            url = await self._create(draft)
        except Exception as exc:  # a page is a nicety: whatever failed, the post still goes out
            rest = getattr(exc, "retry_after", None) or FAILURE_REST_S
            self._rest_until = self.clock() + rest
            if not isinstance(exc, TelegraphError | aiohttp.ClientError | TimeoutError):
                log.exception("Instant View page for %s failed unexpectedly", post_key)
            log.warning(
                "Instant View page for %s not published (%s: %s); posts go out as "
                "messages for %.0fs",
                post_key,
                type(exc).__name__,
                exc,
                rest,
            )
            return None
        self._pages[key] = url
        while len(self._pages) > CACHE_SIZE:
            self._pages.popitem(last=False)
        self.published += 1
        return url

    def available(self) -> bool:
        """False while publishing rests after a failure (see `publish`)."""
        return self.clock() >= self._rest_until

    async def _create(self, draft: PageDraft) -> str:
        token = await self._account()
        return await self.client.create_page(token, draft)

    async def _account(self) -> str:
        """The account's token: kept in memory, else in the storage, else made now (once)."""
        async with self._token_lock:
            if self._token is None:
                stored = await self.store.telegraph_token()
                if stored is None:
                    made = await self.client.create_account()
                    stored = await self.store.keep_telegraph_token(made)
                    log.info("Telegraph account created for Instant View pages")
                self._token = stored
            return self._token

    async def aclose(self) -> None:
        await self.client.aclose()
