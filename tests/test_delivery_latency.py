"""The latency benchmark (bench/latency.py): its load stays within one chat's Telegram limit, and
each post's latency is split into schedule / check / queue phases that add up to the whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.latency import _phases, measure, slowest_spacing
from bot.delivery.sender import DeliverySettings

ROOT = Path(__file__).resolve().parents[1]


def test_spacing_at_the_chat_limit_is_refused() -> None:
    assert slowest_spacing() == 1.0 / DeliverySettings().private_per_second
    result = subprocess.run(
        [sys.executable, "-m", "bench.latency", "--spacing", str(slowest_spacing())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "--spacing must exceed" in result.stderr


def test_phases_split_at_the_first_fetch_and_enqueue_after_the_post() -> None:
    fetches = [1.0, 6.0, 11.0]
    enqueues = [1.1, 11.2]  # the check at 6.0 found nothing new
    assert _phases(7.0, fetches, enqueues, sent=14.0) == {
        "schedule": 4.0, "check": 0.2, "queue": 2.8,
    }


def test_phases_without_a_later_fetch_end_at_the_send() -> None:
    # no fetch or enqueue recorded after the post: the unknown phases collapse onto the send
    assert _phases(20.0, [1.0], [1.1], sent=23.0) == {"schedule": 3.0, "check": 0.0, "queue": 0.0}


@pytest.mark.timeout(60)
async def test_a_short_run_delivers_every_post_and_accounts_for_its_latency() -> None:
    row = await measure(posts=3, interval=1, spacing=1.5, seed=3)
    assert len(row["latencies_s"]) == 3
    for post, latency in zip(row["per_post"], row["latencies_s"], strict=True):
        parts = post["schedule"] + post["check"] + post["queue"]
        assert parts == pytest.approx(latency, abs=0.005)
        assert min(post["schedule"], post["check"], post["queue"]) >= 0
