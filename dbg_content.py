import sys, json
from tests.test_realworld_corpus import *
rel, sub = sys.argv[1], sys.argv[2]
body = (CORPUS / rel).read_bytes()
feed = parse_bytes(body, FEED_URL, "application/json" if rel.endswith(".json") else "")
for e in feed.entries:
    if sub in (e.link or e.title):
        break
print("TITLE", repr(e.title), "LINK", e.link, "IMG", e.image_url)
print("BODY", e.content_html[:2500])
m = render_entry(e, feed.title)
print(json.dumps(m.attempts[0].to_dict(), ensure_ascii=False, indent=1)[:3000])
