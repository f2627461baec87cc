"""Golden files for media posts: a podcast feed (audio with caption, a file too large to send by
URL, show notes that follow the audio), a YouTube video, an untitled Flickr photo and two album
posts, parsed by the bot's own parser (enclosures, itunes tags and pictures come from it) and
rendered to exactly the forms frozen in tests/golden/media-*.json.

Regenerate after an intended change with UPDATE_GOLDEN=1 (then read the diff as a reader would).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.feeds.parser import parse_bytes
from bot.models import RenderedMessage
from bot.render import render_entry
from tests.test_render_golden import matches_golden
from tests.test_render_validator import assert_accepted

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def frozen(message: RenderedMessage) -> dict[str, Any]:
    follow = message.follow_up
    return {"attempts": message.to_list(), "follow_up": follow.to_list() if follow else None}


def render_file(name: str) -> dict[str, dict[str, Any]]:
    feed = parse_bytes((GOLDEN / "media" / f"{name}.xml").read_bytes(),
                       f"https://feeds.example/{name}.xml")
    out = {}
    for entry in feed.entries:
        message = render_entry(entry, feed.title)
        assert_accepted(message)
        out[entry.key] = frozen(message)
    return out


@pytest.mark.parametrize("name", ["podcast", "youtube", "flickr", "album"])
def test_media_posts_match_golden(name: str) -> None:
    matches_golden(GOLDEN / f"media-{name}.json", render_file(name))


def test_media_posts_read_well() -> None:
    """What the golden files hold, in words."""
    podcast = render_file("podcast")
    first = podcast["ktr-12"]["attempts"][0]
    assert first["method"] == "sendAudio"
    assert first["params"]["performer"] == "Ada Lovelace & Grace Hopper"
    assert first["params"]["thumbnail"] == "https://radio.example.org/art/ep12.jpg"
    # too large to send, and no page of its own: the artwork as the photo, the Listen line in
    # its caption
    too_big = podcast["ktr-11"]["attempts"][0]["params"]
    listen = '🎧 <a href="https://cdn.example.org/ktr/ktr-011.mp3">Listen</a> (176 MB, 3:12:40)'
    assert listen in too_big["caption"]
    assert too_big["photo"] == "https://radio.example.org/art/ep11.jpg"
    notes = podcast["ktr-10"]
    assert notes["follow_up"][0]["params"]["text"].endswith("sent a spreadsheet.")
    (video,) = render_file("youtube").values()
    assert video["attempts"][0]["method"] == "sendMessage"  # its preview plays the video
    (photo,) = render_file("flickr").values()
    caption = photo["attempts"][0]["params"]["caption"]
    assert '<a href="https://www.flickr.com/photos/ada_photos/53311123456/">21 Nov' in caption
    albums = render_file("album")
    coast = albums["https://notes.example.net/2026/coast/"]["attempts"][0]["params"]["media"]
    assert [m["media"].rsplit("/", 1)[1] for m in coast] == [
        "lighthouse-1024x768.jpg", "cliffs-1024x768.jpg", "bay-1024x683.jpg"
    ]
    bench = albums["https://notes.example.net/2026/workbench/"]
    assert len(bench["attempts"][0]["params"]["media"]) == 4
    assert bench["follow_up"][0]["params"]["link_preview_options"] == {"is_disabled": True}
