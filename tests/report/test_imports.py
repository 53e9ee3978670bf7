"""No import cycle in evalkit/report: the modules' own imports form a DAG, and each module imports
on its own in a fresh interpreter (a cycle shows up there as an ImportError of a partly
initialised module)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import evalkit.report

REPORT = Path(evalkit.report.__file__).parent
MODULES = sorted(p.stem for p in REPORT.glob("*.py") if p.stem != "__init__")


def report_imports(name: str) -> set[str]:
    """The evalkit.report modules ``name`` imports (``from . import x``, ``from .x import y``,
    ``import evalkit.report.x``, ``from evalkit.report import x``), at any depth of the file."""
    tree = ast.parse((REPORT / f"{name}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 or mod == "evalkit.report":
                if mod and node.level == 1:
                    out.add(mod.split(".")[0])
                else:
                    out.update(a.name for a in node.names)
            elif mod.startswith("evalkit.report."):
                out.add(mod.split(".")[2])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names if a.name.startswith("evalkit.report."))
    return {m for m in out if m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports) as a path, or None (depth-first search)."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(m, path):
        if state.get(m) == 1:
            return [*path[path.index(m):], m]
        if state.get(m) == 2:
            return None
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            found = visit(n, [*path, m])
            if found:
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        found = visit(m, [])
        if found:
            return found
    return None


def test_report_imports_form_a_dag():
    graph = {m: report_imports(m) for m in MODULES}
    assert "html" not in graph["search_html"] and graph["fmt"] == set()   # the shape this layer relies on
    assert "html" in graph["markdown"] or "fmt" in graph["markdown"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_each_report_module_imports_alone_in_a_fresh_interpreter():
    code = "import importlib, sys\nimportlib.import_module('evalkit.report.' + sys.argv[1])\n"
    procs = {m: subprocess.Popen([sys.executable, "-c", code, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, cwd=REPORT.parents[1])
             for m in MODULES}   # one interpreter per module, nothing imported before it; all at once
    for m, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (m, err)
