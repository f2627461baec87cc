from datetime import UTC, datetime, timedelta

from bot.diff import SEEN_MIN, new_entries, oldest_first, remember, seen_cap
from bot.identity import entry_key, fingerprint, normalize_link
from bot.models import Entry


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
