"""No import circles inside the package (issue 24): every import, at a file's top or inside
a function, is an edge; tools/import_cycles.py finds strongly connected groups."""

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
