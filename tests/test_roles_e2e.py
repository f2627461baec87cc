"""Several real `python -m bot run --role ...` processes on one PostgreSQL database, some of them
SIGKILLed: nothing is lost, nothing repeated beyond what was in flight, no feed checked by two
processes at once, one process owns Telegram's limits. Skips without FEEDBOT_TEST_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from bot.storage.postgres import PostgresStorage
from tests.fakes.balancer import Balancer
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import item, rss
from tests.fakes.feedserver import FeedServer
from tests.test_delivery_e2e import assert_complete_with_few_duplicates, delivery, texts
from tests.test_storage_contract import postgres_schema

REPO = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]


class Cluster:
    """Bot processes sharing one database, each with its own log."""

    def __init__(self, api: FakeBotApi, database_url: str, logs: Path, **env: str) -> None:
        self.api, self.url, self.logs = api, database_url, logs
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, role: str, **extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "FEEDBOT_API_URL": self.api.url,
            "FEEDBOT_DATABASE_URL": self.url,
            "FEEDBOT_DB": str(self.logs / "never.json"),
            "FEEDBOT_ALLOW_PRIVATE": "1",
            "FEEDBOT_TELEGRAPH_URL": "off",
            "FEEDBOT_POLL_INTERVAL": "1",
            "FEEDBOT_FETCH_TIMEOUT": "2",
            "FEEDBOT_CONCURRENCY": "3",
            "PYTHONPATH": str(REPO),
            **self.env,
            **extra,
        }
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--role", role],
                cwd=REPO, env=env, stdout=out, stderr=out,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def checked(self, name: str) -> int:
        """Feeds the process's ticks started (its log's tick lines)."""
        return sum(int(n) for n in re.findall(r"tick: started=(\d+)", self.log(name)))


@contextmanager
def cluster(api: FakeBotApi, url: str, logs: Path, **env: str) -> Iterator[Cluster]:
    running = Cluster(api, url, logs, **env)
    try:
        yield running
    finally:
        running.stop_all()


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)  # the schema exists before any process starts
        await store.close()
        yield url


def feed_body(server: FeedServer, n: int, posts: int) -> str:
    items = [
        item(f"f{n}-p{k}", f"feed {n} post {k}", server.url(f"/f{n}/p{k}"),
             f"2026-01-0{1 + k % 9}T10:00:00Z", f"<p>feed {n} post {k}</p>")
        for k in reversed(range(posts + 1))
    ]
    return rss(f"Feed {n}", server.url(f"/f{n}/"), items)


def posts_in(api: FakeBotApi, chat_id: int) -> list[tuple[int, int]]:
    found = []
    for text in texts(api, chat_id):
        match = re.search(r"feed (\d+) post (\d+)", text)
        if match:
            found.append((int(match[1]), int(match[2])))
    return found


async def until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)


async def subscribe_all(api: FakeBotApi, chats: dict[int, list[tuple[str, str]]]) -> None:
    """Each chat's user sends /sub for each of its feeds (url, title) and waits until the
    answer names the feed (a reply may come in more than one message)."""

    def answered(chat_id: int, before: int, title: str) -> bool:
        """The reply as it reads now: the first answer ("checking…") is edited into the
        result."""
        for sent in api.delivered(chat_id)[before:]:
            now = api.message(chat_id, sent.message_id)
            if now is not None and title in str(now.get("text", "")):
                return True
        return False

    async def one(chat_id: int, feeds: list[tuple[str, str]]) -> None:
        for url, title in feeds:
            before = len(api.delivered(chat_id))
            api.send_text(chat_id, f"/sub {url}")
            try:
                await api.await_for(lambda b=before, t=title: answered(chat_id, b, t), timeout=60)
            except AssertionError:
                raise AssertionError((chat_id, title, texts(api, chat_id))) from None

    await asyncio.gather(*(one(c, urls) for c, urls in chats.items()))


async def test_an_all_process_and_two_checkers_share_the_feeds_and_a_killed_checker_loses_nothing(
    tmp_path: Path,
) -> None:
    rounds, feeds = 4, 40
    chats = {1001 + c: [2 * c, 2 * c + 1] for c in range(20)}
    with FeedServer() as server, FakeBotApi(enforce_limits=True) as api:
        for n in range(feeds):
            server.set_feed(f"/f{n}.xml", feed_body(server, n, 0))
            server.slow(f"/f{n}.xml", 0.15)  # a check takes a while: overlaps would show
        async with database() as url:
            with cluster(api, url, tmp_path) as bots:
                bots.start("all", "all")
                await subscribe_all(api, {c: [(server.url(f"/f{n}.xml"), f"Feed {n}")
                                              for n in fs] for c, fs in chats.items()})
                bots.start("checker1", "checker")
                bots.start("checker2", "checker")
                started = time.monotonic()
                for r in range(1, rounds + 1):
                    for n in range(feeds):
                        server.set_feed(f"/f{n}.xml", feed_body(server, n, r))
                    await asyncio.sleep(2.0)
                    if r == 2:
                        bots.kill("checker1")

                def complete() -> bool:
                    return all({p for p in posts_in(api, c)} >= {(n, k) for n in fs
                               for k in range(1, rounds + 1)} for c, fs in chats.items())

                try:
                    await until(complete, 60, "every post delivered")
                except AssertionError:
                    missing = {c: sorted({(n, k) for n in fs for k in range(1, rounds + 1)}
                                         - set(posts_in(api, c))) for c, fs in chats.items()}
                    raise AssertionError({c: m for c, m in missing.items() if m}) from None
                elapsed = time.monotonic() - started
                assert bots.checked("checker2") > 0  # the work was shared
                assert bots.checked("all") > 0
    repeated = 0
    for chat_id, fs in chats.items():
        got = posts_in(api, chat_id)
        for n in fs:
            mine = [k for f, k in got if f == n]
            collapsed = [k for i, k in enumerate(mine) if i == 0 or k != mine[i - 1]]
            assert collapsed == list(range(1, rounds + 1)), (chat_id, n, mine)  # in order
            repeated += len(mine) - len(collapsed)
        assert len(got) - len(set(got)) <= 1, chat_id  # a kill repeats one per chat at most
    assert repeated <= 3 * 2  # only what the killed checker had in flight (3 checks)
    assert max(server.most_at_once.values()) == 1  # never fetched by two processes at once
    for n in range(feeds):  # no more often than one process would: once a second, at most
        assert server.hits(f"/f{n}.xml") <= elapsed / 1.0 + 4, n
    assert api.count_429 == 0


async def test_two_senders_the_active_one_killed_the_standby_takes_over_within_20_s(
    tmp_path: Path,
) -> None:
    chats = [2001 + i for i in range(30)] + [-3001, -3002]
    expected = {c: [f"{c}:{k}" for k in range(5)] for c in chats}
    with FakeBotApi(enforce_limits=True) as api:
        for group in (-3001, -3002):
            api.add_chat(group, type="supergroup")
        async with database() as url:
            store = await PostgresStorage.open(url)
            await store.enqueue([delivery(c, expected[c][k]) for k in range(5) for c in chats])
            await store.close()
            with cluster(api, url, tmp_path) as bots:
                bots.start("sender1", "sender")
                await until(lambda: len(api.delivered()) >= 20, 30, "the first sender sends")
                bots.start("sender2", "sender")
                await asyncio.sleep(1.0)
                assert len(api.delivered()) < 160  # still draining: the kill is midway
                bots.kill("sender1")
                killed, before = time.monotonic(), len(api.delivered())
                await until(lambda: len(api.delivered()) > before, 20, "the standby sends")
                takeover = time.monotonic() - killed
                total = sum(len(v) for v in expected.values())
                await until(lambda: len({m.plain for m in api.delivered()}) >= total, 60,
                            "everything delivered")
                assert "holds the seat now" in bots.log("sender2")
    assert takeover < 20
    assert_complete_with_few_duplicates(api, expected, interruptions=1)
    assert api.count_429 == 0  # the standby counted what the first had sent


async def test_replies_of_an_updates_process_go_out_through_the_active_sender(
    tmp_path: Path,
) -> None:
    with FakeBotApi(enforce_limits=True) as api:
        async with database() as url:
            with cluster(api, url, tmp_path) as bots:
                bots.start("updates", "updates")
                bots.start("sender", "sender")
                await until(lambda: "holds the seat now" in bots.log("updates"), 20,
                            "the updates process polls")
                api.send_text(4001, "/help")
                await api.await_delivered(1, 4001, timeout=30)
                assert "/sub" in texts(api, 4001)[0]
                # the reply left through the sender: with none running, it waits for one
                bots.kill("sender")
                api.send_text(4003, "/help")
                await asyncio.sleep(3.0)
                assert api.delivered(4003) == []
                bots.start("sender-again", "sender")
                await api.await_delivered(1, 4003, timeout=30)
                # two `all` processes on the same database are valid, and answer once
                bots.start("all1", "all")
                bots.start("all2", "all")
                await asyncio.sleep(3.0)
                api.send_text(4002, "/start")
                await api.await_delivered(1, 4002, timeout=30)
                await asyncio.sleep(2.0)
                assert len(api.delivered(4002)) == 1
                sender_log = bots.log("sender-again")
    assert "holds the seat now" in sender_log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_two_updates_processes_behind_one_webhook_both_serve_and_one_may_die(
    tmp_path: Path,
) -> None:
    ports = [free_port(), free_port()]
    backends = [f"http://127.0.0.1:{port}/hook" for port in ports]
    with FakeBotApi(enforce_limits=True) as api, Balancer(backends) as balancer:
        async with database() as url:
            with cluster(api, url, tmp_path, FEEDBOT_WEBHOOK_URL=balancer.url("/hook"),
                         FEEDBOT_WEBHOOK_SECRET="shared-secret") as bots:
                for n, port in enumerate(ports, start=1):
                    bots.start(f"updates{n}", "updates",
                               FEEDBOT_WEBHOOK_LISTEN=f"127.0.0.1:{port}")
                bots.start("sender", "sender")
                await until(lambda: api.webhook() is not None, 30, "the webhook is set")
                await until(lambda: all(listening(port) for port in ports), 30,
                            "both processes listen")
                chats = [5001 + i for i in range(10)]
                for chat_id in chats:
                    api.send_text(chat_id, "/help")
                for chat_id in chats:
                    await api.await_delivered(1, chat_id, timeout=60)
                assert all(balancer.served[b] > 0 for b in backends), balancer.served
                bots.kill("updates1")
                later = [5101 + i for i in range(5)]
                for chat_id in later:
                    api.send_text(chat_id, "/start")
                for chat_id in later:
                    await api.await_delivered(1, chat_id, timeout=60)
                await asyncio.sleep(2.0)
                assert all(len(api.delivered(c)) == 1 for c in chats + later)  # answered once
                assert api.calls("getUpdates") == []  # webhooks only: no process polls
                assert api.webhook() is not None and api.webhook().url == balancer.url("/hook")
                assert "holds the seat now" not in bots.log("updates2")  # no seat for webhooks


def test_a_role_needs_a_database_and_an_unknown_role_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": "1:x", "FEEDBOT_DB": str(tmp_path / "db.json"),
           "PYTHONPATH": str(REPO)}
    env.pop("FEEDBOT_DATABASE_URL", None)
    for args, says in ((["--role", "checker"], "needs FEEDBOT_DATABASE_URL"),
                       (["--role", "boss"], "unknown role 'boss'")):
        done = subprocess.run([sys.executable, "-m", "bot", "run", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and says in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    env["FEEDBOT_ROLE"] = "sender"
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--role", "boss"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "unknown role 'boss'" in done.stderr  # the option wins over the variable
