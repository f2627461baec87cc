"""The `feedbot` command: `run` the bot, `preview` what it would send for a feed, or `migrate`
a TinyDB database into PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from bot import config
from bot.errors import FeedbotError, OptionError
from bot.feeds.diff import oldest_first
from bot.feeds.fetcher import Fetcher
from bot.feeds.parse_pool import parse_feed
from bot.fulltext import ArticleSource
from bot.i18n import DEFAULT_LANG, languages
from bot.migrate import add_migrate_command, migrate
from bot.models import ParsedFeed, RenderedMessage, SubscriptionOptions
from bot.options import Limits, parse_option
from bot.pipeline.check import shown_entry
from bot.render import RenderOptions, render_entry
from bot.render import plain_text as html_to_plain
from bot.runtime import fetch_settings
from bot.storage import check_database

TOKEN_HELP = (
    "feedbot: TELEGRAM_BOT_TOKEN is not set. Create a bot with @BotFather in Telegram "
    "(send /newbot), then run: TELEGRAM_BOT_TOKEN=123456:ABC... feedbot run"
)


def settings_epilog() -> str:
    rows = config.describe()
    width = max(len(env) for env, _, _ in rows)
    lines = ["settings (environment variables override the --config TOML file):"]
    lines += [f"  {env:<{width}}  {meaning} (default: {default})" for env, default, meaning in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedbot", description="RSS/Atom feeds to Telegram.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="start the bot (long polling, or a webhook with --webhook)",
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", help="TOML settings file (or FEEDBOT_CONFIG)")
    run.add_argument(
        "--webhook",
        metavar="URL",
        help="receive updates by webhook at this https:// URL instead of long polling "
        "(or FEEDBOT_WEBHOOK_URL)",
    )
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the webhook's HTTP server listens (or FEEDBOT_WEBHOOK_LISTEN; "
        "default 127.0.0.1:8443)",
    )
    run.add_argument(
        "--role",
        help="all (default), checker, sender or updates (or FEEDBOT_ROLE); a role other "
        "than all needs FEEDBOT_DATABASE_URL",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="start even on an empty database file, or on one holding only another "
        "program's tables (they are kept)",
    )
    preview = commands.add_parser(
        "preview", help="print the messages the bot would send for a feed (no token needed)"
    )
    preview.add_argument("source", help="feed URL or file")
    preview.add_argument("--limit", type=int, default=3, help="newest N entries (default 3)")
    preview.add_argument("--json", action="store_true", help="one Bot API call per line")
    preview.add_argument("--config", help="TOML settings file (or FEEDBOT_CONFIG)")
    preview.add_argument(
        "--lang", default=DEFAULT_LANG, choices=languages(),
        help=f"the chat language posts are rendered for (default {DEFAULT_LANG})",
    )
    look = preview.add_argument_group("what /set would change (the same values)")
    look.add_argument(
        "--template", metavar="STYLE_OR_TEMPLATE",
        help='a style (full, title, compact, title-link) or a template, e.g. '
        '"<b>{title}</b>\\n{summary}\\n{link}"',
    )
    look.add_argument("--hashtags", metavar="on|off", help="the posts' categories as hashtags")
    look.add_argument("--tags", metavar="TAGS", help='hashtags of your own, e.g. "news tech"')
    look.add_argument(
        "--fulltext", action="store_true",
        help="fetch each post's web page and show its article instead of the feed's summary",
    )
    add_migrate_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args.config)
        if args.command == "run":
            settings = run_overrides(settings, args)
    except FeedbotError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "run":
        return run(settings, force=args.force)
    if args.command == "migrate":
        return run_migrate(settings, args)
    try:
        options = preview_options(args)
    except OptionError as exc:
        print(f"feedbot: {html_to_plain(exc.reason.text(args.lang))}", file=sys.stderr)
        return 2
    return asyncio.run(preview(settings, args.source, args.limit, args.json, args.lang, options))


def preview_options(args: argparse.Namespace) -> SubscriptionOptions:
    """The options given to `feedbot preview`, read as /set reads them (OptionError if not)."""
    options = SubscriptionOptions()
    limits = Limits(min_interval=0, max_interval=0)  # preview sets no interval
    for name in ("template", "hashtags", "tags"):
        value = getattr(args, name)
        if value is not None:
            options.update(parse_option(name, value, limits))
    if getattr(args, "fulltext", False):
        options.update(parse_option("fulltext", "on", limits))
    return options


def run_overrides(settings: config.Settings, args: argparse.Namespace) -> config.Settings:
    """`run`'s options over the settings (an option wins over its variable), validated."""
    changes = {
        name: value
        for name, value in (
            ("webhook_url", args.webhook), ("webhook_listen", args.listen), ("role", args.role)
        )
        if value is not None
    }
    settings = config.validate_role(config.validate(replace(settings, **changes)))
    if args.listen is not None and not settings.webhook_url:
        raise config.ConfigError(
            "--listen is for a webhook: give --webhook URL (or FEEDBOT_WEBHOOK_URL) too",
            key="error_config_listen_alone",
        )
    return settings


