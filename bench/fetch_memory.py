"""Memory/time of the Fetcher against hostile bodies: `python -m bench.fetch_memory`.

Starts a loopback HTTP server (127.0.0.1, ephemeral port), then in a fresh child process per
case fetches a 1 GiB streamed body and a gzip bomb that decompresses to 1 GiB, with the default
5 MiB cap and allow_private=True. Each child reports its outcome, the body bytes read on the wire,
wall time, baseline RSS before the fetch and peak RSS (resource.getrusage). Prints a table and
writes bench/results/fetch_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path

from bot.errors import FetchError
from bot.feeds.fetcher import Fetcher, FetchSettings

MiB = 1 << 20
CHUNK = 64 * 1024
RESULTS = Path(__file__).resolve().parent / "results" / "fetch_memory.json"
CASES = {"stream": "/stream", "gzip_bomb": "/bomb"}


def gzip_bomb(decompressed: int, block: int = MiB) -> bytes:
    """Valid gzip of `decompressed` zero bytes; after a full flush each block compresses alike."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(block)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    count = decompressed // block
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    trailer = crc.to_bytes(4, "little") + (count * block % 2**32).to_bytes(4, "little")
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + repeat * (count - 1) + comp.flush() + trailer


async def serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bomb: bytes, size: int
) -> None:
    try:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1]
        if path == b"/bomb":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                         b"Content-Type: application/rss+xml\r\nConnection: close\r\n\r\n")
            chunks = (bomb[i:i + CHUNK] for i in range(0, len(bomb), CHUNK))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                         b"Connection: close\r\n\r\n")
            zeros = bytes(CHUNK)
            chunks = (zeros for _ in range(size // CHUNK))
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def run_case(url: str) -> dict[str, object]:
    baseline = rss_mib()
    started = time.monotonic()
    async with Fetcher(FetchSettings(allow_private=True)) as fetcher:
        try:
            result = await fetcher.fetch(url)
            outcome = f"ok {len(result.body)} bytes"
        except FetchError as exc:
            outcome = f"{exc.kind}: {exc}"
        wire = fetcher.stats.wire_bytes
    return {"outcome": outcome, "wire_bytes": wire, "seconds": round(time.monotonic() - started, 3),
            "baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(rss_mib(), 1)}


async def main_async(size: int) -> list[dict[str, object]]:
    bomb = gzip_bomb(size)
    server = await asyncio.start_server(lambda r, w: serve(r, w, bomb, size), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rows = []
    try:
        for case, path in CASES.items():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.fetch_memory", "--child",
                f"http://127.0.0.1:{port}{path}", stdout=subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            rows.append({"case": case, "compressed_size": len(bomb) if "bomb" in case else size,
                         **json.loads(out)})
    finally:
        server.close()
        await server.wait_closed()
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    cols = ["case", "outcome", "wire_bytes", "seconds", "baseline_rss_mib", "peak_rss_mib"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--size-mib", type=int, default=1024, help="body size (default 1 GiB)")
    parser.add_argument("--smoke", action="store_true", help="64 MiB bodies, seconds")
    args = parser.parse_args()
    size = (64 if args.smoke else args.size_mib) * MiB
    results = RESULTS.with_name("fetch_memory-smoke.json") if args.smoke else RESULTS
    if args.child:
        print(json.dumps(asyncio.run(run_case(args.child))))
        return
    rows = asyncio.run(main_async(size))
    print_table(rows)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
