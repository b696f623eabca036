"""The layout docs/architecture.md promises, checked on the source: services import only the
kernel, and MLflow and Evidently each sit behind one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlops"
SERVICES = ("simulator", "ml_service", "tracking", "monitoring")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def python_files(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_the_kernel_and_itself(service):
    allowed = ("mlops.kernel", f"mlops.{service}")
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files(PACKAGE / service)
        for module in imported_modules(path)
        if (module == "mlops" or module.startswith("mlops.")) and not module.startswith(allowed)
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize(
    ("library", "home"),
    [("mlflow", PACKAGE / "tracking" / "mlflow"), ("evidently", PACKAGE / "monitoring" / "checks.py")],
)
def test_a_fast_moving_library_is_imported_in_one_place(library, home):
    importers = {
        str(path.relative_to(ROOT))
        for path in python_files(PACKAGE)
        if any(module == library or module.startswith(f"{library}.") for module in imported_modules(path))
    }
    outside = {path for path in importers if not (ROOT / path).is_relative_to(home)}
    assert importers and not outside, sorted(outside)
