"""The architecture holds: no import cycles, the dependency rule between packages, and no unexplained long modules.

The checks read the source with ``ast`` (nothing is imported), so a function-level import counts as much as
one at the top. Imports under ``if TYPE_CHECKING:`` never run: they count for the dependency rule but not
for cycles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "emotion")
MAX_LINES = 500
LONG_REASON = "Over 500 lines because"

# package prefix -> the prefixes it must not import (web_client → http/signalling → calls → media/storage).
# server.cluster is a transport beside http/signalling: it carries their frames and calls between front doors.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "emotion": ("server",),
    "server.storage": (
        "server.calls",
        "server.http",
        "server.signalling",
        "server.media",
        "server.recording",
        "server.webhooks",
    ),
    "server.media": ("server.calls", "server.http", "server.signalling", "server.cluster"),
    "server.calls": ("server.http", "server.signalling", "server.cluster"),
    "server.signalling": ("server.cluster",),
    "server.http": ("server.cluster",),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {
        module_name(root, path): path
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    guarded.update(id(n) for n in ast.walk(stmt))
    return guarded


def imports(root: Path) -> list[Import]:
    """Every import between modules of PACKAGES, at any depth of the file, relative ones resolved."""
    known = modules(root)
    found: list[Import] = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in targets:
                # `import server.calls.center` or a name from a module: the longest known module it names.
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append(Import(name, target, node.lineno, id(node) in guarded))
    return found


def cycles(root: Path) -> list[list[str]]:
    """Strongly connected groups of modules (Tarjan) among the imports that run."""
    graph: dict[str, set[str]] = {name: set() for name in modules(root)}
    for imp in imports(root):
        if not imp.type_only:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layering_violations(root: Path) -> list[str]:
    out = []
    for imp in imports(root):
        for package, banned in FORBIDDEN.items():
            if _within(imp.source, package):
                out.extend(f"{imp.source}:{imp.line} imports {imp.target}" for b in banned if _within(imp.target, b))
    return sorted(set(out))


def long_modules(root: Path) -> list[str]:
    out = []
    for name, path in modules(root).items():
        if not _within(name, "server"):
            continue
        text = path.read_text()
        lines = len(text.splitlines())
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.strip().startswith(LONG_REASON) for line in docstring.splitlines()):
            out.append(f"{name}: {lines} lines and no line starting {LONG_REASON!r} in its docstring")
    return out


def sqlalchemy_importers(root: Path) -> list[str]:
    """Every ``module:line`` in PACKAGES that imports SQLAlchemy, at any depth of the file."""
    out = []
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            if any(_within(target, "sqlalchemy") for target in targets):
                out.append(f"{name}:{node.lineno}")
    return sorted(out)


# the repository


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_packages_import_only_downwards() -> None:
    assert layering_violations(ROOT) == []


def test_long_modules_say_why() -> None:
    assert long_modules(ROOT) == []


def test_only_storage_imports_sqlalchemy() -> None:
    # One SQL layer: every query lives in server/storage/.
    importers = sqlalchemy_importers(ROOT)
    assert [m for m in importers if not _within(m.partition(":")[0], "server.storage")] == []
    assert any(m.startswith("server.storage.base:") for m in importers)  # the walk does see SQLAlchemy


def test_the_walk_sees_the_real_tree() -> None:
    # A walk that found nothing would pass every check above.
    found = {(i.source, i.target) for i in imports(ROOT)}
    assert ("server.signalling.endpoint", "server.calls.center") in found
    assert ("server.app", "server.signalling.endpoint") in found
    assert len(modules(ROOT)) > 50


# the checks themselves, on planted trees


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        for folder in [root / package, *(p for p in (root / package).rglob("*") if p.is_dir())]:
            if folder.is_dir() and not (folder / "__init__.py").exists():
                (folder / "__init__.py").write_text("")
    return root


PLANTED_CYCLES = {
    "through a function-level relative import": (
        {
            "server/calls/a.py": "from . import b\n",
            "server/calls/b.py": "def late() -> None:\n    from ..calls.a import thing\n",
            "server/calls/c.py": "import server.calls.a\n",
        },
        ["server.calls.a", "server.calls.b"],
    ),
    "absolute, beside type-checking imports that are not one": (
        {
            "server/x.py": "import server.y\n",
            "server/y.py": "from server.x import name\n",
            "server/p.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from server.q import Q\n",
            "server/q.py": "from server import p\n",
        },
        ["server.x", "server.y"],
    ),
}


@pytest.mark.parametrize("files, cycle", PLANTED_CYCLES.values(), ids=PLANTED_CYCLES.keys())
def test_a_planted_cycle_is_found(tmp_path: Path, files: dict[str, str], cycle: list[str]) -> None:
    assert cycles(_tree(tmp_path, files)) == [cycle]


def test_each_layering_rule_catches_a_planted_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "emotion/service.py": "from server.config import Settings\n",
            "server/config.py": "",
            "server/storage/store.py": "def f() -> None:\n    from ..webhooks import dispatcher\n",
            "server/webhooks/dispatcher.py": "",
            "server/media/call.py": "from ..signalling.connection import Connection\n",
            "server/signalling/connection.py": "",
            "server/calls/center.py": "from server.http import security\n",
            "server/http/security.py": "from ..calls import center\n",  # allowed: http → calls
        },
    )
    assert layering_violations(root) == [
        "emotion.service:1 imports server.config",
        "server.calls.center:1 imports server.http.security",
        "server.media.call:1 imports server.signalling.connection",
        "server.storage.store:2 imports server.webhooks.dispatcher",
    ]


def test_a_long_module_needs_its_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * MAX_LINES
    root = _tree(
        tmp_path,
        {
            "server/short.py": '"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1),
            "server/long.py": '"""Long.\n\nIt is long, sadly.\n"""\n' + body,
            "server/explained.py": '"""Long.\n\nOver 500 lines because it is a table.\n"""\n' + body,
        },
    )
    assert long_modules(root) == [
        f"server.long: {MAX_LINES + 4} lines and no line starting 'Over 500 lines because' in its docstring"
    ]
