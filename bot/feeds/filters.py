"""Post filters (pure): which posts a subscription, or a whole chat, lets through, and why.

A filter is parts separated by commas. A post is sent when it matches at least one part (or
there are only `!` parts) and none of the parts that start with `!`:

    rust, python, !sponsored                  words, anywhere in the title or text, any case
    title:/\\brust\\b|\\bgo\\b/                   a regular expression on one field
    title:release AND NOT author:bot          AND, OR, NOT and (parentheses) inside a part
    !categories:/^ads?$/                      never a post with the category "ad" or "ads"

Fields: title, summary, author, categories (any of them), link; without one, title + summary.
Operators are the capitalised words AND, OR, NOT; "quoted words" are taken literally.

Regular expressions run on RE2 (google-re2): linear time in the text, whatever the pattern, so
no filter can make a check run away; their length and compiled size are capped too.

Stored filters: what today's /filter stores is either the older comma-separated word list
(`rust, !ads`, read exactly as before) or `MARKER` + the filter written out in full. A filter
that only uses words is stored in the older form, so both readings agree on it.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import re2

from bot.errors import OptionError
from bot.models import Entry

log = logging.getLogger(__name__)

#: what starts a stored filter in the full syntax (older stored filters are all lower case)
MARKER = "V2:"
MAX_FILTER_CHARS = 500
MAX_TERMS = 30
MAX_DEPTH = 8  # nested parentheses and NOTs
MAX_PATTERN_CHARS = 200
#: RE2 instructions of one compiled pattern; `.{1000}` is about 8000
MAX_PROGRAM_SIZE = 3000
#: RE2's memory for one pattern: its program, then its DFA cache (when that is full RE2 goes on
#: with its NFA, slower but still linear)
REGEX_MAX_MEM = 256 << 10
OPERATORS = frozenset({"AND", "OR", "NOT"})

_TAG = re.compile(r"<[^>]*>")


class Field(StrEnum):
    TEXT = "text"  # title and summary: the default
    TITLE = "title"
    SUMMARY = "summary"
    AUTHOR = "author"
    CATEGORIES = "categories"
    LINK = "link"


#: how a field may be written before its colon (any case)
FIELD_NAMES: dict[str, Field] = {
    "title": Field.TITLE,
    "summary": Field.SUMMARY,
    "author": Field.AUTHOR,
    "categories": Field.CATEGORIES,
    "category": Field.CATEGORIES,
    "tag": Field.CATEGORIES,
    "tags": Field.CATEGORIES,
    "link": Field.LINK,
    "url": Field.LINK,
    "标题": Field.TITLE,
    "摘要": Field.SUMMARY,
    "正文": Field.SUMMARY,
    "作者": Field.AUTHOR,
    "分类": Field.CATEGORIES,
    "标签": Field.CATEGORIES,
    "链接": Field.LINK,
}


# ------------------------------------------------------------------------ the post's text
@dataclass(frozen=True)
class PostText:
    """The text of each field of a post, as filters read it: tags stripped, spaces collapsed."""

    title: str
    summary: str
    author: str
    categories: tuple[str, ...]
    link: str

    def values(self, of: Field) -> tuple[str, ...]:
        if of is Field.TEXT:
            return (f"{self.title} {self.summary}".strip(),)
        if of is Field.CATEGORIES:
            return self.categories
        return (getattr(self, of.value),)


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def post_text(entry: Entry) -> PostText:
    body = html.unescape(_TAG.sub(" ", entry.content_html))
    return PostText(
        title=_collapsed(entry.title),
        summary=_collapsed(body),
        author=_collapsed(entry.author),
        categories=tuple(_collapsed(c) for c in entry.categories),
        link=entry.link.strip(),
    )


class _Folded:
    """A post's field texts case-folded once, for word terms."""

    def __init__(self, post: PostText) -> None:
        self.post = post
        self._cache: dict[Field, tuple[str, ...]] = {}

    def values(self, of: Field) -> tuple[str, ...]:
        if of not in self._cache:
            self._cache[of] = tuple(v.casefold() for v in self.post.values(of))
        return self._cache[of]


# -------------------------------------------------------------------------------- the filter
@dataclass(frozen=True)
class Words:
    """These words, in this order, somewhere in the field (any case)."""

    field: Field
    phrase: str  # case-folded, single spaces


