"""Run every benchmark at a tiny size so none of them rots. CI calls this; no timing is asserted.

    python -m bench.smoke

Benchmarks that need a PostgreSQL server (`NEEDS_POSTGRES`) run only when
FEEDBOT_TEST_DATABASE_URL names one (CI's .ci/run starts one); without it they are skipped with
a line saying so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

BENCHMARKS = (
    "poll", "delivery", "storage", "latency", "fetch_memory", "fanout", "idle", "first_read",
    "checkers", "check_cost",
)
#: these empty and fill the database at FEEDBOT_TEST_DATABASE_URL
NEEDS_POSTGRES = frozenset({"checkers"})


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        module = f"bench.{name}"
        if importlib.util.find_spec(module) is None:
            print(f"smoke: {module} not present, skipped")
            continue
        if name in NEEDS_POSTGRES and not os.environ.get("FEEDBOT_TEST_DATABASE_URL"):
            print(f"smoke: {module} skipped: no PostgreSQL (FEEDBOT_TEST_DATABASE_URL not set)")
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
