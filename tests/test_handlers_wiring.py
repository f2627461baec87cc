"""The handlers package's shape: feature modules share only the helper modules, and the one
ordered list puts the channel-targeted forms before the plain commands and the catch-alls last."""

from __future__ import annotations

import ast
from pathlib import Path

from telegram.ext import CommandHandler, MessageHandler

from bot.handlers import handlers
from bot.handlers.common import TARGETED

HANDLERS_DIR = Path(__file__).resolve().parent.parent / "bot" / "handlers"
SHARED = {"bot.handlers.common", "bot.handlers.live_reply", "bot.handlers.owners"}


def handler_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot.handlers"):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bot.handlers")}
    return found


def test_feature_modules_import_only_the_shared_helpers() -> None:
    for path in HANDLERS_DIR.glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert handler_imports(path) <= SHARED, path.name


def test_channel_forms_match_before_plain_commands_and_catch_alls_come_last() -> None:
    listed = handlers()
    commands = [h for h in listed if isinstance(h, CommandHandler)]

    def position(name: str, *, targeted: bool) -> int:
        return next(
            listed.index(h)
            for h in commands
            if name in h.commands and (h.filters is TARGETED) == targeted
        )

    for name in ("sub", "unsub", "list"):
        assert position(name, targeted=True) < position(name, targeted=False)
    assert all(isinstance(h, MessageHandler) for h in listed[-2:])
    assert all(listed.index(h) < len(listed) - 2 for h in commands)
