"""The layering rules of the code base, pinned (issue 14).

1. ``federation/`` imports no I/O module (no sockets, files, threads, event loops, databases).
2. ``agent/`` and ``broker/`` never import each other.
3. No module-level import cycle among the project's modules. Importing ``a.b.c`` runs the
   ``__init__`` of ``a`` and ``a.b`` first, so it counts as importing them too (that is how a
   package's ``__init__`` closes a cycle nobody wrote).
4. No private name (``_x``) is imported from another module.
5. A package's modules are private to it: code outside ``federation/isa/`` imports
   ``federation.isa``, not ``federation.isa.plan`` (likewise ``agent.store``).
6. The unit tests mirror the source: a test file sits in ``tests/unit/<pkg>/<sub...>/`` where
   ``<pkg>/<sub...>`` is a package of the source (``federation``, ``agent``, ``broker``,
   ``devtools``, ``benchmarks``) or a module with many tests (``tests/unit/agent/api/`` for
   ``agent/api.py``). Only the checks of the whole tree (:data:`WHOLE_TREE_TESTS`) sit at the
   top of ``tests/unit/``.

The rules read the source as text (``ast``); nothing is imported or run. Imports inside a
function or under ``if TYPE_CHECKING:`` are not module-level and do not count for rule 3.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("federation", "agent", "broker")
TOOLING = ("benchmarks",)
IO_MODULES = frozenset({
    "aiohttp", "aio_pika", "aiormq", "asyncio", "uvloop", "sqlite3", "socket", "ssl", "select",
    "selectors", "subprocess", "threading", "multiprocessing", "concurrent", "http", "urllib",
    "requests", "pathlib", "shutil", "tempfile", "io", "logging", "signal", "tomllib",
})  # fmt: skip
PRIVATE_PACKAGES = ("federation.isa", "agent.store", "agent.audit")
UNIT = ROOT / "tests" / "unit"
SOURCE = (*PRODUCT, "devtools", *TOOLING)
WHOLE_TREE_TESTS = frozenset({
    "test_layering.py", "test_clock_seams.py", "test_docs.py", "test_config_reference.py",
    "test_install.py", "test_compose.py",
})  # fmt: skip


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written and resolved against the project."""

    importer: str
    target: str  # the module imported (for ``from m import name``: m, or m.name if a module)
    names: tuple[str, ...]  # the names of a ``from`` import
    line: int
    module_level: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(packages: tuple[str, ...] = PRODUCT) -> dict[str, Path]:
    return {
        module_name(path): path for package in packages for path in (ROOT / package).rglob("*.py")
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(body: list[ast.stmt], module_level: bool) -> Iterator[tuple[ast.stmt, bool]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, module_level
        elif isinstance(node, ast.If):
            level = module_level and not _is_type_checking(node)
            yield from _walk(node.body, level)
            yield from _walk(node.orelse, module_level)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _walk(block, module_level)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _walk(node.body, False)
        elif isinstance(node, ast.With | ast.AsyncWith | ast.For | ast.While):
            yield from _walk(node.body, module_level)


def imports_of(name: str, source: str, known: set[str]) -> list[Import]:
    """Every import in ``source`` (module ``name``), a ``from`` of a submodule resolved to it."""
    found = []
    for node, level in _walk(ast.parse(source).body, True):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, (), node.lineno, level) for a in node.names]
            continue
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            package = name.rsplit(".", node.level)[0] if node.level else name
            base = f"{package}.{base}" if base else package
        names = tuple(a.name for a in node.names)
        submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
        found.append(Import(name, base, names, node.lineno, level))
        found += [Import(name, sub, (), node.lineno, level) for sub in submodules]
    return found


def all_imports(packages: tuple[str, ...] = PRODUCT) -> list[Import]:
    modules = project_modules(packages)
    known = set(modules)
    return [i for name, path in modules.items() for i in imports_of(name, path.read_text(), known)]


def ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_graph(imports: list[Import], known: set[str]) -> dict[str, set[str]]:
    """Module-level edges; importing ``a.b.c`` is an edge to each project ancestor too."""
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports:
        if not imp.module_level:
            continue
        own = set(ancestors(imp.importer))
        for target in ancestors(imp.target):
            if target in known and target not in own:
                graph[imp.importer].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def violations(imports: list[Import]) -> dict[str, list[str]]:
    """Rules 1, 2, 4 and 5 (rule 3 is :func:`cycles`), each as ``importer:line -> target``."""
    broken: dict[str, list[str]] = {"io": [], "agent-broker": [], "private": [], "package": []}
    for imp in imports:
        where = f"{imp.importer}:{imp.line} -> {imp.target}"
        layer, target = top(imp.importer), top(imp.target)
        if layer == "federation" and target in IO_MODULES:
            broken["io"].append(where)
        if {layer, target} == {"agent", "broker"}:
            broken["agent-broker"].append(where)
        private = [n for n in imp.names if n.startswith("_")]
        if target in PRODUCT and private and imp.target != imp.importer:
            broken["private"].append(f"{where} ({', '.join(private)})")
        for package in PRIVATE_PACKAGES:
            inside = imp.importer == package or imp.importer.startswith(package + ".")
            if imp.target.startswith(package + ".") and not inside:
                broken["package"].append(where)
    return {rule: found for rule, found in broken.items() if found}


