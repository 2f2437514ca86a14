"""The dependency direction of the design: api -> planner, billing -> core.

Planner and billing never import each other (they meet through core's tables, the
outbox and Celery tasks sent by name), and core imports no service. Every import
statement counts: module-level or inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "planner": ("services.billing", "services.api"),
    "billing": ("services.planner", "services.api"),
    "core": ("services.planner", "services.billing", "services.api"),
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