@dataclass(frozen=True)
class Pattern:
    """An RE2 regular expression found somewhere in the field (any case unless it says (?-i))."""

    field: Field
    source: str
    program: Any = dataclasses.field(compare=False, repr=False, hash=False, default=None)


@dataclass(frozen=True)
class Not:
    inner: Expr


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Expr, ...]


Term = Words | Pattern
Expr = Words | Pattern | Not | AllOf | AnyOf


@dataclass(frozen=True)
class Rule:
    """One comma-separated part: a post matching a veto is never sent."""

    expr: Expr
    veto: bool = False


@dataclass(frozen=True)
class Filter:
    rules: tuple[Rule, ...] = ()

    @property
    def keeps(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if not r.veto)

    @property
    def vetoes(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.veto)

    @property
    def words_only(self) -> bool:
        """Only plain words on the default field: what the older filters could say."""
        return all(isinstance(r.expr, Words) and r.expr.field is Field.TEXT for r in self.rules)


@dataclass(frozen=True)
class Verdict:
    """Whether a post passes a filter, and why: the part that let it through or stopped it
    (None: no part let it through, or the filter is empty) and the terms of that part it
    matched."""

    passed: bool
    rule: Rule | None = None
    hits: tuple[Term, ...] = ()


def _holds(expr: Expr, post: _Folded) -> bool:
    match expr:
        case Words(field=of, phrase=phrase):
            return any(phrase in value for value in post.values(of))
        case Pattern(field=of, program=program):
            return any(program.search(value) is not None for value in post.post.values(of))
        case Not(inner=inner):
            return not _holds(inner, post)
        case AllOf(parts=parts):
            return all(_holds(p, post) for p in parts)
        case AnyOf(parts=parts):
            return any(_holds(p, post) for p in parts)
    raise TypeError(expr)


def _hits(expr: Expr, post: _Folded) -> Iterator[Term]:
    """The terms outside any NOT that match the post."""
    if isinstance(expr, Words | Pattern):
        if _holds(expr, post):
            yield expr
    elif isinstance(expr, AllOf | AnyOf):
        for part in expr.parts:
            yield from _hits(part, post)


def judge(rules: Filter, post: PostText) -> Verdict:
    folded = _Folded(post)
    for rule in rules.vetoes:
        if _holds(rule.expr, folded):
            return Verdict(False, rule, tuple(_hits(rule.expr, folded)))
    keeps = rules.keeps
    if not keeps:
        return Verdict(True)
    for rule in keeps:
        if _holds(rule.expr, folded):
            return Verdict(True, rule, tuple(_hits(rule.expr, folded)))
    return Verdict(False)


@dataclass(frozen=True)
class PostVerdict:
    """A post of /filter N test: its verdict and whether the chat-wide filter gave it."""

    entry: Entry
    verdict: Verdict
    by_chat: bool = False


def trial(entries: Iterable[Entry], feed_spec: str, chat_spec: str) -> list[PostVerdict]:
    """What the subscription's filter and then the chat's say of each post (stored forms)."""
    feed_filter, chat_filter = read_filter(feed_spec), read_filter(chat_spec)
    out: list[PostVerdict] = []
    for entry in entries:
        post = post_text(entry)
        verdict = judge(feed_filter, post)
        if verdict.passed and chat_filter.rules:
            by_chat = judge(chat_filter, post)
            if not by_chat.passed:
                out.append(PostVerdict(entry, by_chat, by_chat=True))
                continue
        out.append(PostVerdict(entry, verdict))
    return out


def matches(entry: Entry, *specs: str) -> bool:
    """True when the entry passes every non-empty stored filter in `specs`."""
    active = [read_filter(s) for s in specs if s and s.strip()]
    if not active:
        return True
    post = post_text(entry)
    return all(judge(f, post).passed for f in active)


# ---------------------------------------------------------------------- writing it out
_PLAIN_WORD = re.compile(r"[^\s,，()\"]+")


def _plain_phrase(phrase: str) -> bool:
    """Whether the phrase reads back the same without quotes."""
    return all(
        _PLAIN_WORD.fullmatch(w)
        and w not in OPERATORS
        and _field_prefix(w) is None
        and not w.startswith(("/", "!"))
        for w in phrase.split(" ")
    )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _slashed(source: str) -> str:
    """`source` between slashes, its own slashes escaped (backslash pairs left as they are)."""
    out, i = [], 0
    while i < len(source):
        if source[i] == "\\" and i + 1 < len(source):
            out.append(source[i : i + 2])
            i += 2
            continue
        out.append("\\/" if source[i] == "/" else source[i])
        i += 1
    return "/" + "".join(out) + "/"


