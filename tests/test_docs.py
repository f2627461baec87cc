"""The README is a contract: keep it in step with the code."""

import re
from pathlib import Path

from bot.config import describe
from bot.handlers import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_documents_every_setting() -> None:
    for env, _, _ in describe():
        assert f"`{env}`" in README, env


def test_readme_documents_every_menu_command() -> None:
    for name in COMMANDS:
        assert re.search(rf"`/{name}\b", README), name


def test_ci_runs_the_readme_test_command() -> None:
    test_command = (
        "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest -q"
    )
    assert test_command in README
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_every_benchmark_has_a_smoke_size() -> None:
    import subprocess
    import sys

    from bench.smoke import BENCHMARKS

    for name in BENCHMARKS:
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0 and "--smoke" in result.stdout, name
