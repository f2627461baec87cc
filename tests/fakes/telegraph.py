"""A loopback fake of Telegraph's API (telegra.ph/api): createAccount and createPage.

It checks what the real service checks of a page (a known access token, title 1-256 characters,
author name up to 128 and author URL up to 512, content a list of nodes with only Telegraph's tags
and only href/src attributes, at most 64 KB of JSON) and answers as it does (`{"ok": true,
"result": ...}` or `{"ok": false, "error": ...}`), keeping every account and page made.

    telegraph = FakeTelegraph().start()   # FEEDBOT_TELEGRAPH_URL = telegraph.url
    telegraph.pages[0].text, telegraph.pages[0].images
    telegraph.down = True                 # every call answers HTTP 502
    telegraph.flood_wait = 7              # every call answers FLOOD_WAIT_7
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes._http import LoopbackServer, QuietHandler

TAGS = frozenset(
    {
        "a",
        "aside",
        "b",
        "blockquote",
        "br",
        "code",
        "em",
        "figcaption",
        "figure",
        "h3",
        "h4",
        "hr",
        "i",
        "iframe",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "u",
        "ul",
        "video",
    }
)
ATTRS = frozenset({"href", "src"})
CONTENT_LIMIT = 64 * 1024


@dataclass
class Page:
    path: str
    url: str
    title: str
    author_name: str
    author_url: str
    content: list[Any]
    token: str

    @property
    def text(self) -> str:
        return node_text(self.content)

    @property
    def images(self) -> list[str]:
        return [n["attrs"]["src"] for n in walk(self.content) if n.get("tag") == "img"]

    @property
    def links(self) -> list[str]:
        return [n["attrs"]["href"] for n in walk(self.content) if n.get("tag") == "a"]


@dataclass
class FakeTelegraph:
    down: bool = False
    flood_wait: int = 0
    accounts: list[str] = field(default_factory=list)  # tokens, in the order made
    pages: list[Page] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # errors answered
    calls: list[str] = field(default_factory=list)  # methods called

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._server = LoopbackServer(_Handler, self)

    @property
    def url(self) -> str:
        return self._server.base_url

    def start(self) -> FakeTelegraph:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # --------------------------------------------------------------- the API
    def answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(method)
            if self.down:
                return 502, {"ok": False, "error": "Bad Gateway"}
            if self.flood_wait:
                return self._error(f"FLOOD_WAIT_{self.flood_wait}")
            if method == "createAccount":
                return self._create_account(params)
            if method == "createPage":
                return self._create_page(params)
            return self._error("METHOD_NOT_FOUND")

    def _error(self, error: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(error)
        return 200, {"ok": False, "error": error}

    def _create_account(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        short_name = params.get("short_name", "")
        if not 1 <= len(short_name) <= 32:
            return self._error("SHORT_NAME_REQUIRED")
        token = f"token-{len(self.accounts) + 1}"
        self.accounts.append(token)
        return 200, {
            "ok": True,
            "result": {
                "short_name": short_name,
                "author_name": params.get("author_name", ""),
                "author_url": "",
                "access_token": token,
                "auth_url": f"https://edit.telegra.ph/auth/{token}",
            },
        }

    def _create_page(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = params.get("access_token", "")
        if token not in self.accounts:
            return self._error("ACCESS_TOKEN_INVALID")
        title = params.get("title", "")
        if not 1 <= len(title) <= 256:
            return self._error("TITLE_REQUIRED" if not title else "TITLE_TOO_LONG")
        if len(params.get("author_name", "")) > 128:
            return self._error("AUTHOR_NAME_TOO_LONG")
        if len(params.get("author_url", "")) > 512:
            return self._error("AUTHOR_URL_TOO_LONG")
        raw = params.get("content", "")
        try:
            content = json.loads(raw)
        except ValueError:
            return self._error("CONTENT_TEXT_REQUIRED")
        problem = content_problem(content)
        if problem is not None:
            return self._error(problem)
        path = f"{slug(title)}-12-02-{len(self.pages) + 1}"
        page = Page(
            path,
            f"https://telegra.ph/{path}",
            title,
            params.get("author_name", ""),
            params.get("author_url", ""),
            content,
            token,
        )
        self.pages.append(page)
        return 200, {
            "ok": True,
            "result": {
                "path": page.path,
                "url": page.url,
                "title": title,
                "description": "",
                "views": 0,
                "can_edit": True,
            },
        }


def content_problem(content: Any) -> str | None:
    """What Telegraph refuses in a page's content, or None."""
    if not isinstance(content, list) or not content:
        return "CONTENT_REQUIRED"
    encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(encoded) > CONTENT_LIMIT:
        return "CONTENT_TOO_BIG"
    for node in _all_nodes(content):
        if isinstance(node, str):
            continue
        if not isinstance(node, dict) or not isinstance(node.get("tag"), str):
            return "CONTENT_FORMAT_INVALID"
        if node["tag"] not in TAGS:
            return f"TAG_NOT_ALLOWED: {node['tag']}"
        attrs = node.get("attrs", {})
        if not isinstance(attrs, dict) or set(attrs) - ATTRS:
            return "ATTRIBUTE_NOT_ALLOWED"
        if not all(isinstance(v, str) for v in attrs.values()):
            return "CONTENT_FORMAT_INVALID"
        if not isinstance(node.get("children", []), list):
            return "CONTENT_FORMAT_INVALID"
    return None


def _all_nodes(content: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = list(content)
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, dict) and isinstance(node.get("children"), list):
            stack.extend(node["children"])
    return out


def walk(content: list[Any]) -> list[dict[str, Any]]:
    """Every element of `content`, in document order."""
    out: list[dict[str, Any]] = []
    for node in content:
        if isinstance(node, dict):
            out.append(node)
            out.extend(walk(node.get("children", [])))
    return out


def node_text(content: list[Any]) -> str:
    """The text of `content`, blocks on lines of their own."""
    parts: list[str] = []
    for node in content:
        if isinstance(node, str):
            parts.append(node)
        elif node.get("tag") == "br":
            parts.append("\n")
        else:
            inner = node_text(node.get("children", []))
            block = node.get("tag") in ("p", "h3", "h4", "li", "pre", "blockquote", "figure")
            parts.append(f"\n{inner}\n" if block else inner)
    return "".join(parts)


def slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title).split()
    return "-".join(words)[:60] or "Page"


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self.read_body())

    def _serve(self, body: bytes) -> None:
        owner: FakeTelegraph = self.server.owner
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query))
        kind = self.headers.get("Content-Type", "")
        if body and "json" in kind:
            params.update(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(body).items()}
            )
        elif body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        status, answer = owner.answer(parts.path.strip("/").split("/")[0], params)
        self.send_bytes(status, json.dumps(answer).encode(), {"Content-Type": "application/json"})
