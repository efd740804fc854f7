"""The project's shape, checked statically: import graph, front doors, lazy heavy imports, module size, ``__all__``.

Every module of the packages ``docextract``, ``serve``, ``batch`` and ``schemas`` is parsed
with :mod:`ast` (nothing is imported, no engine starts) and its import statements build a
module import graph. Checks:

(a) no import cycle among the project's modules;
(b) no module under ``docextract/`` or ``schemas/`` imports ``serve`` or ``batch`` (the core
    knows nothing of its front doors);
(c) ``schemas/`` and the pure parts of ``docextract/`` (all but ``docextract.engine``,
    ``docextract.cluster.*``, ``docextract.testing.*``, ``docextract.cli.*``) import neither
    vllm, torch nor ray at module level, directly or through a project module they import
    at module level;
(d) no module is over ``MAX_LINES`` lines;
(e) every public module defines ``__all__``, and every name listed there is bound in it.

How an import statement is read:

* every import counts, module-level or inside a function (a function-level import that
  closes a loop is still a loop in the design, it only hides it from the interpreter);
* imports under ``if TYPE_CHECKING:`` never execute, so they are left out of (a) and (c).
  They are kept for (b): a type from a front door in the core is still the core depending
  on its front door;
* ``import a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``, so it is an edge to each of the three,
  except to the importer's own parent packages, which are already being imported when the
  importer runs (``docextract.config`` writing ``from docextract.errors import ...`` is no
  edge to ``docextract``). An explicit ``from docextract import name`` is an edge to
  ``docextract``;
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the project,
  to ``pkg`` otherwise; relative imports are resolved against the importer's package;
* ``importlib.import_module`` with a computed name (the lazy ``__getattr__`` of
  ``docextract.preprocess``) is not seen.

One exception, in ``ALLOWED_FRONT_DOOR_IMPORTS``: the console-script dispatcher
``docextract.cli.main`` imports ``serve.cli`` and ``batch.run`` inside the functions that
run those subcommands, so one ``docextract`` command reaches all three. Those imports,
function-level only, are dropped from the graph for (a) and allowed by (b).

The checker lives in this file and is also a script: ``python tests/test_layout.py``
prints every problem found and exits 1 if there is any (0 otherwise); the tests below
assert the same lists are empty, one test per check.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import functools
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("docextract", "serve", "batch", "schemas")
MAX_LINES = 400
HEAVY = frozenset({"vllm", "torch", "ray"})
FRONT_DOORS = frozenset({"serve", "batch"})
CORE = ("docextract", "schemas")  # must not import the front doors
PURE = ("docextract", "schemas")  # must not import HEAVY at module level, except IMPURE
IMPURE = ("docextract.engine", "docextract.cluster", "docextract.testing", "docextract.cli")
# (importer, imported module): allowed function-level imports of a front door from the core.
ALLOWED_FRONT_DOOR_IMPORTS = frozenset({("docextract.cli.main", "serve.cli"), ("docextract.cli.main", "batch.run")})

MODULE, FUNCTION, TYPE_CHECKING = "module", "function", "TYPE_CHECKING"


@dataclasses.dataclass(frozen=True)
class Import:
    """One module an import statement names, resolved to an absolute name."""

    importer: str
    target: str  # e.g. "docextract.errors" for `from docextract.errors import X` or `from ..errors import X`
    line: int
    scope: str  # MODULE, FUNCTION (inside a def or lambda) or TYPE_CHECKING (under `if TYPE_CHECKING:`)

    @property
    def runs(self) -> list[str]:
        """The modules this import executes: the target and its parent packages."""
        parts = self.target.split(".")
        return [".".join(parts[: i + 1]) for i in range(len(parts))]

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


@dataclasses.dataclass
class Module:
    name: str
    path: pathlib.Path  # relative to the root it was found under
    is_package: bool
    tree: ast.Module | None
    lines: int
    error: str | None = None
    imports: list[Import] = dataclasses.field(default_factory=list)


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def discover(root: pathlib.Path = ROOT) -> dict[str, Module]:
    """Every ``.py`` module of ``PACKAGES`` under ``root``, parsed."""
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            if "__pycache__" in rel.parts:
                continue
            is_package = rel.name == "__init__"
            name = ".".join(rel.parts[:-1] if is_package else rel.parts)
            text = path.read_text(encoding="utf-8")
            try:
                tree, error = ast.parse(text, filename=str(path)), None
            except SyntaxError as exc:
                tree, error = None, f"{exc.msg} (line {exc.lineno})"
            modules[name] = Module(name, path.relative_to(root), is_package, tree, len(text.splitlines()), error)
    for module in modules.values():
        if module.tree is not None:
            module.imports = _ImportCollector(module, modules).collect()
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """All import statements of one module, with the scope each runs in."""

    def __init__(self, module: Module, modules: dict[str, Module]):
        self.module = module
        self.known = modules
        self.scope = [MODULE]
        self.found: list[Import] = []

    def collect(self) -> list[Import]:
        self.visit(self.module.tree)
        return self.found

    def _nested(self, scope: str, nodes) -> None:
        self.scope.append(scope)
        for node in nodes:
            self.visit(node)
        self.scope.pop()

    def _current(self) -> str:
        # TYPE_CHECKING wins: a function under `if TYPE_CHECKING:` never runs either.
        return TYPE_CHECKING if TYPE_CHECKING in self.scope else self.scope[-1]

    def _function(self, node) -> None:
        for child in [*node.decorator_list, *_defaults(node.args)]:
            self.visit(child)  # evaluated when the def runs, in the enclosing scope
        self._nested(FUNCTION, node.body)

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._nested(FUNCTION, [node.body])

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._nested(TYPE_CHECKING, node.body)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module.name, target, node.lineno, self._current()))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            package = self.module.name if self.module.is_package else self.module.name.rpartition(".")[0]
            parts = package.split(".")
            if node.level - 1 >= len(parts):
                self._add("<relative import beyond the top-level package>", node)
                return
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module
        plain = False
        for alias in node.names:
            if f"{base}.{alias.name}" in self.known:
                self._add(f"{base}.{alias.name}", node)
            else:
                plain = True
        if plain:
            self._add(base, node)


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [d for d in [*args.defaults, *args.kw_defaults] if d is not None]


def _allowed_front_door(imp: Import) -> bool:
    return imp.scope == FUNCTION and (imp.importer, imp.target) in ALLOWED_FRONT_DOOR_IMPORTS


def import_graph(modules: dict[str, Module], scopes=(MODULE, FUNCTION)) -> dict[str, dict[str, Import]]:
    """importer -> {imported project module: the first import statement that runs it}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for module in modules.values():
        own_parents = set(_ancestors(module.name))
        for imp in module.imports:
            if imp.scope not in scopes or _allowed_front_door(imp):
                continue
            for dep in imp.runs:
                if dep in modules and dep != module.name and dep not in own_parents:
                    graph[module.name].setdefault(dep, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def _shortest_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> list[Import]:
    """The import statements of a shortest cycle through the component's first module."""
    start, members = component[0], set(component)
    came_from: dict[str, Import] = {}
    queue = collections.deque([start])
    while queue:
        v = queue.popleft()
        for w, imp in sorted(graph[v].items()):
            if w not in members or w in came_from:
                continue
            came_from[w] = imp
            if w == start:
                path = [imp]
                while path[-1].importer != start:
                    path.append(came_from[path[-1].importer])
                return path[::-1]
            queue.append(w)
    raise AssertionError(f"no cycle through {start} in {component}")  # a component always has one


def check_cycles(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules)
    problems = []
    for component in strongly_connected(graph):
        steps = " -> ".join(
            f"{imp.target} (at {imp.where()}, {imp.scope})" for imp in _shortest_cycle(graph, component)
        )
        problems.append(f"import cycle among {', '.join(component)}: {component[0]} -> {steps}")
    return problems


def check_front_doors(modules: dict[str, Module]) -> list[str]:
    return [
        f"{imp.where()}: {imp.importer} imports {imp.target} ({imp.scope})"
        for module in modules.values()
        if _in(module.name, CORE)
        for imp in module.imports
        if imp.target.split(".")[0] in FRONT_DOORS and not _allowed_front_door(imp)
    ]


def check_heavy_imports(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules, scopes=(MODULE,))
    heavy = {
        name: next((imp for imp in m.imports if imp.scope == MODULE and imp.target.split(".")[0] in HEAVY), None)
        for name, m in modules.items()
    }
    problems = []
    for name in sorted(modules):
        if not _in(name, PURE) or _in(name, IMPURE):
            continue
        # Importing `name` runs its parent packages first, then what each runs at module level.
        came_from: dict[str, str | None] = {}
        queue = collections.deque()
        for first in [*_ancestors(name), name]:
            if first in modules and first not in came_from:
                came_from[first] = None
                queue.append(first)
        while queue:
            v = queue.popleft()
            if heavy[v] is not None:
                chain = [v]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                via = f" via {' -> '.join(chain[::-1])}" if chain != [name] else ""
                problems.append(f"{name} imports {heavy[v].target} at module level{via} (at {heavy[v].where()})")
                break
            for w in sorted({*graph[v], *(a for dep in graph[v] for a in _ancestors(dep))}):
                if w in modules and w not in came_from:
                    came_from[w] = v
                    queue.append(w)
    return problems


def check_sizes(modules: dict[str, Module]) -> list[str]:
    return [
        f"{m.path}: {m.lines} lines (over {MAX_LINES})"
        for m in sorted(modules.values(), key=lambda m: -m.lines)
        if m.lines > MAX_LINES
    ]


def _top_level_bindings(body: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names bound at module level (also inside top-level if/try/with), and whether a star import is there."""
    names: set[str] = set()
    star = False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                else:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody"):
                inner, inner_star = _top_level_bindings(getattr(node, block, []))
                names |= inner
                star |= inner_star
            for handler in getattr(node, "handlers", []):
                inner, inner_star = _top_level_bindings(handler.body)
                names |= inner
                star |= inner_star
    return names, star


def _all_assignment(body: list[ast.stmt]) -> ast.expr | None:
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in targets
        ):
            return node.value
    return None


def check_all(modules: dict[str, Module]) -> list[str]:
    """Public modules define ``__all__``; each listed name is bound (or is a submodule of the package).

    Public: no part of the dotted name starts with ``_``; ``__main__`` is a script, not an API.
    A package whose ``__init__`` binds no name at all (a docstring only) has no surface to list.
    """
    problems = []
    for name, module in sorted(modules.items()):
        if module.tree is None or any(part.startswith("_") for part in name.split(".")):
            continue
        bound, star = _top_level_bindings(module.tree.body)
        value = _all_assignment(module.tree.body)
        where = module.path
        if value is None:
            if bound or not module.is_package:
                problems.append(f"{where}: public module {name} has no __all__")
            continue
        if star or "__getattr__" in bound:
            continue  # names can come from elsewhere; nothing static to check
        if not isinstance(value, (ast.List, ast.Tuple)) or not all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            continue  # computed: nothing static to check
        listed = [e.value for e in value.elts]
        missing = [n for n in listed if n not in bound and not (module.is_package and f"{name}.{n}" in modules)]
        if missing:
            problems.append(f"{where}: __all__ lists names {name} does not bind: {', '.join(missing)}")
        duplicates = sorted({n for n in listed if listed.count(n) > 1})
        if duplicates:
            problems.append(f"{where}: __all__ lists names twice: {', '.join(duplicates)}")
    return problems


def check_parses(modules: dict[str, Module]) -> list[str]:
    return [f"{m.path}: does not parse: {m.error}" for m in modules.values() if m.error]


CHECKS = {
    "modules that do not parse": check_parses,
    "(a) import cycles": check_cycles,
    "(b) core modules importing serve/batch": check_front_doors,
    "(c) pure modules importing vllm/torch/ray at module level": check_heavy_imports,
    f"(d) modules over {MAX_LINES} lines": check_sizes,
    "(e) public modules without a valid __all__": check_all,
}


@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, Module]:
    return discover()


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_every_module_parses():
    assert not (problems := check_parses(_modules())), _report(problems)


def test_no_import_cycles():
    assert not (problems := check_cycles(_modules())), _report(problems)


def test_core_does_not_import_front_doors():
    assert not (problems := check_front_doors(_modules())), _report(problems)


def test_pure_modules_import_no_heavy_library_at_module_level():
    assert not (problems := check_heavy_imports(_modules())), _report(problems)


def test_no_module_is_too_long():
    assert not (problems := check_sizes(_modules())), _report(problems)


def test_public_modules_define_all():
    assert not (problems := check_all(_modules())), _report(problems)


def test_the_checker_sees_what_it_must():
    """The checker on a made-up tree: each rule fires, the dispatcher's exception holds."""
    import tempfile

    files = {
        "docextract/__init__.py": '"""Package."""\n',
        "docextract/a.py": "from docextract import b\n__all__ = ['x']\nx = 1\n",
        "docextract/b.py": "def f():\n    from . import a\n__all__ = ['f', 'gone']\n",
        "docextract/heavy.py": "import docextract.engine\n__all__ = []\n",
        "docextract/engine.py": "import vllm\n__all__ = []\n",
        "docextract/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
        "    from serve import app\n__all__ = []\n",
        "docextract/cli/__init__.py": "",
        "docextract/cli/main.py": "__all__ = ['run']\ndef run():\n    import serve.cli\n",
        "serve/__init__.py": "from docextract.cli import main\n__all__ = ['main']\n",
        "serve/cli.py": "import docextract.cli.main\n" + "pass\n" * MAX_LINES,
        "batch/__init__.py": "",
        "schemas/__init__.py": "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        modules = discover(root)
    cycles = check_cycles(modules)
    front = check_front_doors(modules)
    heavy = check_heavy_imports(modules)
    sizes = check_sizes(modules)
    alls = check_all(modules)
    assert len(cycles) == 1 and "docextract.a, docextract.b" in cycles[0], cycles
    assert front == ["docextract.typed:4: docextract.typed imports serve (TYPE_CHECKING)"]
    assert heavy == [
        "docextract.heavy imports vllm at module level via docextract.heavy -> docextract.engine"
        " (at docextract.engine:1)"
    ]
    assert sizes == [f"serve/cli.py: {MAX_LINES + 1} lines (over {MAX_LINES})"]
    assert alls == [
        "docextract/b.py: __all__ lists names docextract.b does not bind: gone",
        "serve/cli.py: public module serve.cli has no __all__",
    ]


def main() -> int:
    modules = _modules()
    found = 0
    for title, check in CHECKS.items():
        problems = check(modules)
        found += len(problems)
        print(f"{title}: {'ok' if not problems else _report(problems)}")
    print(f"{len(modules)} modules checked; {found} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
