"""Import structure: each module imports alone in a fresh interpreter, without cycles or heavy baggage."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _loaded_after_import(module: str) -> set[str]:
    """The modules a fresh interpreter holds after `import module` (fails the test if the import fails)."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", ["trainers.evaluation.protocols", "trainers.evaluation.sampling"])
def test_protocols_and_sampling_do_not_import_the_evaluator(module):
    assert "trainers.evaluation.evaluator" not in _loaded_after_import(module)


def test_the_evaluator_does_not_import_the_protocols():
    loaded = _loaded_after_import("trainers.evaluation.evaluator")
    assert "trainers.evaluation.protocols" not in loaded and "trainers.evaluation.sampling" in loaded


def test_the_package_still_exports_the_sampler():
    proc = subprocess.run([sys.executable, "-c", "from trainers.evaluation import Evaluator, check_images, sample_images; "
                           "from trainers.evaluation.sampling import sample_images as s; assert s is sample_images"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["trainers.layout", "study.layout", "trainers.metric_keys", "trainers.config"])
def test_name_homes_stay_light(module):
    """Ray workers, the study driver and the analysis import these for a few names: never torch or Ray."""
    loaded = _loaded_after_import(module)
    assert not {"torch", "ray", "pandas"} & loaded


# ---------------------------------------------------------------------- layering read from the source
# Every import statement counts: top level, inside a function (lazy) and under `if TYPE_CHECKING:`; a
# dependency hidden in a lazy import is still a dependency.
REPO = Path(__file__).resolve().parents[1]


def _modules(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of a package (subpackages included; a package is its __init__.py)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(path: Path, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(dotted name, line) of everything `path` imports; `from a import b` gives a.b (b a module or a name)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports} (edges inside `package` only, self-imports left out)."""
    mods = _modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imported, _ in _imported(path, name, path.name == "__init__.py"):
            parts = imported.split(".")
            # the longest prefix that is a module: `study.spec.read_spec` -> study.spec, `study.runner` -> itself,
            # `study.run_study` (a name the package exports) -> study (its __init__)
            hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in mods), None)
            if hit and hit != name:
                targets.add(hit)
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan): modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def study_imports_of_analysis(root: Path) -> list[str]:
    """'file:line imports name' for every import of the `study` package anywhere in analysis/."""
    found = []
    for name, path in _modules(root, "analysis").items():
        for imported, line in _imported(path, name, path.name == "__init__.py"):
            if imported == "study" or imported.startswith("study."):
                found.append(f"{path.relative_to(root)}:{line} imports {imported}")
    return sorted(set(found))


def test_analysis_depends_only_downward_never_on_study():
    """analysis/ reads a study's files by the names in trainers/layout.py (the ground floor), never through
    `study` (study.layout included): the analysis runs where the study driver's dependencies are absent."""
    assert study_imports_of_analysis(REPO) == []


@pytest.mark.parametrize("package", ["study", "analysis"])
def test_modules_of_a_package_import_each_other_one_way(package):
    """No import loop inside a package, lazy and type-checking imports included (issue #24 section 5 cut
    api <-> status_command and spec <-> trackers)."""
    graph = import_graph(REPO, package)
    loops = import_cycles(graph)
    assert loops == [], "; ".join(" <-> ".join(c) + " (" + ", ".join(
        f"{a} -> {b}" for a in c for b in sorted(graph[a] & set(c))) + ")" for c in loops)


def test_the_graph_sees_lazy_and_type_checking_imports(tmp_path):
    """The checks above are only as good as the graph: a loop closed by a lazy import inside a function, or by
    an import under `if TYPE_CHECKING:`, is a loop; `analysis` importing study.layout lazily is caught."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\nx = 1\n")
    (pkg / "c.py").write_text("import pkg.d\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import c\n")
    (pkg / "e.py").write_text("from pkg import d\n")  # one way: no loop
    assert import_cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "x.py").write_text("def f():\n    from study.layout import STUDY_FILE\n")
    assert study_imports_of_analysis(tmp_path) == ["analysis/x.py:2 imports study.layout.STUDY_FILE"]


def test_study_file_names_live_on_the_ground_floor_and_study_layout_re_exports_them():
    from study import layout as study_layout
    from trainers import layout as trainers_layout

    names = [n for n in dir(study_layout) if n.isupper()]
    assert set(names) == set(study_layout.__all__) >= {"STUDY_FILE", "JOURNAL_FILE", "HISTORY_FILE", "TRIALS_FILE",
                                                       "TRIALS_DIRNAME", "RAY_DIRNAME", "LIVE_DIRNAME"}
    for n in names:
        assert getattr(study_layout, n) == getattr(trainers_layout, n), n
    tree = ast.parse((REPO / "trainers" / "layout.py").read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]  # the ground floor imports nothing
