"""The wiring: no import cycles, and importing a leaf builds nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("o2c_workers", "tasks", "config")
#: What a leaf may load at most, the interpreter's own start-up included.
LEAF_MODULE_LIMIT = 150


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """Every import among our modules, function-local and ``TYPE_CHECKING`` ones too."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {_resolve(alias.name, modules) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                source = _imported(node, module, path.name == "__init__.py")
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    edges.add(full if full in modules else _resolve(source, modules))
        graph[module] = {e for e in edges if e and e != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("leaf", ["o2c_workers.sfid", "o2c_workers.keys",
                                  "o2c_workers.domains", "o2c_workers.backoff"])
@pytest.mark.slow
def test_importing_a_leaf_builds_nothing(leaf):
    probe = (f"import sys, {leaf}; print(len(sys.modules)); "
             "print(' '.join(m for m in sys.modules if m.startswith(('celery', 'kombu', "
             "'o2c_workers.signals', 'o2c_workers.runtime', 'o2c_workers.dlq', "
             "'o2c_workers.erp', 'o2c_workers.celery_app'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert int(out[0]) < LEAF_MODULE_LIMIT
    assert out[1:] in ([], [""])


@pytest.mark.slow
def test_importing_the_models_loads_pydantic_and_nothing_of_the_fleet():
    """pydantic itself is about 100 modules; of ours, only the models come along."""
    probe = ("import sys, o2c_workers.models; print(' '.join(m for m in sys.modules if "
             "m.split('.')[0] in ('o2c_workers', 'tasks', 'config', 'celery', 'kombu', "
             "'redis')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert set(out) <= {"o2c_workers", "o2c_workers.models", "o2c_workers.sfid"}, out


#: What may not be imported from below: (package, the packages above it).
LAYERS = [
    ("o2c_workers.dlq", ("o2c_workers.receiver", "o2c_workers.celery_app", "o2c_workers.cli",
                         "o2c_workers.signals", "o2c_workers.runtime", "o2c_workers.base_task")),
    ("o2c_workers.services", ("o2c_workers.celery_app", "o2c_workers.runtime", "tasks",
                              "o2c_workers.receiver", "o2c_workers.base_task")),
    ("o2c_workers.delivery", ("o2c_workers.celery_app", "o2c_workers.runtime", "tasks")),
]


@pytest.mark.parametrize(("package", "above"), LAYERS)
def test_dependencies_point_down(package, above):
    graph = import_graph()
    reaching_up = sorted(f"{module} → {target}" for module, targets in graph.items()
                         if module == package or module.startswith(package + ".")
                         for target in targets if target.startswith(above))
    assert not reaching_up, reaching_up


def test_the_fleet_never_imports_the_dev_tooling():
    graph = import_graph()
    production = [m for m in graph if not m.startswith(("o2c_workers.dev", "o2c_workers.demo",
                                                         "o2c_workers.cli", "o2c_workers.sandbox"))]
    reaching = sorted(f"{m} → {t}" for m in production for t in graph[m]
                      if t.startswith("o2c_workers.dev"))
    assert not reaching, reaching


@pytest.mark.slow
def test_the_gunicorn_worker_class_brings_nothing_of_ours_into_the_arbiter():
    """gunicorn imports it in the arbiter, before gevent patches each worker's standard
    library: anything of ours imported with it (a Redis client, requests) would be unpatched
    in every worker, and a reload then hangs on it."""
    probe = ("import sys, o2c_workers.receiver.worker; print(' '.join(m for m in sys.modules "
             "if m.split('.')[0] in ('o2c_workers', 'config', 'redis', 'requests', 'celery')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert set(out) <= {"o2c_workers", "o2c_workers.receiver", "o2c_workers.receiver.worker"}, out
