"""LaTeX math -> readable Unicode (via unicodeit), or None when it can't be done faithfully.

unicodeit replaces by plain substring search, so an unknown command such as `\\left` or `\\hat y`
comes out mangled (`≤ft`, `ℎat y`). We therefore rewrite the structural commands ourselves
(fractions, roots, text, fonts, accents, spacing), refuse any command unicodeit does not know
exactly, and refuse results that still contain `\\`, `^` or `_`: the caller then shows the TeX.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import unicodeit
from unicodeit.data import COMBININGMARKS, REPLACEMENTS

_CMD_RE = re.compile(r"\\([A-Za-z]+)")
_KNOWN: frozenset[str] = frozenset(
    {m.group(1) for k, _ in REPLACEMENTS if (m := re.match(r"\\([A-Za-z]+)", k))}
    | {k[1:] for k, _ in COMBININGMARKS}
)
_ACCENTS = frozenset(k[1:] for k, _ in COMBININGMARKS)
_FONTS = {
    "mathbf": "mathbf", "boldsymbol": "mathbf", "bm": "mathbf", "mathcal": "mathcal",
    "mathbb": "mathbb", "mathfrak": "mathfrak", "mathit": "mathit", "mathsf": "mathsf",
    "mathtt": "mathtt", "mathscr": "mathcal",
}
_TEXTUAL = frozenset(
    {"text", "textrm", "textit", "textbf", "textsf", "texttt", "mathrm", "mbox", "operatorname"}
)
_FRACS = frozenset({"frac", "dfrac", "tfrac", "cfrac"})
_DROP = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg"
    r"|displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])\.?"
)
_SPACES = re.compile(r"\\(?:quad|qquad|[,;: ])|~")
_SUPER_SPECIAL = (
    (re.compile(r"\^\s*(?:\{\s*)?\\(?:top|intercal|mathsf\{T\})(?:\s*\})?"), "ᵀ"),
    (re.compile(r"\^\s*(?:\{\s*)?(?:\\ast|\\star|\*)(?:\s*\})?"), "*"),
    (re.compile(r"\^\s*(?:\{\s*)?\\dagger(?:\s*\})?"), "†"),
    (re.compile(r"\^\s*(?:\{\s*)?\\prime(?:\s*\})?"), "′"),
)
# private-use stand-ins for escaped braces so brace stripping leaves them alone
_LBRACE, _RBRACE = "\ue000", "\ue001"


class _Unsupported(Exception):
    pass


@dataclass
class _Reader:
    src: str
    pos: int = 0

    def skip_space(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos] == " ":
            self.pos += 1

    def argument(self) -> str:
        """The next argument: a {group}, a \\command or a single character."""
        self.skip_space()
        if self.pos >= len(self.src):
            raise _Unsupported
        ch = self.src[self.pos]
        if ch == "{":
            depth, start = 0, self.pos
            for i in range(self.pos, len(self.src)):
                depth += {"{": 1, "}": -1}.get(self.src[i], 0)
                if depth == 0:
                    self.pos = i + 1
                    return self.src[start + 1 : i]
            raise _Unsupported
        if ch == "\\":
            m = _CMD_RE.match(self.src, self.pos)
            end = m.end() if m else self.pos + 2
            arg, self.pos = self.src[self.pos : end], end
            return arg
        self.pos += 1
        return ch


def _atomic(text: str) -> bool:
    return bool(re.fullmatch(r"\w+|\\[A-Za-z]+|.", text.strip()))


def _wrap(text: str) -> str:
    text = text.strip()
    return text if _atomic(text) else f"({text})"


def _rewrite(src: str) -> str:
    """Rewrite the commands unicodeit can't take into ones it can (recursively)."""
    out: list[str] = []
    r = _Reader(src)
    while r.pos < len(src):
        m = _CMD_RE.match(src, r.pos)
        if m is None:
            out.append(src[r.pos])
            r.pos += 1
            continue
        name = m.group(1)
        r.pos = m.end()
        if name in _FRACS:
            num, den = _rewrite(r.argument()), _rewrite(r.argument())
            out.append(f"{_wrap(num)}/{_wrap(den)}")
        elif name == "sqrt":
            r.skip_space()
            if src.startswith("[", r.pos):
                raise _Unsupported
            out.append("√" + _wrap(_rewrite(r.argument())))
        elif name in _TEXTUAL:
            if src.startswith("*", r.pos):
                r.pos += 1
            out.append(r.argument().replace("\\", ""))
        elif name in _FONTS:
            arg = r.argument()
            out.extend(_font(_FONTS[name], ch) for ch in arg if not ch.isspace())
        elif name in _ACCENTS:
            arg = _rewrite(r.argument()).strip()
            if len(arg) != 1 and not re.fullmatch(r"\\[A-Za-z]+", arg):
                raise _Unsupported
            out.append(f"\\{name}{{{arg}}}")
        else:
            out.append(m.group(0))
    return "".join(out)


