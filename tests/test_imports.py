"""The package's structure (issues 24 and 33): every import, at a file's top or inside a
function, is an edge; tools/import_cycles.py finds strongly connected groups (circles) and
imports that go up its floors (``FLOORS``: the rooms, packages and root modules of sharpen,
bottom first)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
ic = importlib.util.module_from_spec(spec)
sys.modules["import_cycles"] = ic
spec.loader.exec_module(ic)


def test_the_package_has_no_import_circle():
    graph = ic.edges(ic.modules())
    assert "sharpen.experiments.build" in graph["sharpen.experiments.job"]  # edges are seen
    assert "sharpen.experiments.build" in graph["sharpen.experiments.weights"]  # in functions
    assert ic.cycles(graph) == []


def test_a_planted_circle_is_found(tmp_path):
    pkg = tmp_path / "sharpen"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from sharpen.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from sharpen import a  # in a function\n")
    (pkg / "c.py").write_text("from .a import x\n")  # relative, one way: no circle
    graph = ic.edges(ic.modules(tmp_path))
    assert graph["sharpen.c"] == {"sharpen.a"}
    assert ic.cycles(graph) == [["sharpen.a", "sharpen.sub.b"]]


def test_no_room_imports_a_room_on_its_own_or_a_higher_floor():
    """The floors (tools/import_cycles.py FLOORS) hold every room, and every import between
    rooms, at a file's top or inside a function, goes down (issue 33)."""
    mods = ic.modules()
    found = ic.imports(mods)
    assert ic.unplaced(mods) == []
    assert [f"{i.module}:{i.line} → {i.target}" for i in ic.upward(found)] == []
    assert any(i.in_function for i in found) and any(not i.in_function for i in found)


def test_reports_build_from_run_directories_alone():
    """reports/ reads run directories: it never loads a dataset (a technique writes what its
    figure needs into the run directory: ``Technique.figure_images``)."""
    found = ic.imports(ic.modules())
    assert [f"{i.module}:{i.line} → {i.target}" for i in found
            if ic.room(i.module) == "reports" and ic.room(i.target) == "data"] == []


def test_a_planted_upward_arrow_and_an_unplaced_room_are_found(tmp_path):
    pkg = tmp_path / "sharpen"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from sharpen import high  # never runs: no arrow\n"
                                      "def f():\n    from sharpen.high import g  # up\n")
    (pkg / "high.py").write_text("from sharpen.low import a\n")  # down
    (pkg / "side.py").write_text("import sharpen.high\n")  # same floor
    (pkg / "new.py").write_text("")
    mods = ic.modules(tmp_path)
    found = ic.imports(mods)
    floors = (("low",), ("high", "side"), ("sharpen",))
    assert [(i.module, i.target, i.line, i.in_function) for i in ic.upward(found, floors)] == [
        ("sharpen.low.a", "sharpen.high", 5, True), ("sharpen.side", "sharpen.high", 1, False)]
    assert ic.unplaced(mods, floors + (("gone",),)) == ["new", "gone (on a floor, but no such room)"]
    assert ic.cycles(ic.edges(mods)) == [["sharpen.high", "sharpen.low.a"]]


def test_every_import_left_inside_a_function_says_why():
    """An import of a sharpen module inside a function hides what its file touches, so one
    stays there only with a reason on its line: ``# lazy: <why>`` (a circle, an upward arrow,
    start-up time, an optional dependency; CONTRIBUTING.md). cli.py's start-up imports are
    exempt here (they carry it too)."""
    found = ic.imports(ic.modules())
    assert [f"{i.module}:{i.line} → {i.target}" for i in ic.unexplained(found)] == []
    assert any(i.in_function and i.why for i in found)  # the marks are read


def test_a_planted_lazy_import_without_a_why_is_found(tmp_path):
    pkg = tmp_path / "sharpen"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("")
    (pkg / "cli.py").write_text("def f():\n    from sharpen import low\n")  # exempt
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from sharpen import low  # lazy: at the top, no matter\n"
        "if TYPE_CHECKING:\n    from sharpen.b import x  # never runs\n"
        "def f():\n"
        "    from sharpen.b import y  # lazy: circle: b imports a\n"
        "    from sharpen.low import (  # lazy: start-up: torch\n        z,\n    )\n"
        "    from sharpen.b import w  # the reason is not a mark\n"
        "    import sharpen.low  # lazy:\n")
    (pkg / "b.py").write_text("from sharpen import a\n")
    found = ic.imports(ic.modules(tmp_path))
    assert [(i.module, i.line, i.target, i.in_function, i.why) for i in found] == [
        ("sharpen.a", 2, "sharpen.low", False, "at the top, no matter"),
        ("sharpen.a", 6, "sharpen.b", True, "circle: b imports a"),
        ("sharpen.a", 7, "sharpen.low", True, "start-up: torch"),
        ("sharpen.a", 10, "sharpen.b", True, ""),
        ("sharpen.a", 11, "sharpen.low", True, ""),
        ("sharpen.b", 1, "sharpen.a", False, ""),
        ("sharpen.cli", 2, "sharpen.low", True, "")]
    assert [(i.module, i.line) for i in ic.unexplained(found)] == [("sharpen.a", 10), ("sharpen.a", 11)]
    assert [(i.module, i.line) for i in ic.unexplained(found, exempt=())] == [
        ("sharpen.a", 10), ("sharpen.a", 11), ("sharpen.cli", 2)]
