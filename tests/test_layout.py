"""The package's shape, read from the code: no import cycles (lazy and TYPE_CHECKING imports
included), tinydb only under bot/storage/ and the PostgreSQL driver only under
bot/storage/postgres/. Pure: parses the source, imports nothing."""

from __future__ import annotations

import ast
from pathlib import Path

BOT_DIR = Path(__file__).resolve().parent.parent / "bot"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BOT_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(BOT_DIR.rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every dotted name an import statement anywhere in the file may refer to (`from a import b`
    names both `a` and `a.b`), relative imports resolved."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imported_names(path):
            while imported and imported not in known:  # a name inside a module: the module
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_bot() -> None:
    assert cycles(import_graph()) == []


def importers_of(top_level: str) -> list[str]:
    """The bot's modules that import the package `top_level` (or a module of it)."""
    return sorted(
        name for name, path in modules().items()
        if any(n.split(".")[0] == top_level for n in imported_names(path))
    )


def within(package: str, name: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def test_only_storage_imports_tinydb() -> None:
    users = importers_of("tinydb")
    assert users and all(within("bot.storage", u) for u in users), users


def test_only_the_postgres_backend_imports_its_driver() -> None:
    for driver in ("asyncpg", "psycopg", "psycopg2"):
        users = importers_of(driver)
        assert all(within("bot.storage.postgres", u) for u in users), (driver, users)
    assert importers_of("asyncpg"), "the postgres backend's driver is asyncpg"