def run(settings: config.Settings, *, force: bool = False) -> int:
    if not settings.token:
        print(TOKEN_HELP, file=sys.stderr)
        return 2
    if not settings.database_url:  # PostgreSQL checks itself when the storage opens
        problem = check_database(Path(settings.db_path), force=force)
        if problem is not None:
            print(f"feedbot: {problem}", file=sys.stderr)
            return 2
    from bot.app import serve

    try:
        serve(settings)
    except FeedbotError as exc:  # e.g. the database cannot be reached, the port is taken
        print(f"feedbot: {exc}", file=sys.stderr)
        return 1
    return 0


def run_migrate(settings: config.Settings, args: argparse.Namespace) -> int:
    source = Path(args.source or settings.db_path)
    return asyncio.run(migrate(source, args.to, force=args.force))


def read_local(source: str) -> tuple[bytes, str] | None:
    """A feed file's bytes and file:// URL, or None when `source` is not a local file."""
    path = Path(source)
    if "://" in source or not path.is_file():
        return None
    return path.read_bytes(), path.resolve().as_uri()


async def load_feed(
    settings: config.Settings, source: str, fetcher: Fetcher | None = None
) -> ParsedFeed:
    local = await asyncio.to_thread(read_local, source)
    if local is not None:
        return await parse_feed(*local)
    if fetcher is None:
        async with Fetcher(fetch_settings(settings)) as own:
            result = await own.fetch(source)
    else:
        result = await fetcher.fetch(source)
    return await parse_feed(result.body, result.url, result.content_type)


def describe(message: RenderedMessage) -> str:
    call = message.attempts[0]
    params = call.params
    if call.method == "sendMediaGroup":
        items = params.get("media") or []
        head = "".join(f"[album photo {item.get('media')}]\n" for item in items)
        params = items[0] if items else {}
    else:
        kind = {"sendPhoto": "photo", "sendAudio": "audio", "sendVideo": "video"}.get(call.method)
        head = f"[{kind} {params[kind]}]\n" if kind else ""
    body = params.get("caption") or params.get("text") or ""
    text = html_to_plain(body) if params.get("parse_mode") == "HTML" else body
    if message.follow_up is not None:
        text += "\n[then]\n" + describe(message.follow_up)
    return head + text


def sent_forms(message: RenderedMessage) -> list[RenderedMessage]:
    """The messages a post becomes, in order (a post sent as media may have its text after)."""
    return [message] + ([message.follow_up] if message.follow_up is not None else [])


async def preview(
    settings: config.Settings,
    source: str,
    limit: int,
    as_json: bool,
    lang: str = DEFAULT_LANG,
    options: SubscriptionOptions | None = None,
) -> int:
    async with Fetcher(fetch_settings(settings)) as fetcher:
        try:
            feed = await load_feed(settings, source, fetcher)
        except FeedbotError as exc:
            print(f"feedbot: {source}: {exc}", file=sys.stderr)
            return 1
        entries = oldest_first(feed.entries)[-max(limit, 0) :] if limit else []
        look = RenderOptions.for_subscription(options or SubscriptionOptions(), lang)
        # as a check does it (bot.pipeline.check.shown_entry); a page that fails keeps the
        # feed's text, and says so on stderr
        full_texts = await ArticleSource(fetcher).full_texts(entries) if look.fulltext else {}
    for entry in entries:
        shown, _ = shown_entry(entry, look, full_texts)
        if look.fulltext and shown is entry:
            print(f"feedbot: {entry.link or entry.title}: no full text, the feed's text is "
                  "shown", file=sys.stderr)
        message = render_entry(shown, feed.title, look)
        if as_json:
            for part in sent_forms(message):
                print(json.dumps(part.attempts[0].to_dict(), ensure_ascii=False))
        else:
            print("─" * 60)
            print(describe(message))
    if not as_json:
        print("─" * 60)
        print(f"{feed.title}: {len(feed.entries)} entries, showing {len(entries)}")
    return 0