def _font(font: str, ch: str) -> str:
    if ch in "\\{}":
        raise _Unsupported  # \mathbf{\alpha} and friends: rare, not worth guessing
    return f"\\{font}{{{ch}}}"


def _prepare(tex: str) -> str:
    if "\\begin" in tex or "&" in tex or "\\\\" in tex:
        raise _Unsupported
    tex = tex.replace("\\{", _LBRACE).replace("\\}", _RBRACE).replace("\\lbrace", _LBRACE)
    tex = tex.replace("\\rbrace", _RBRACE).replace("{,}", ",").replace("\\!", "")
    tex = re.sub(r"\\([%$#_&|])", lambda m: "‖" if m.group(1) == "|" else m.group(1), tex)
    tex = re.sub(r"\s+", " ", _SPACES.sub(" ", _DROP.sub("", tex)))
    for pattern, repl in _SUPER_SPECIAL:
        tex = pattern.sub(repl, tex)
    return _rewrite(tex)


@lru_cache(maxsize=4096)
def tex_to_unicode(tex: str) -> str | None:
    """Readable Unicode for a TeX math span, or None when unicodeit can't express it."""
    try:
        prepared = _prepare(tex.strip())
    except _Unsupported:
        return None
    if any(name not in _KNOWN for name in _CMD_RE.findall(prepared)):
        return None
    try:
        result = unicodeit.replace(prepared)
    except (IndexError, ValueError):
        return None
    if re.search(r"[\\^_]", result):
        return None
    result = result.replace("{", "").replace("}", "")
    result = result.replace(_LBRACE, "{").replace(_RBRACE, "}")
    result = re.sub(r"\s+", " ", result).strip()
    return unicodedata.normalize("NFC", result) or None


# Inline and display delimiters, tried in this order at each position. A single-$ span must not
# start or end with whitespace and must not be followed by a digit: "$5 and $10" is money.
MATH_RE = re.compile(
    r"\$\$(?P<dd>[^$]+?)\$\$"
    r"|\\\[(?P<br>.+?)\\\]"
    r"|\\\((?P<pa>.+?)\\\)"
    r"|(?<![\\$\w])\$(?P<d>[^\s$](?:[^$\n]{0,400}?[^\s$\\])?)\$(?![\d$])",
    re.S,
)


def strip_delimiters(tex: str) -> tuple[str, bool | None]:
    """Remove one pair of math delimiters: (inner, display?) with display None when none found."""
    t = tex.strip()
    for opening, closing, display in (("$$", "$$", True), ("\\[", "\\]", True),
                                      ("\\(", "\\)", False), ("$", "$", False)):
        if len(t) >= len(opening) + len(closing) and t.startswith(opening) and t.endswith(closing):
            return t[len(opening) : len(t) - len(closing)], display
    return t, None