def render_term(term: Term) -> str:
    prefix = "" if term.field is Field.TEXT else f"{term.field.value}:"
    if isinstance(term, Pattern):
        return prefix + _slashed(term.source)
    return prefix + (term.phrase if _plain_phrase(term.phrase) else _quoted(term.phrase))


def render_expr(expr: Expr) -> str:
    match expr:
        case Words() | Pattern():
            return render_term(expr)
        case Not(inner=inner):
            inside = render_expr(inner)
            return f"NOT ({inside})" if isinstance(inner, AllOf | AnyOf) else f"NOT {inside}"
        case AllOf(parts=parts):
            return " AND ".join(
                f"({render_expr(p)})" if isinstance(p, AnyOf) else render_expr(p) for p in parts
            )
        case AnyOf(parts=parts):
            return " OR ".join(render_expr(p) for p in parts)
    raise TypeError(expr)


def render_rule(rule: Rule) -> str:
    return ("!" if rule.veto else "") + render_expr(rule.expr)


def render_filter(rules: Filter) -> str:
    return ", ".join(render_rule(r) for r in rules.rules)


def stored_form(rules: Filter) -> str:
    """What /filter stores: the older word list when it says the same, else the full syntax."""
    if rules.words_only and all(_legacy_safe(r) for r in rules.rules):
        keeps = [r.expr.phrase for r in rules.keeps if isinstance(r.expr, Words)]
        vetoes = [f"!{r.expr.phrase}" for r in rules.vetoes if isinstance(r.expr, Words)]
        return ", ".join([*keeps, *vetoes])
    return MARKER + render_filter(rules)


def _legacy_safe(rule: Rule) -> bool:
    phrase = rule.expr.phrase if isinstance(rule.expr, Words) else ","
    return "," not in phrase and (rule.veto or not phrase.startswith("!"))


# ----------------------------------------------------------------------------- reading
def parse_terms(spec: str) -> tuple[list[str], list[str]]:
    """The older stored form: comma-separated words, `!word` excludes (kept as it was)."""
    include: list[str] = []
    exclude: list[str] = []
    for raw in spec.split(","):
        term = " ".join(raw.split()).casefold()
        if term.startswith("!"):
            if term[1:].strip():
                exclude.append(term[1:].strip())
        elif term:
            include.append(term)
    return include, exclude


def legacy_filter(spec: str) -> Filter:
    include, exclude = parse_terms(spec)
    return Filter(
        tuple(Rule(Words(Field.TEXT, w)) for w in include)
        + tuple(Rule(Words(Field.TEXT, w), veto=True) for w in exclude)
    )


@lru_cache(maxsize=1024)
def read_filter(stored: str) -> Filter:
    """A stored filter (either form). One that no longer reads (it was checked when it was set)
    lets everything through rather than stopping a feed's posts; the log says so."""
    if not stored.startswith(MARKER):
        return legacy_filter(stored)
    try:
        return parse_filter(stored[len(MARKER) :], capped=False)
    except OptionError as exc:
        log.warning("a stored filter no longer reads (%s): %r", exc.reason.key, stored)
        return Filter()


def normalize_filter(text: str) -> str:
    """What a user typed -> its stored form; OptionError saying what is wrong."""
    if len(text) > MAX_FILTER_CHARS:
        raise OptionError("filter_too_long", limit=MAX_FILTER_CHARS)
    return stored_form(parse_filter(text))


def parse_filter(text: str, *, capped: bool = True) -> Filter:
    """Parse the filter syntax (see the module's doc); `capped`: apply the limits on length and
    number of terms (a stored filter was checked when it was set)."""
    if capped and len(text) > MAX_FILTER_CHARS:
        raise OptionError("filter_too_long", limit=MAX_FILTER_CHARS)
    parser = _Parser(text, list(_tokens(text)))
    rules = parser.filter()
    if not rules.rules:
        raise OptionError("filter_empty")
    if capped and parser.terms > MAX_TERMS:
        raise OptionError("filter_too_many", limit=MAX_TERMS)
    return rules


# ---------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class _Token:
    kind: str  # "," ( ) ! AND OR NOT word quoted regex field end
    start: int
    end: int
    value: str = ""


