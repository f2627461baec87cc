"""Length in Telegram's units and cutting Telegram-HTML (as produced by bot.render) to a budget.

Telegram counts a message after entity parsing, in UTF-16 code units, with the ends trimmed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"(<[^>]*>)")
_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HREF_RE = re.compile(r'href="([^"]*)"')
TRIM = " \t\r\n\x0b\x0c"
# a sentence ends at . ! ? or … (plus closing quotes/brackets) followed by whitespace
_SENTENCE_RE = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s)")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def unescape(text: str) -> str:
    return _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(1)], text)


def escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def visible(html: str) -> str:
    """The text Telegram shows for our Telegram-HTML (tags removed, entities decoded)."""
    return "".join(unescape(t) for t in _TOKEN_RE.split(html) if not t.startswith("<"))


def measure(html: str) -> int:
    return utf16_len(visible(html).strip(TRIM))


def plain_text(html: str) -> str:
    """Telegram-HTML -> plain text for the no-parse-mode fallback; links keep their URL."""
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for tok in _TOKEN_RE.split(html):
        if not tok.startswith("<"):
            out.append(unescape(tok))
        elif tok.startswith("<a "):
            m = _HREF_RE.search(tok)
            hrefs.append((unescape(m.group(1)) if m else "", len(out)))
        elif tok == "</a>" and hrefs:
            href, start = hrefs.pop()
            label = "".join(out[start:]).strip()
            if href and href not in (label, "mailto:" + label):
                out.append(f" ({href})")
    return "".join(out).strip(TRIM)


@dataclass(frozen=True)
class Cut:
    html: str
    cut: bool
    #: "paragraph" | "sentence" | "line" | "word" | "hard" | "" (not cut)
    boundary: str = ""
    kept: int = 0  # UTF-16 units kept


def _limit_index(text: str, budget: int) -> int:
    """Largest index i such that text[:i] fits in `budget` UTF-16 units."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return i
    return len(text)


def choose_cut(text: str, budget: int) -> tuple[int, str]:
    """Where to cut plain `text` to fit `budget`: (index, boundary kind)."""
    limit = _limit_index(text, budget)
    head = text[: limit + 1]  # one more char: a boundary right at the limit counts
    para = head.rfind("\n\n", 0, limit + 1)
    if para >= limit * 0.5:
        return para, "paragraph"
    sentences = [m.end() for m in _SENTENCE_RE.finditer(head) if m.end() <= limit]
    if sentences and sentences[-1] >= limit * 0.3:
        return sentences[-1], "sentence"
    line = head.rfind("\n", 0, limit + 1)
    if line >= limit * 0.5:
        return line, "line"
    space = max(head.rfind(" ", 0, limit + 1), head.rfind("\n", 0, limit + 1))
    if space > 0:
        return space, "word"
    i = limit
    # never split a base character from its combining marks / ZWJ sequence
    while i > 0 and (unicodedata.combining(text[i]) or text[i] in "\u200d\ufe0f\ufe0e"):
        i -= 1
    return i, "hard"


def truncate(html: str, budget: int) -> Cut:
    """Cut Telegram-HTML so its visible text fits `budget` UTF-16 units; tags are re-closed."""
    text = visible(html)
    if utf16_len(text.strip(TRIM)) <= budget:
        return Cut(html, False, "", utf16_len(text.strip(TRIM)))
    index, kind = choose_cut(text, max(budget, 0))
    while index > 0 and text[index - 1] in TRIM:
        index -= 1
    return Cut(_prefix(html, index), True, kind, utf16_len(text[:index]))


def _prefix(html: str, index: int) -> str:
    """The part of `html` whose visible text is text[:index], with open tags closed."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for tok in _TOKEN_RE.split(html):
        if not tok:
            continue
        if tok.startswith("</"):
            if stack:
                stack.pop()
                out.append(tok)
            continue
        if pos >= index:
            break
        if tok.startswith("<"):
            stack.append(tok[1:].split(">")[0].split()[0])
            out.append(tok)
            continue
        chunk = unescape(tok)
        take = chunk[: index - pos]
        out.append(escape_text(take))
        pos += len(take)
    out.extend(f"</{name}>" for name in reversed(stack))
    return _drop_empty(re.sub(r"\s+((?:</[a-z]+>)*)$", r"\1", "".join(out)))


def _drop_empty(html: str) -> str:
    """Remove tags left empty by the cut (e.g. '<b></b>')."""
    previous = None
    while previous != html:
        previous = html
        html = re.sub(r"<(b|i|u|s|code|blockquote|a|pre)(?: [^>]*)?>\s*</\1>", "", html)
    return html


def split_reply(html: str, limit: int = 4000) -> list[str]:
    """A Telegram-HTML reply as parts of at most `limit` visible UTF-16 units each, split at line
    breaks. A single line longer than that (a feed's 100 KB title, say) loses its markup, since
    a cut inside a tag would be refused, and is split at spaces, or anywhere when it has none."""
    parts: list[str] = []
    current = ""
    for line in html.split("\n"):
        pieces = [line] if measure(line) <= limit else _split_long_line(line, limit)
        for piece in pieces:
            candidate = f"{current}\n{piece}" if current else piece
            if current and measure(candidate) > limit:
                parts.append(current)
                candidate = piece
            current = candidate
    parts.append(current)
    return [p for p in parts if p.strip(TRIM)]


def _split_long_line(line: str, limit: int) -> list[str]:
    text = visible(line)
    chunks: list[str] = []
    while text:
        cut = _fit(text, limit)
        space = text.rfind(" ", 0, cut)
        if cut < len(text) and space > cut // 2:
            cut = space
        chunks.append(escape_text(text[:cut].strip(TRIM)))
        text = text[cut:].lstrip(TRIM)
    return chunks


def _fit(text: str, limit: int) -> int:
    """The longest prefix of `text` (in characters) within `limit` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return max(i, 1)
    return len(text)
