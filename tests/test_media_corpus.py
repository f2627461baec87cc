"""Every enclosure of the real-world corpus (../shared/corpus/realworld/) reaches the reader: as
media (audio, video, photo, album item) or as a link line, in the first form and in every fallback;
and every form rendered is one Telegram accepts.

`python -m tests.test_media_corpus` prints the survey (files whose enclosures all arrive / files
with enclosures) without asserting, for before/after numbers.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.errors import FeedbotError
from bot.feeds.parser import parse_bytes
from bot.models import ApiCall, Entry, RenderedMessage
from bot.render import render_entry
from tests.fakes.telegram_rules import api_call_error

REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "realworld"
FILE_FIELDS = ("audio", "video", "photo", "document")


@dataclass
class Survey:
    files: int = 0  # files with at least one enclosure
    passing: int = 0  # ... whose every enclosure arrives in every form
    entries: int = 0  # entries with at least one enclosure
    problems: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # forms Telegram would refuse


def carries(call: ApiCall, url: str) -> bool:
    """The call shows `url` as its file, an album item, its preview or a link in its text."""
    params = call.params
    if any(params.get(f) == url for f in FILE_FIELDS):
        return True
    media = params.get("media")
    if isinstance(media, list) and any(item.get("media") == url for item in media):
        return True
    preview = params.get("link_preview_options")
    if isinstance(preview, dict) and preview.get("url") == url:
        return True
    text = str(params.get("text") or params.get("caption") or "")
    if isinstance(media, list) and media:
        text = str(media[0].get("caption") or "")
    return f'href="{html.escape(url, quote=True)}"' in text or url in html.unescape(text)


def follow_up(message: RenderedMessage) -> RenderedMessage | None:
    return getattr(message, "follow_up", None)  # (absent before albums: the "before" survey)


def forms(message: RenderedMessage) -> list[ApiCall]:
    follow = follow_up(message)
    return [*message.attempts, *(follow.attempts if follow is not None else ())]


def entry_problems(entry: Entry, message: RenderedMessage) -> list[str]:
    """What of the entry's enclosures a reader would not get."""
    follow = follow_up(message)
    shown = [message.attempts[0], *([follow.attempts[0]] if follow is not None else [])]
    out = []
    for enc in entry.enclosures:
        url = enc.url.strip()
        if not url.startswith(("http://", "https://")):
            continue
        if not any(carries(call, url) for call in shown):
            out.append(f"{url} ({enc.type}) not in the message")
        elif not enc.type.startswith("image/"):
            lost = [i for i, call in enumerate(message.attempts) if not carries(call, url)
                    and not (follow is not None and carries(follow.attempts[0], url))]
            if lost:
                out.append(f"{url} ({enc.type}) missing from fallback forms {lost}")
    return out


def survey_file(path: Path, survey: Survey) -> None:
    try:
        feed = parse_bytes(path.read_bytes(), "https://feed.test/" + path.name)
    except FeedbotError:
        return
    with_enclosures = [e for e in feed.entries if e.enclosures]
    file_ok = True
    for entry in feed.entries:
        message = render_entry(entry, feed.title)
        for call in forms(message):
            error = api_call_error(call.method, call.params)
            if error:
                survey.invalid.append(f"{path}: {entry.key}: {call.method}: {error}")
                file_ok = False
        if entry.enclosures:
            problems = entry_problems(entry, message)
            survey.problems += [f"{path.relative_to(REALWORLD)}: {p}" for p in problems]
            file_ok = file_ok and not problems
    if with_enclosures:
        survey.files += 1
        survey.entries += len(with_enclosures)
        survey.passing += int(file_ok)


def survey(root: Path = REALWORLD) -> Survey:
    result = Survey()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name in ("README.md", "MANIFEST.tsv"):
            continue
        survey_file(path, result)
    return result


def test_every_enclosure_of_the_realworld_corpus_arrives_and_every_form_is_valid() -> None:
    if not REALWORLD.is_dir():
        pytest.skip("../shared/corpus/realworld is not present")
    result = survey()
    assert result.files >= 100  # the corpus holds podcasts, media RSS, JSON Feed attachments
    assert result.invalid == []
    assert result.problems == [], f"{len(result.problems)} enclosures lost"
    assert result.passing == result.files


if __name__ == "__main__":
    found = survey()
    print(json.dumps({
        "files_with_enclosures": found.files, "files_passing": found.passing,
        "entries_with_enclosures": found.entries, "enclosures_lost": len(found.problems),
        "invalid_forms": len(found.invalid),
    }))
    for line in (found.invalid + found.problems)[:40]:
        print(line)
