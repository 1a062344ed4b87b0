"""The sharpen package's structure, from its imports: every ``import`` and ``from ...
import`` of a sharpen module, at the top of a file or inside a function, is an edge of a
graph (one under ``if TYPE_CHECKING:`` never runs and is not). ``make lint`` and
tests/test_imports.py run it; it prints

- the **rooms**: each package directly under ``sharpen`` (``data``, ``reports``, …) and
  each root module (``errors``, ``cli``, …); ``sharpen`` itself is its ``__init__.py``;
- the **floors**: ``FLOORS`` below, the rooms in a declared order from the bottom up;
- every **upward arrow** (a room importing a room on its own or a higher floor) and every
  **circle** (a strongly connected group of two or more modules), and exits 1 if there is
  one, or a room no floor holds;
- the count of imports inside functions, how many of them say why they stay there (a
  trailing ``# lazy: <why>`` on the import line: ``LAZY_MARK`` below; tests/test_imports.py
  fails on one without it outside cli.py), and the longest functions.

    python tools/import_cycles.py
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The floors, bottom first: a room may import only rooms of lower floors (two rooms of one
# floor import neither each other). A new room goes on the lowest floor above everything
# it imports.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "_version", "machine"),  # machine: torch-free, imports no room
    ("io", "plugins", "metrics", "console", "imageops", "renamed"),
    ("rundir", "training", "models", "verdicts"),
    ("data",),  # data/prepare.py builds the loop's TrainData
    ("techniques",),
    ("reports",),  # reports/report.py asks each technique for its section
    ("experiments",),  # the runner writes the report
    ("bench", "sharpen"),  # sharpen: the front door of `import sharpen` (load_model)
    ("cli",),
)


def modules(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for p in sorted((src / "sharpen").rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the sharpen module it imports
    line: int
    in_function: bool  # inside a def (lazy: runs when the function is called)
    why: str = ""  # the import line's `# lazy: <why>`, "" when it has none


# An import left inside a function says why on its line (the one with `import`): a circle, an
# upward arrow, start-up time (the CLI loads no torch for --help), an optional dependency
LAZY_MARK = re.compile(r"#\s*lazy:\s*(\S.*?)\s*$")


def lazy_why(line: str) -> str:
    """The why of a ``# lazy: <why>`` comment on ``line``; "" when there is none."""
    m = LAZY_MARK.search(line)
    return m.group(1) if m else ""


def _scopes(tree: ast.AST) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every node with (inside a function?, under ``if TYPE_CHECKING:``?)."""
    todo: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
    while todo:
        node, in_fn, typing_only = todo.pop()
        yield node, in_fn, typing_only
        for child in ast.iter_child_nodes(node):
            fn = in_fn or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            t = typing_only or (isinstance(node, ast.If) and child in node.body
                                and "TYPE_CHECKING" in ast.unparse(node.test))
            todo.append((child, fn, t))


def imports(mods: dict[str, Path]) -> list[Import]:
    """Every import of a sharpen module by a sharpen module (a name imported from a package
    is the package's submodule when one has that name, else the package itself); imports
    under ``if TYPE_CHECKING:`` never run and are left out."""
    out: list[Import] = []
    for m, path in mods.items():
        is_pkg = path.name == "__init__.py"
        text = path.read_text()
        lines = text.splitlines()
        for node, in_fn, typing_only in _scopes(ast.parse(text, str(path))):
            targets: list[str] = []
            if typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package
                    pkg = m.split(".") if is_pkg else m.split(".")[:-1]
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for t in dict.fromkeys(targets):
                while t and t not in mods:  # `import sharpen.a.b` names sharpen.a.b
                    t = t.rpartition(".")[0]
                if t and t != m:
                    out.append(Import(m, t, node.lineno, in_fn, lazy_why(lines[node.lineno - 1])))
    return sorted(out, key=lambda i: (i.module, i.line, i.target))


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module → the sharpen modules it imports (:func:`imports`)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for i in imports(mods):
        graph[i.module].add(i.target)
    return graph


def room(module: str) -> str:
    """``sharpen.reports.stats`` → ``reports``; ``sharpen.cli`` → ``cli``; ``sharpen``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def unexplained(found: list[Import], exempt: Sequence[str] = ("sharpen.cli",)) -> list[Import]:
    """The imports inside functions that do not say why (no ``# lazy: <why>``), in modules
    other than ``exempt``."""
    return [i for i in found if i.in_function and not i.why and i.module not in exempt]


def floor_of(floors: Sequence[Sequence[str]] = FLOORS) -> dict[str, int]:
    return {r: i for i, rooms in enumerate(floors) for r in rooms}


def upward(found: list[Import], floors: Sequence[Sequence[str]] = FLOORS) -> list[Import]:
    """The imports from a room to a room on the same or a higher floor (a room's imports
    of its own modules are not arrows)."""
    level = floor_of(floors)
    return [i for i in found if room(i.module) != room(i.target)
            and room(i.module) in level and room(i.target) in level
            and level[room(i.target)] >= level[room(i.module)]]


def unplaced(mods: dict[str, Path], floors: Sequence[Sequence[str]] = FLOORS) -> list[str]:
    """Rooms no floor holds, and floor entries that are no room."""
    rooms, placed = {room(m) for m in mods}, set(floor_of(floors))
    return sorted(rooms - placed) + [f"{r} (on a floor, but no such room)"
                                     for r in sorted(placed - rooms)]


def longest_functions(mods: dict[str, Path], n: int = 10) -> list[tuple[int, str]]:
    """(lines, "path:name") of the ``n`` longest functions and methods, longest first."""
    out = []
    for path in mods.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                out.append((node.end_lineno - start + 1,
                            f"{path.relative_to(SRC.parent).as_posix()}:{node.name}"))
    return sorted(out, key=lambda t: (-t[0], t[1]))[:n]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main() -> int:
    mods = modules()
    found = imports(mods)
    circles = cycles(edges(mods))
    up = upward(found)
    missing = unplaced(mods)
    rooms = sorted({room(m) for m in mods})
    print(f"rooms: {len(rooms)} ({', '.join(rooms)})")
    print(f"floors: {len(FLOORS)}, bottom first: "
          + " → ".join("/".join(f) for f in FLOORS))
    lazy = Counter(room(i.module) for i in found if i.in_function)
    print(f"imports of sharpen modules: {len(found)}, inside functions: {sum(lazy.values())} ("
          + ", ".join(f"{r} {k}" for r, k in lazy.most_common()) + ")")
    why = sum(1 for i in found if i.in_function and i.why)
    print(f"inside functions saying why ('# lazy: <why>'): {why}, without: "
          f"{sum(lazy.values()) - why}")
    for i in (i for i in found if i.in_function and not i.why):
        print(f"inside a function without '# lazy: <why>': {i.module} line {i.line} "
              f"imports {i.target}")
    print("longest functions: " + ", ".join(f"{name} {k}" for k, name in longest_functions(mods)))
    for r in missing:
        print(f"room on no floor: {r} (add it to FLOORS in tools/import_cycles.py)")
    for i in up:
        print(f"upward arrow: {i.module} (floor {floor_of()[room(i.module)]}) imports {i.target} "
              f"(floor {floor_of()[room(i.target)]}) at line {i.line}"
              + (" inside a function" if i.in_function else ""))
    for c in circles:
        print("import circle: " + " ↔ ".join(c))
    print(f"upward arrows: {len(up)}, circles: {len(circles)}")
    return 1 if circles or up or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
