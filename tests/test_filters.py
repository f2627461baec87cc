"""Post filters, the pure part (bot.feeds.filters): the syntax, what each form matches, the
errors, the limits on regular expressions, the reasons /filter N test shows, and that filters
stored by older versions mean what they meant."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import OptionError
from bot.feeds.filters import (
    MARKER,
    AllOf,
    AnyOf,
    Expr,
    Field,
    Filter,
    Not,
    Rule,
    Words,
    compile_pattern,
    judge,
    matches,
    normalize_filter,
    parse_filter,
    post_text,
    read_filter,
    render_filter,
    trial,
)
from bot.i18n import t
from bot.models import Entry


def post(
    title: str = "",
    body: str = "",
    author: str = "",
    categories: tuple[str, ...] = (),
    link: str = "https://blog.test/p",
) -> Entry:
    return Entry(
        key=title or "k",
        title=title,
        link=link,
        author=author,
        content_html=body,
        categories=categories,
    )


def passes(entry: Entry, typed: str) -> bool:
    return matches(entry, normalize_filter(typed))


# ------------------------------------------------------------ older filters mean the same
_OLD_TAG = re.compile(r"<[^>]*>")


def old_matches(entry: Entry, spec: str) -> bool:
    """The filter of the previous version, word for word: the reference for stored filters."""
    include: list[str] = []
    exclude: list[str] = []
    for raw in spec.split(","):
        term = " ".join(raw.split()).casefold()
        if term.startswith("!"):
            if term[1:].strip():
                exclude.append(term[1:].strip())
        elif term:
            include.append(term)
    body = html.unescape(_OLD_TAG.sub(" ", entry.content_html))
    text = " ".join(f"{entry.title} {body}".split()).casefold()
    if any(term in text for term in exclude):
        return False
    return not include or any(term in text for term in include)


OLD_WORDS = st.text(alphabet='abc !,:/()"AND OR', max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    spec=OLD_WORDS,
    title=st.text(alphabet="abc !:/()", max_size=10),
    body=st.text(alphabet="abc <>&;!", max_size=10),
)
def test_stored_older_filters_mean_what_they_meant(spec: str, title: str, body: str) -> None:
    entry = post(title=title, body=body)
    assert matches(entry, spec) is old_matches(entry, spec) or not spec.strip()


def test_stored_older_filters_of_real_databases() -> None:
    news = post("Python 3.14 released", "<p>Faster <b>start-up</b></p>")
    java = post("Python and Java", "")
    for spec, expected in (
        ("python,!java", (True, False)),
        ("rust", (False, False)),
        ("!ads", (True, True)),
        ("title:python", (False, False)),
        ("/python/", (False, False)),
        ("(python)", (False, False)),
    ):
        assert (matches(news, spec), matches(java, spec)) == expected, spec
        assert (old_matches(news, spec), old_matches(java, spec)) == expected, spec


def test_word_filters_are_stored_in_the_older_form() -> None:
    assert normalize_filter("Rust, Python, !Sponsored") == "rust, python, !sponsored"
    assert normalize_filter('"AND", "title:x"') == "and, title:x"  # quoted words stay words
    assert normalize_filter('"!x"').startswith(MARKER)  # the older form would read a veto
    assert normalize_filter('"a, b"').startswith(MARKER)
    assert normalize_filter("title:rust").startswith(MARKER)
    for typed in ("Rust, Python, !Sponsored", '"AND", "title:x"'):
        assert read_filter(normalize_filter(typed)) == parse_filter(typed)


# ----------------------------------------------------------------------------- the syntax
def test_fields() -> None:
    entry = post(
        "Rust 1.80",
        "<p>Generic <b>associated</b> types</p>",
        "Alice Smith",
        ("Programming", "Rust"),
        "https://blog.test/2024/rust-180",
    )
    assert passes(entry, "title:rust") and not passes(entry, "title:generic")
    assert passes(entry, "summary:associated types") and not passes(entry, "summary:1.80")
    assert passes(entry, "author:alice") and not passes(entry, "author:bob")
    assert passes(entry, "categories:/^rust$/") and not passes(entry, "categories:/^rus$/")
    assert passes(entry, "tag:program") and passes(entry, "链接:2024")
    assert passes(entry, "link:/\\/2024\\//") and not passes(entry, "link:2025")
    assert passes(entry, "rust 1.80 generic")  # the default: title and summary, as before
    assert passes(entry, "作者：alice") and passes(entry, "Title:RUST")
    assert passes(entry, "re:invent, rust")  # not a field: a word with a colon


def test_and_or_not_and_parts() -> None:
    bot_post = post("Release notes", author="release-bot")
    human = post("Release notes", author="Alice")
    other = post("Weekly links", author="Alice")
    typed = "title:release AND NOT author:/bot$/"
    assert [passes(p, typed) for p in (bot_post, human, other)] == [False, True, False]
    either = "title:weekly OR author:/bot$/"
    assert [passes(p, either) for p in (bot_post, human, other)] == [True, False, True]
    # AND binds tighter than OR; parentheses change that
    assert passes(other, "title:weekly OR title:release AND author:bob")
    assert not passes(other, "(title:weekly OR title:release) AND author:bob")
    # commas: any part keeps a post, any ! part drops it
    assert [
        passes(p, "title:weekly, author:alice, !title:notes") for p in (bot_post, human, other)
    ] == [False, False, True]
    assert passes(human, "!author:bot") and not passes(bot_post, "!author:bot")
    assert passes(human, "NOT NOT author:alice")


def test_regular_expressions_ignore_case_unless_told() -> None:
    entry = post("Rust and Go", author="Bob")
    assert passes(entry, r"title:/\bgo\b/") and passes(entry, "/RUST/")
    assert not passes(entry, "title:/(?-i)rust/") and passes(entry, "title:/(?-i)Rust/")
    assert passes(entry, r'title:/and\sgo/ AND author:"bob"')


@pytest.mark.timeout(10)
def test_a_pathological_pattern_runs_in_linear_time() -> None:
    # (a+)+$ against "aaa…ab" backtracks for ever in Python's re; RE2 answers at once
    entry = post("a" * 100_000 + "b", author="a" * 20_000 + "!")
    assert not passes(entry, "title:/(a+)+$/")
    assert not passes(entry, "/(a|aa)+$/ OR author:/(a*)*$b/")
    assert passes(entry, "title:/(a+)+b$/")


def test_round_trip_examples() -> None:
    for typed in (
        "rust, python, !sponsored",
        "title:/rust|go/ AND NOT author:bot",
        "(a OR b) AND c, !tag:/^ads?$/",
        "x OR /a\\/b/",
        '"AND" OR "x,y"',
        "NOT (a AND b)",
        "a AND (b OR c AND d)",
    ):
        rules = parse_filter(typed)
        assert parse_filter(render_filter(rules)) == rules, typed
        assert read_filter(normalize_filter(typed)) == rules, typed


PHRASES = (
    st.text(alphabet='ab :/!"\\,()', min_size=1, max_size=6)
    .map(lambda s: " ".join(s.split()).casefold())
    .filter(bool)
)
SOURCES = st.sampled_from(["a", "a/b", "\\\\/", "\\\\", "x|y", "^a b$", "[/]", "\\d+"])
FIELDS = st.sampled_from(list(Field))
LEAVES = st.one_of(
    st.builds(Words, FIELDS, PHRASES),
    st.builds(lambda f, s: compile_pattern(f, s), FIELDS, SOURCES),
)


def _exprs() -> st.SearchStrategy[Expr]:
    def nest(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        many = st.lists(children, min_size=2, max_size=3)
        return st.one_of(
            st.builds(Not, children),
            many.map(lambda parts: AllOf(tuple(_flat(AllOf, parts)))),
            many.map(lambda parts: AnyOf(tuple(_flat(AnyOf, parts)))),
        )

    return st.recursive(LEAVES, nest, max_leaves=6)


def _flat(kind: type, parts: list[Expr]) -> list[Expr]:
    return [q for p in parts for q in (p.parts if isinstance(p, kind) else (p,))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_exprs(), st.booleans()), min_size=1, max_size=3))
def test_any_filter_reads_back_as_itself(rules: list[tuple[Expr, bool]]) -> None:
    built = Filter(tuple(Rule(expr, veto) for expr, veto in rules))
    assert parse_filter(render_filter(built), capped=False) == built
    assert read_filter(MARKER + render_filter(built)) == built


# -------------------------------------------------------------------------------- errors
MISTAKES = {
    "": "filter_empty",
    ", ,": "filter_empty",
    "x" * 501: "filter_too_long",
    ", ".join(f"w{i}" for i in range(31)): "filter_too_many",
    "rust AND": "filter_dangling",
    "AND rust": "filter_dangling",
    "rust OR OR go": "filter_dangling",
    "NOT": "filter_dangling",
    "()": "filter_expected",
    "title:": "filter_field_empty",
    "title: AND x": "filter_field_empty",
    "(a": "filter_paren_unclosed",
    "a)": "filter_paren_unexpected",
    "(a, b)": "filter_paren_comma",
    "(" * 9 + "a" + ")" * 9: "filter_too_deep",
    "title:rust author:bob": "filter_missing_operator",
    "a /b/": "filter_missing_operator",
    "rust !go": "filter_bang_inside",
    "rust, !": "filter_bang_alone",
    '"abc': "filter_quote_unclosed",
    '""': "filter_quote_empty",
    "/abc": "filter_regex_unclosed",
    "/a/i": "filter_after_regex",
    "//": "filter_regex_empty",
    "/" + "a" * 201 + "/": "filter_regex_long",
    "/.{1000}/": "filter_regex_complex",
    "/((a{100}){100}){100}/": "filter_regex_repeat",
    "/a{1001}/": "filter_regex_repeat",
    "/(?=x)y/": "filter_regex_lookaround",
    "/(?<!x)y/": "filter_regex_lookaround",
    "/(a)\\1/": "filter_regex_backreference",
    "/(a/": "filter_regex_bad",
    "/[z-a]/": "filter_regex_bad",
}


@pytest.mark.parametrize("typed", list(MISTAKES))
def test_every_mistake_has_its_own_message(typed: str) -> None:
    with pytest.raises(OptionError) as refused:
        normalize_filter(typed)
    key = refused.value.key
    assert key == MISTAKES[typed]
    for lang in ("en", "zh"):
        text = refused.value.reason.text(lang)
        assert text and key not in text
    assert t(key, "zh") != t(key, "en")


def test_the_invalid_pattern_is_named_in_its_error() -> None:
    with pytest.raises(OptionError) as refused:
        normalize_filter("author:/(bot/")
    assert "(bot" in refused.value.text() and "missing )" in refused.value.text()
    with pytest.raises(OptionError) as inside:
        normalize_filter("rust AND !go")
    assert "<code>NOT go</code>" in inside.value.text()


def test_a_stored_filter_that_no_longer_reads_lets_posts_through() -> None:
    assert read_filter(MARKER + "title:/(/") == Filter()
    assert matches(post("anything"), MARKER + "title:/(/")


# ------------------------------------------------------------------------ verdicts
def test_verdicts_say_which_part_and_terms() -> None:
    rules = parse_filter("title:rust AND NOT author:bot, summary:go, !categories:ads")
    rust = judge(rules, post_text(post("Rust news", author="Alice")))
    assert rust.passed and rust.rule == rules.rules[0]
    assert [term.phrase for term in rust.hits if isinstance(term, Words)] == ["rust"]
    ad = judge(rules, post_text(post("Rust news", categories=("Ads",))))
    assert not ad.passed and ad.rule == rules.rules[2]
    other = judge(rules, post_text(post("Weekly")))
    assert not other.passed and other.rule is None
    only_vetoes = parse_filter("!ads")
    assert judge(only_vetoes, post_text(post("x"))).passed


def test_trial_marks_what_the_chat_wide_filter_decides() -> None:
    posts = [post("Rust 1"), post("Rust ads"), post("Go")]
    verdicts = trial(posts, normalize_filter("rust"), normalize_filter("!ads"))
    assert [(v.verdict.passed, v.by_chat) for v in verdicts] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    assert [v.verdict.passed for v in trial(posts, "", "")] == [True, True, True]
