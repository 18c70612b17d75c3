"""The house's floors, read from the source: dependencies point one way (models <- samplers <-
validation), and no check of `hiercheck.validation` stands on another check; what two checks
share lives in a module that is not a check (result, statistics, diagnostics, quantities,
eb_references)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"models": 0, "samplers": 1, "validation": 2}
CHECKS = ("agreement", "consistency", "geweke", "likelihood", "ppc", "sbc", "statsmodels_check")


def imported_modules(path: Path) -> set[str]:
    """The dotted names a module imports (relative imports resolved within its package), at any
    depth of its code: a function's lazy import counts as much as one at the top."""
    package = f"hiercheck.{path.parent.name}"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module)
            elif node.module:
                names.add(f"{package}.{node.module}")
            else:
                names.add(package)
                names.update(f"{package}.{alias.name}" for alias in node.names)
    return names


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "hiercheck" else None


@pytest.mark.parametrize("layer", LAYERS)
def test_nothing_imports_upward(layer):
    for path in sorted((ROOT / layer).glob("*.py")):
        upward = {name for name in imported_modules(path)
                  if (layer_of(name) or 0) > LAYERS[layer]}
        assert not upward, f"{layer}/{path.name} imports {sorted(upward)}"


@pytest.mark.parametrize("check", CHECKS)
def test_no_check_imports_another_check(check):
    others = {f"hiercheck.validation.{other}" for other in CHECKS if other != check}
    found = imported_modules(ROOT / "validation" / f"{check}.py") & others
    assert not found, f"the check {check} imports the checks {sorted(found)}"


def test_the_reader_sees_relative_and_lazy_imports(tmp_path):
    folder = tmp_path / "validation"
    folder.mkdir()
    source = folder / "sbc.py"
    source.write_text("from . import agreement\n\ndef f():\n    from .geweke import x\n"
                      "    import hiercheck.models.data\n")
    assert imported_modules(source) == {"hiercheck.validation", "hiercheck.validation.agreement",
                                        "hiercheck.validation.geweke", "hiercheck.models.data"}
