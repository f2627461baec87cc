import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.feeds.diff import (
    SEEN_MIN,
    new_entries,
    oldest_first,
    remember,
    seen_cap,
)
from bot.feeds.identity import entry_key, fingerprint, normalize_link, title_date_link_key
from bot.feeds.parser import parse_bytes
from bot.models import Entry, Prints
from bot.storage.base import remember_in_feed
from tests.fakes.feeds import BASE_DATE, item, rss
from tests.test_poller import Rig, rig  # noqa: F401


def entry(key: str, minutes: int | None = None, alt: tuple[str, ...] = ()) -> Entry:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    published = base + timedelta(minutes=minutes) if minutes is not None else None
    return Entry(
        key=key, title=key, link=f"https://x.test/{key}", published=published, alt_keys=alt
    )


def test_key_prefers_guid_then_link_then_content_hash() -> None:
    assert entry_key(" g-1 ", "https://a.test/p", "t", None, "s") == "g-1"
    assert (
        entry_key("", "HTTPS://A.test/p/?utm_source=x#frag", "t", None, "s") == "https://a.test/p"
    )
    hashed = entry_key(None, None, "title", None, "summary")
    assert hashed.startswith("sha256:")
    assert hashed == entry_key(None, None, "title", None, "summary")
    assert hashed != entry_key(None, None, "title", None, "other summary")


def test_normalize_link_drops_tracking_and_fragment_keeps_real_query() -> None:
    assert normalize_link("https://Ex.test/a/?id=3&utm_medium=rss#top") == "https://ex.test/a?id=3"


def test_new_entries_oldest_first_and_only_unseen() -> None:
    entries = [entry("c", 3), entry("b", 2), entry("a", 1)]
    seen = [fingerprint("a")]
    assert [e.key for e in new_entries(entries, seen)] == ["b", "c"]


def test_without_dates_document_order_is_reversed() -> None:
    entries = [entry("newest"), entry("middle"), entry("oldest")]
    assert [e.key for e in oldest_first(entries)] == ["oldest", "middle", "newest"]


def test_duplicate_guid_inside_one_feed_is_new_once() -> None:
    entries = [entry("same", 2), entry("same", 1)]
    assert len(new_entries(entries, [])) == 1


def test_guid_wobble_is_caught_by_alternate_link_key() -> None:
    first = entry("guid-v1", 1, alt=("link:https://x.test/post",))
    seen = remember([], [first], 10)
    wobbled = entry("guid-v2", 1, alt=("link:https://x.test/post",))
    assert new_entries([wobbled], seen) == []


def test_seen_set_is_bounded_and_keeps_newest() -> None:
    entries = [entry(f"k{i}", i) for i in range(500)]
    seen = remember([], entries, seen_cap(30))
    assert len(seen) == SEEN_MIN
    assert seen[-1] == fingerprint("k499")
    assert fingerprint("k0") not in seen


def test_post_that_drops_out_and_back_is_not_resent() -> None:
    feed_now = [entry(f"k{i}", i) for i in range(30)]
    seen = remember([], feed_now, seen_cap(30))
    # k0 drops out of the feed for a while, then comes back
    later = [entry(f"k{i}", i) for i in range(1, 31)]
    seen = remember(seen, later, seen_cap(30))
    back = [entry("k0", 0), *later]
    assert [e.key for e in new_entries(back, seen)] == []


def test_seen_cap_scales_with_feed_size() -> None:
    assert seen_cap(4) == 200
    assert seen_cap(150) == 300


# ----------------------------------------------- guid wobble on a feed with one shared link
def wobbling_feed(count: int, rng: random.Random) -> str:
    """`count` posts that all link to the same page, each with a new random guid every time."""
    page = "https://blog.example.org/news/"
    items = [
        item(
            guid=f"urn:uuid:{rng.getrandbits(128):032x}",
            title=f"Notice {n}",
            link=page,
            pub_date=BASE_DATE + timedelta(hours=n),
            html=f"<p>notice {n}</p>",
        )
        for n in range(count, 0, -1)
    ]
    return rss("Notices", page, items)