def mirrors_the_source(source: Path) -> bool:
    """Whether ``source`` (a path under the root, without suffix) is a package or a module."""
    return (source / "__init__.py").is_file() or source.with_suffix(".py").is_file()


def misplaced_tests(unit: Path, root: Path) -> list[str]:
    """Rule 6: each ``test_*.py`` under ``unit`` whose folder names no package or module of
    ``root``, or that sits at the top of ``unit`` without being a whole-tree check."""
    broken = []
    for path in sorted(unit.rglob("test_*.py")):
        folder, name = path.parent.relative_to(unit), path.relative_to(unit).as_posix()
        if not folder.parts:
            if path.name not in WHOLE_TREE_TESTS:
                broken.append(f"{name}: only the whole-tree checks sit at the top of tests/unit")
        elif folder.parts[0] not in SOURCE or not mirrors_the_source(root / folder):
            source = folder.as_posix()
            broken.append(f"{name}: {source}/ is no package or module of the source")
    return broken


class TestTheRulesThemselves:
    """Each rule fires on a made-up module that breaks it (so a pass means something)."""

    KNOWN: ClassVar[set[str]] = {
        "federation", "federation.a", "federation.b", "federation.isa", "federation.isa.plan",
        "agent", "agent.x", "broker", "broker.y",
    }  # fmt: skip

    def check(self, name: str, source: str) -> dict[str, list[str]]:
        return violations(imports_of(name, source, self.KNOWN))

    def test_an_io_import_in_the_core_is_refused(self) -> None:
        """``import sqlite3`` in federation/ breaks rule 1."""
        assert self.check("federation.a", "import sqlite3\n") == {
            "io": ["federation.a:1 -> sqlite3"]
        }

    def test_the_agent_importing_the_broker_is_refused(self) -> None:
        """``from broker.y import f`` in agent/ breaks rule 2."""
        assert "agent-broker" in self.check("agent.x", "from broker.y import f\n")

    def test_a_private_name_from_another_module_is_refused(self) -> None:
        """``from federation.b import _helper`` breaks rule 4."""
        assert "private" in self.check("federation.a", "from federation.b import _helper\n")

    def test_a_package_module_imported_from_outside_is_refused(self) -> None:
        """``from federation.isa.plan import x`` outside the package breaks rule 5."""
        assert "package" in self.check("agent.x", "from federation.isa.plan import x\n")

    def test_a_cycle_through_a_package_init_is_found(self) -> None:
        """a -> isa.plan (so isa's __init__) -> a is a cycle."""
        sources = {
            "federation.a": "from federation.isa.plan import x\n",
            "federation.isa": "from federation.a import y\n",
            "federation.isa.plan": "",
        }
        known = set(sources)
        imports = [i for n, s in sources.items() for i in imports_of(n, s, known)]
        assert cycles(import_graph(imports, known)) == [["federation.a", "federation.isa"]]

    def test_a_test_folder_that_mirrors_no_source_is_refused(self, tmp_path: Path) -> None:
        """Rule 6: a topic folder, a folder of a missing module, or a stray top-level test."""
        for source in ("agent/__init__.py", "agent/api.py", "federation/isa/__init__.py"):
            (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / source).touch()
        unit = tmp_path / "tests" / "unit"
        for test in ("agent/test_a.py", "agent/api/test_b.py", "federation/isa/test_c.py",
                     "test_docs.py", "crypto/test_d.py", "agent/gone/test_e.py",
                     "tests/test_f.py", "test_g.py"):  # fmt: skip
            (unit / test).parent.mkdir(parents=True, exist_ok=True)
            (unit / test).touch()
        assert misplaced_tests(unit, tmp_path) == [
            "agent/gone/test_e.py: agent/gone/ is no package or module of the source",
            "crypto/test_d.py: crypto/ is no package or module of the source",
            "test_g.py: only the whole-tree checks sit at the top of tests/unit",
            "tests/test_f.py: tests/ is no package or module of the source",
        ]

    def test_an_import_inside_a_function_is_not_module_level(self) -> None:
        """A function-level import does not make a cycle."""
        sources = {"federation.a": "def f():\n    import federation.b\n",
                   "federation.b": "import federation.a\n"}  # fmt: skip
        known = set(sources)
        imports = [i for n, s in sources.items() for i in imports_of(n, s, known)]
        assert cycles(import_graph(imports, known)) == []


class TestTheCodeBase:
    def test_the_core_imports_no_io_module_and_agent_and_broker_stay_apart(self) -> None:
        """Rules 1, 2, 4 and 5 hold for federation/, agent/ and broker/."""
        assert violations(all_imports()) == {}

    def test_the_tooling_imports_no_private_name(self) -> None:
        """Rules 4 and 5 hold for benchmarks/ too."""
        broken = violations(all_imports(PRODUCT + TOOLING))
        assert {rule: v for rule, v in broken.items() if rule in ("private", "package")} == {}

    def test_there_is_no_module_level_import_cycle(self) -> None:
        """Rule 3: the module-level import graph has no cycle."""
        known = set(project_modules())
        assert cycles(import_graph(all_imports(), known)) == []

    def test_the_unit_tests_mirror_the_source(self) -> None:
        """Rule 6: every unit test sits in the folder of the package (or module) it tests."""
        assert misplaced_tests(UNIT, ROOT) == []
