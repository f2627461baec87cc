"""Feed health (pure policy): backoff after failures, and which notice subscribers get."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Feed
from bot.pipeline.outbox import Moment
from bot.pipeline.schedule import DAY

NOTIFY_FAILING_AFTER = DAY
PAUSE_FAILING_AFTER = 7 * DAY
#: consecutive failures needed (besides time) before subscribers hear a feed is failing
FAILURES_BEFORE_NOTICE = 3


@dataclass(frozen=True)
class HealthPolicy:
    notify_after: float = NOTIFY_FAILING_AFTER
    pause_after: float = PAUSE_FAILING_AFTER
    max_backoff: float = DAY
    failures_before_notice: int = FAILURES_BEFORE_NOTICE

    def backoff(self, errors: int, interval: float, retry_after: float | None) -> float:
        """Exponential in consecutive errors, capped; a server's Retry-After (itself capped at
        a day, the longest a feed ever waits) is a floor."""
        backoff = min(interval * 2 ** min(errors - 1, 32), self.max_backoff)
        return max(backoff, min(retry_after or 0.0, DAY))

    def failure_notice(self, feed: Feed, kind: str, now: float) -> Notice | None:
        """What subscribers need to hear about this failure (the feed's flags are updated).

        410 Gone retires the feed at once. Otherwise: one "failing" notice after `notify_after`
        of consecutive failures, then the subscriptions pause after `pause_after` (counted again
        from the last pause, so a resumed feed gets a fresh window)."""
        if kind == "gone":
            if feed.retired:
                return None
            feed.retired = True
            return Notice("feed_gone", {"title": feed.title or feed.url, "url": feed.url})
        failing_since = feed.failing_since or now
        window_start = max(failing_since, feed.last_paused or 0.0)
        values: dict[str, object] = {
            "title": feed.title or feed.url,
            "since": Moment(failing_since),
            "reason": feed.failure_reason(),
        }
        if now - window_start >= self.pause_after:
            feed.last_paused, feed.failure_notified = now, True
            return Notice("feed_paused", values, pause=True)
        if (
            now - failing_since >= self.notify_after
            and feed.errors >= self.failures_before_notice
            and not feed.failure_notified
        ):
            feed.failure_notified = True
            return Notice("feed_failing", values)
        return None


@dataclass(frozen=True)
class Notice:
    """A notice for a feed's subscribers: catalogue key, values, and whether they pause."""

    key: str
    values: dict[str, object]
    pause: bool = False


def mark_healthy(feed: Feed, now: float) -> bool:
    """Clear a feed's failure state after a good check (200 or 304). True when its subscribers
    were told it was failing, and so should now hear it is back."""
    recovered = feed.failure_notified
    feed.errors, feed.last_error, feed.last_error_kind, feed.last_reason = 0, "", "", {}
    feed.failing_since, feed.failure_notified, feed.last_paused = None, False, None
    feed.last_check = feed.last_success = now
    return recovered
