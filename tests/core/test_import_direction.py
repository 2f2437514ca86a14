"""The dependency direction of docs/architecture.md, checked on every import statement
(module-level or inside a function, absolute or relative):

    api (GraphQL, HTTP, OAuth, web pages) and the `lastmile` command
      -> planner, billing       (never each other: they meet through core's tables,
                                 the outbox and Celery tasks sent by name)
        -> deliveries           (a delivery's life: booking, status changes, queries)
          -> core               (settings, database, models, usage, outbox, errors)
    webhooks -> core            (events to merchants, fed by the outbox)
    accounts -> core            (merchants' people: users, roles, invitations, sessions)

A package may import only the packages listed for it (and itself). And no module
imports one that imports it back, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = ("accounts", "api", "billing", "core", "deliveries", "planner", "webhooks")
ALLOWED = {
    "core": (),
    "deliveries": ("core",),
    "webhooks": ("core",),
    "planner": ("core", "deliveries"),
    "billing": ("core", "deliveries"),
    "accounts": ("core",),
    "api": ("core", "deliveries", "webhooks", "planner", "billing", "accounts"),
}
FORBIDDEN = {
    package: tuple(
        f"services.{other}"
        for other in PACKAGES
        if other != package and other not in ALLOWED[package]
    )
    for package in PACKAGES
}


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module (or module attribute) the file imports, relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _against(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in forbidden)


@pytest.mark.parametrize("service", sorted(FORBIDDEN))
def test_a_service_imports_nothing_against_the_dependency_direction(service):
    offending = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "services" / service).rglob("*.py")
        for module in _imports(path)
        if _against(module, FORBIDDEN[service])
    )
    assert offending == []


def test_every_package_of_services_has_a_rule():
    packages = {
        path.name for path in (ROOT / "services").iterdir() if (path / "__init__.py").exists()
    }
    assert packages == set(PACKAGES)


def test_the_command_is_the_only_module_outside_the_packages():
    assert sorted(p.name for p in (ROOT / "services").glob("*.py")) == ["__init__.py", "cli.py"]


def test_imports_inside_functions_and_relative_ones_are_seen(tmp_path):
    source = tmp_path / "services" / "planner" / "sneaky.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "def allocate():\n"
        "    from services.billing.consolidation import allocate_route_shares\n"
        "from ..billing import tasks\n"
        "from services import billing\n"
    )
    found = {m for m in _imports(source, tmp_path) if _against(m, FORBIDDEN["planner"])}
    assert found == {
        "services.billing.consolidation",
        "services.billing.consolidation.allocate_route_shares",
        "services.billing",
        "services.billing.tasks",
    }


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """Every set of modules under services/ that import each other round in a circle
    (module-level or inside a function), as sorted lists of module names.

    `import a.b.c` and `from a.b import c` count as importing `a.b.c` when that is a
    module of the tree, else as importing `a.b`; parent packages are not counted.
    """
    modules = {_module_name(path, root): path for path in (root / "services").rglob("*.py")}
    graph = {
        name: {
            target
            for imported in _imports(path, root)
            if (target := imported if imported in modules else imported.rpartition(".")[0])
            in modules
            and target != name
        }
        for name, path in modules.items()
    }
    # Tarjan's strongly connected components: a component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_module_imports_one_that_imports_it_back():
    assert import_cycles() == []


def test_a_cycle_through_an_import_inside_a_function_is_seen(tmp_path):
    package = tmp_path / "services" / "planner"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "runs.py").write_text("from services.planner.costs import price\n")
    (package / "costs.py").write_text("def price():\n    from .runs import MILLI\n")
    (package / "plain.py").write_text("from services.planner import costs\n")
    assert import_cycles(tmp_path) == [["services.planner.costs", "services.planner.runs"]]
