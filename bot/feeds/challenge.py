"""Anti-bot challenges: an error answer that is a CDN's "prove you are a browser" page rather
than the site refusing the feed. Pure: the status, the headers (lower-case names) and the
first bytes of the body in, the service's name or None out.

A feed reader cannot pass such a check (it needs JavaScript, cookies or a captcha), so the user
is told what it is and what may help, instead of a bare "HTTP 403". Only markers the services
document or put on every challenge page are used, so an ordinary 403 stays an ordinary 403."""

from __future__ import annotations

from collections.abc import Mapping

#: how much of an error answer's body is read to look for the markers
SNIFF_BYTES = 16 * 1024
#: statuses the services answer a challenge with
CHALLENGE_STATUSES = frozenset({403, 429, 503})

#: (service, header that names it: (name, value fragment), markers on its challenge page)
_SERVICES: tuple[tuple[str, tuple[str, str], tuple[bytes, ...]], ...] = (
    ("Cloudflare", ("server", "cloudflare"),
     (b"cf-chl", b"challenge-platform", b"<title>just a moment...</title>",
      b"attention required! | cloudflare", b"cf_chl_opt")),
    ("DDoS-Guard", ("server", "ddos-guard"), (b"ddos-guard",)),
    ("Sucuri", ("server", "sucuri"), (b"sucuri website firewall",)),
    ("Akamai", ("server", "akamaighost"), (b"access denied", b"reference&#32;&#35;")),
)


def challenge_service(status: int, headers: Mapping[str, str], body_start: bytes) -> str | None:
    """The anti-bot service whose challenge this answer is, or None."""
    if status not in CHALLENGE_STATUSES:
        return None
    if headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return "Cloudflare"  # Cloudflare's own header on every challenge answer
    page = body_start[:SNIFF_BYTES].lower()
    for service, (name, fragment), markers in _SERVICES:
        if fragment in headers.get(name, "").lower() and any(m in page for m in markers):
            return service
    return None
