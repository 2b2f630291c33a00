"""The architecture as a test: which package may import which (docs/architecture.md).

Parsed from the source with ``ast`` (function-level imports count too), so a lazy import
that crosses a boundary fails here as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "client", "server", "codec", "launch", "study", "pretrain")
ALLOWED = {
    "common": set(),  # knows no Flower role and no tool
    "client": {"common", "codec"},
    "server": {"common"},
    "codec": {"common"},
    "launch": {"common", "server"},  # starts the server side, never the ClientApp
    "study": {"common", "codec"},
    "pretrain": {"common"},
}
FLOWER_APP_MODULES = ("flwr.serverapp", "flwr.clientapp", "flwr.server", "flwr.client")


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_architecture_allows(package):
    crossings = []
    for path in sources(package):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not crossings, "\n".join(crossings)


def test_common_imports_no_flower_app_code():
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources("common")
        for module in imported_modules(path)
        if module.startswith(FLOWER_APP_MODULES)
    ]
    assert not found, "\n".join(found)


def test_no_module_is_over_300_lines():
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for package in PACKAGES
        for path in sources(package)
        if (n := len(path.read_text().splitlines())) > 300
    ]
    assert not long, "\n".join(long)


def test_the_graph_checker_sees_a_crossing(tmp_path):
    """The checker itself can fail: a lazy import inside a function is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from server.strategy import SharedKeysFedAvg\n")
    assert "server.strategy" in imported_modules(bad)