_SEPARATORS = ",，"
_WORD_END = re.compile(r"[\s,，()]")


def _field_prefix(word: str) -> tuple[Field, int] | None:
    """`title:rust` -> (TITLE, length of "title:"), for a known field name before the colon."""
    for colon in (":", "："):
        name, found, _ = word.partition(colon)
        if found and name.casefold() in FIELD_NAMES:
            return FIELD_NAMES[name.casefold()], len(name) + 1
    return None


def _fragment(text: str, start: int, end: int | None = None) -> str:
    shown = text[start:end].strip() if end is not None else text[start:].strip()
    return shown if len(shown) <= 40 else shown[:39] + "…"


def _closing(text: str, start: int, quote: str) -> tuple[str, int] | None:
    """Text from `start` up to an unescaped `quote`, and the index after it. In a regex a
    backslash stays (only `\\/` becomes `/`); in quotes it escapes the next character."""
    out, i = [], start
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == "/":
                out.append("/" if nxt == "/" else char + nxt)
            else:
                out.append(nxt)
            i += 2
            continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return None


def _tokens(text: str) -> Iterator[_Token]:
    i, at_rule_start = 0, True
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        token = _token_at(text, i, at_rule_start)
        at_rule_start = token.kind == ","
        yield token
        i = token.end
    yield _Token("end", len(text), len(text))


def _token_at(text: str, i: int, at_rule_start: bool) -> _Token:
    char = text[i]
    if char in _SEPARATORS:
        return _Token(",", i, i + 1)
    if char in "()":
        return _Token(char, i, i + 1)
    if char == "!":
        if not at_rule_start:
            negated = text[i + 1 : _word_end(text, i + 1)] or "…"
            raise OptionError("filter_bang_inside", part=_fragment(negated, 0))
        return _Token("!", i, i + 1)
    if char == '"':
        found = _closing(text, i + 1, '"')
        if found is None:
            raise OptionError("filter_quote_unclosed", part=_fragment(text, i))
        return _Token("quoted", i, found[1], found[0])
    if char == "/":
        return _regex_token(text, i)
    end = _word_end(text, i)
    word = text[i:end]
    if word in OPERATORS:
        return _Token(word, i, end)
    prefix = _field_prefix(word)
    if prefix is not None:
        return _Token("field", i, i + prefix[1], prefix[0].value)
    return _Token("word", i, end, word)


def _word_end(text: str, i: int) -> int:
    found = _WORD_END.search(text, i)
    return found.start() if found else len(text)


def _regex_token(text: str, i: int) -> _Token:
    found = _closing(text, i + 1, "/")
    if found is None:
        raise OptionError("filter_regex_unclosed", part=_fragment(text, i))
    source, end = found
    if end < len(text) and not _WORD_END.match(text, end):
        raise OptionError("filter_after_regex", part=_fragment(text, i, _word_end(text, end)))
    return _Token("regex", i, end, source)


# ---------------------------------------------------------------------- the grammar
_TERM_START = frozenset({"word", "quoted", "regex", "field", "(", "NOT"})