def test_title_date_and_link_together_identify_a_post_whose_guid_wobbles() -> None:
    rng = random.Random(3)
    first = parse_bytes(wobbling_feed(10, rng).encode(), "https://f.test/feed.xml")
    seen = remember([], oldest_first(first.entries), seen_cap(10))
    again = parse_bytes(wobbling_feed(10, rng).encode(), "https://f.test/feed.xml")
    assert {e.key for e in again.entries}.isdisjoint(e.key for e in first.entries)
    assert new_entries(again.entries, seen) == []
    # two posts alike in all three are told apart by their guids only: no second identity
    twins = parse_bytes(
        rss("T", "https://p.test/", [
            item("g1", "Same", "https://p.test/", BASE_DATE, "a"),
            item("g2", "Same", "https://p.test/", BASE_DATE, "b"),
        ]).encode(),
        "https://f.test/t.xml",
    )
    assert [e.alt_keys for e in twins.entries] == [(), ()]
    assert len(new_entries(twins.entries, [])) == 2
    assert title_date_link_key("Same", None, "https://p.test/") == ""  # needs all three


async def test_a_wobbling_feed_checked_20_times_sends_only_its_one_new_post(rig: Rig) -> None:  # noqa: F811
    rng = random.Random(5)
    rig.server.set_feed("/n.xml", wobbling_feed(10, rng))
    url = await rig.subscribe("/n.xml")
    sent: list[str] = []
    for fetch in range(20):
        count = 11 if fetch >= 10 else 10  # one real new post half way
        rig.server.set_feed("/n.xml", wobbling_feed(count, rng))
        await rig.run_when_due(url)
        sent += await rig.drain()
    assert rig.server.hits("/n.xml") == 21
    assert len(sent) == 1 and "Notice 11" in sent[0]


def test_a_chat_seen_set_grows_packed_keeping_known_prints_in_place() -> None:
    from bot.models import Prints
    from bot.pipeline.outbox import merge_chat_seen

    seen = Prints([f"{i:016x}" for i in range(5)])
    merged = merge_chat_seen(seen, [f"{3:016x}", f"{9:016x}", f"{9:016x}", "not-a-print"])
    assert isinstance(merged, Prints)
    assert list(merged)[:6] == [f"{i:016x}" for i in (0, 1, 2, 3, 4, 9)]  # 3 stays put
    assert len(merged) == 7 and "not-a-print" in merged
    assert merge_chat_seen(seen, [f"{1:016x}"]) is seen  # nothing new: the same packed set
    many = [f"{i:016x}" for i in range(100, 2100)]
    capped = merge_chat_seen(merged, many)
    assert len(capped) == 2000 and list(capped)[-1] == many[-1] and f"{9:016x}" not in capped


def test_a_packed_print_is_only_found_on_a_print_boundary() -> None:
    from bot.models import Prints

    seen = Prints(bytes(range(16)))  # 0001..07, 0809..0f
    assert seen.holds(bytes(range(8))) and seen.holds(bytes(range(8, 16)))
    assert not seen.holds(bytes(range(4, 12)))  # straddles two prints


@given(
    st.lists(st.integers(0, 40), max_size=60, unique=True),
    st.lists(st.integers(0, 40), max_size=30),
    st.integers(0, 50),
)
def test_a_seen_set_is_remembered_packed_as_the_list_would_be(
    seen: list[int], new: list[int], cap: int
) -> None:
    """`remember_in_feed` (packed, `Prints.with_newest`) against the plain recency list: each
    new print moves to the end, the newest `cap` kept (0: all)."""
    as_prints = [fingerprint(f"k{n}") for n in seen]
    added = [fingerprint(f"k{n}") for n in new]
    merged = dict.fromkeys(as_prints)
    for p in added:
        merged.pop(p, None)
        merged[p] = None
    expected = list(merged)[-cap:] if cap else list(merged)
    got = remember_in_feed(Prints(as_prints), added, cap)
    assert isinstance(got, Prints) and list(got) == expected
    assert list(remember_in_feed(as_prints, added, cap)) == expected  # from a plain list too
