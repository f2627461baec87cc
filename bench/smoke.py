"""Run every benchmark at a tiny size so none of them rots. CI calls this; no timing is asserted.

    python -m bench.smoke
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

BENCHMARKS = (
    "poll", "delivery", "storage", "latency", "fetch_memory", "fanout", "idle", "first_read",
)


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        module = f"bench.{name}"
        if importlib.util.find_spec(module) is None:
            print(f"smoke: {module} not present, skipped")
            continue
        print(f"smoke: {module} --smoke", flush=True)
        if subprocess.run([sys.executable, "-m", module, "--smoke"], check=False).returncode:
            failed.append(module)
    if failed:
        print(f"smoke: failed: {', '.join(failed)}")
        return 1
    print("smoke: all benchmarks ran")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
