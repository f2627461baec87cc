"""Feed entry -> Telegram message.

Why Telegram HTML (parse_mode="HTML") with a strict whitelist, rather than entities or Markdown:

- Bot-API-visible: the exact string we send is the exact string the Bot API parses, so what a
  user sees can be reproduced from the stored RenderedMessage alone.
- Debuggable: `feedbot preview --json` shows readable markup (`<b>`, `<a href>`), where an
  entity list is a column of UTF-16 offsets no human can check by eye.
- Validated: the fake Bot API (tests/fakes/telegram_rules.py) parses it like Telegram does, and
  every rendering is checked against it. MarkdownV2 would need escaping of 18 characters in
  every feed-controlled string; HTML needs only &lt; &gt; &amp; &quot;.

We only ever emit b, i, u, s, a href, code, pre (+ <code class="language-x">) and blockquote,
never nest code/pre inside anything but blockquote, a inside a, or blockquote inside
blockquote, and only the four named entities above.
"""

from bot.render.convert import html_to_telegram
from bot.render.cut import measure, plain_text, utf16_len
from bot.render.math import tex_to_unicode
from bot.render.message import RenderOptions, format_date, render_entry

__all__ = [
    "RenderOptions",
    "format_date",
    "html_to_telegram",
    "measure",
    "plain_text",
    "render_entry",
    "tex_to_unicode",
    "utf16_len",
]