class _Parser:
    """filter := part ("," part)*;  part := ["!"] or;  or := and ("OR" and)*;
    and := unary ("AND" unary)*;  unary := "NOT" unary | "(" or ")" | [field] term."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.at = 0
        self.depth = 0
        self.terms = 0
        self.term_start = 0  # where the latest term began (its field included)

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def filter(self) -> Filter:
        rules: list[Rule] = []
        while self.token.kind != "end":
            if self.token.kind == ",":
                self.take()
                continue
            veto = self.token.kind == "!"
            if veto:
                bang = self.take()
                if self.token.kind in (",", "end"):
                    raise OptionError("filter_bang_alone", part=self._around(bang))
            rules.append(Rule(self.any_of(), veto))
            self.part_ends()
        return Filter(tuple(rules))

    def part_ends(self) -> None:
        token = self.token
        if token.kind in (",", "end"):
            return
        if token.kind == ")":
            raise OptionError("filter_paren_unexpected", part=self._around(token))
        previous = self.tokens[self.at - 1]
        raise OptionError(
            "filter_missing_operator",
            left=_fragment(self.text, min(self.term_start, previous.start), previous.end),
            right=_fragment(self.text, token.start, _word_end(self.text, token.end)),
        )

    def any_of(self) -> Expr:
        parts = [self.all_of()]
        while self.token.kind == "OR":
            self.operand_after(self.take())
            parts.append(self.all_of())
        return _joined(AnyOf, parts)

    def all_of(self) -> Expr:
        parts = [self.unary()]
        while self.token.kind == "AND":
            self.operand_after(self.take())
            parts.append(self.unary())
        return _joined(AllOf, parts)

    def operand_after(self, operator: _Token) -> None:
        if self.token.kind not in _TERM_START and self.token.kind not in ("AND", "OR"):
            raise OptionError("filter_dangling", op=operator.kind, part=self._around(operator))

    def unary(self) -> Expr:
        token = self.token
        if token.kind in ("AND", "OR"):
            raise OptionError("filter_dangling", op=token.kind, part=self._around(token))
        if token.kind not in _TERM_START:
            raise OptionError("filter_expected", part=self._around(token))
        if token.kind in ("NOT", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise OptionError("filter_too_deep", limit=MAX_DEPTH)
            expr = self.negated() if token.kind == "NOT" else self.grouped()
            self.depth -= 1
            self.term_start = token.start
            return expr
        return self.term()

    def negated(self) -> Expr:
        self.operand_after(self.take())
        return Not(self.unary())

    def grouped(self) -> Expr:
        opening = self.take()
        expr = self.any_of()
        if self.token.kind == ",":
            raise OptionError("filter_paren_comma", part=self._around(opening))
        if self.token.kind != ")":
            if self.token.kind == "end":
                raise OptionError("filter_paren_unclosed", part=_fragment(self.text, opening.start))
            self.part_ends()
        self.take()
        return expr

    def term(self) -> Term:
        of, self.term_start = Field.TEXT, self.token.start
        if self.token.kind == "field":
            named = self.take()
            of = Field(named.value)
            if self.token.kind not in ("word", "quoted", "regex"):
                raise OptionError(
                    "filter_field_empty", field=_fragment(self.text, named.start, named.end)
                )
        self.terms += 1
        token = self.take()
        if token.kind == "regex":
            return compile_pattern(of, token.value)
        if token.kind == "quoted":
            phrase = _collapsed(token.value).casefold()
            if not phrase:
                raise OptionError("filter_quote_empty")
            return Words(of, phrase)
        words = [token.value]
        while self.token.kind == "word":
            words.append(self.take().value)
        return Words(of, " ".join(words).casefold())

    def _around(self, token: _Token) -> str:
        return _fragment(self.text, max(token.start - 20, 0), token.end + 20)


def _joined(kind: type[AllOf] | type[AnyOf], parts: Iterable[Expr]) -> Expr:
    """One operand stays itself; nested ones of the same kind are flattened."""
    flat: list[Expr] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


# ---------------------------------------------------------------------- regular expressions
def _regex_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = REGEX_MAX_MEM
    options.log_errors = False
    return options


_OPTIONS = _regex_options()
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[0-9]")


def compile_pattern(of: Field, source: str) -> Pattern:
    """An RE2 pattern, or OptionError: empty, too long, too big once compiled, or not RE2
    syntax (lookarounds and backreferences, which need backtracking, are not)."""
    shown = _fragment(source, 0)
    if not source:
        raise OptionError("filter_regex_empty")
    if len(source) > MAX_PATTERN_CHARS:
        raise OptionError("filter_regex_long", limit=MAX_PATTERN_CHARS)
    try:
        program = re2.compile(source, _OPTIONS)
    except re2.error as exc:
        raise _regex_error(exc, shown) from None
    if program.programsize > MAX_PROGRAM_SIZE:
        raise OptionError("filter_regex_complex", pattern=shown)
    return Pattern(of, source, program)


def _regex_error(exc: Exception, shown: str) -> OptionError:
    raw = exc.args[0] if exc.args else b""
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "pattern too large" in detail:
        return OptionError("filter_regex_complex", pattern=shown)
    if "invalid perl operator: (?=" in detail or "invalid perl operator: (?<" in detail:
        return OptionError("filter_regex_lookaround", pattern=shown)
    if "invalid perl operator: (?!" in detail:
        return OptionError("filter_regex_lookaround", pattern=shown)
    if _BACKREFERENCE.search(detail):
        return OptionError("filter_regex_backreference", pattern=shown)
    if "invalid repetition size" in detail:
        return OptionError("filter_regex_repeat", pattern=shown)
    return OptionError("filter_regex_bad", pattern=shown, detail=detail)
