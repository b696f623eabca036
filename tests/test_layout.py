"""The layout docs/architecture.md promises, checked on the source: services import only the
kernel, and MLflow and Evidently each sit behind one place."""

from __future__ import annotations

import ast
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlops"
SERVICES = ("simulator", "ml", "tracking", "monitoring")


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


# A module a reader can hold in mind: past this, split it by concern (docs/architecture.md).
MAX_MODULE_LINES = 350


@pytest.mark.parametrize("path", python_files(PACKAGE), ids=lambda path: str(path.relative_to(ROOT)))
def test_a_module_fits_in_its_room(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_MODULE_LINES})"


FMT_SKIP = re.compile(r"#\s*fmt:\s*(skip|off)\b(?P<after>.*)")


def comments(path: Path) -> Iterator[tuple[int, str]]:
    """Each comment of a file, with its line number."""
    with path.open() as source:
        for token in tokenize.generate_tokens(source.readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.string


def test_every_fmt_skip_says_why():
    """A formatter pragma is followed on its line by `# <reason>`: what ruff's layout would hide."""
    bare = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files(*(ROOT / folder for folder in ("mlops", "tests", "bench", "tools")))
        for number, comment in comments(path)
        if (marker := FMT_SKIP.search(comment)) and not re.match(r"\s+#\s*\w", marker["after"])
    ]
    assert not bare, bare
