"""The public API documents itself, and this keeps it so.

Public means the names in a module's `__all__` and their public methods. For each, checked
against the code rather than taken on trust: a numpydoc docstring whose Parameters name exactly
the signature's parameters, a Returns (or Yields) section unless the function returns None, a
Raises section naming every exception the function's own source raises, and complete type
hints. ruff's pydocstyle rules (numpy convention, configured in pyproject.toml) check the rest of
the docstrings' form.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from numpydoc.docscrape import NumpyDocString

import hiercheck

def package_modules() -> list[str]:
    """Every module of the installed packages that pyproject.toml lists, each package first:
    derived, so a new module is checked without being added to a list."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    modules = []
    for package in pyproject["tool"]["setuptools"]["packages"]:
        folder = Path(importlib.import_module(package).__file__).parent
        modules += [package] + [f"{package}.{path.stem}" for path in sorted(folder.glob("*.py"))
                                if path.stem != "__init__"]
    return modules


DOCUMENTED = package_modules()

SELF_OR_CLS = ("self", "cls")


# -- what the docstrings say ----------------------------------------------------------------------

def documented_names(doc: NumpyDocString, section: str) -> list[str]:
    """The names a Parameters-like section documents: "a, b : float" names a and b; "*args"
    names args.
    """
    names = []
    for entry in doc[section]:
        names += [name.strip().lstrip("*") for name in entry.name.split(",") if name.strip()]
    return names


def parsed(obj) -> NumpyDocString:
    text = inspect.getdoc(obj)
    assert text, f"{qualified(obj)} has no docstring"
    return NumpyDocString(text)


def qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


# -- what the code does ---------------------------------------------------------------------------

class _RaiseFinder(ast.NodeVisitor):
    """The names of the exceptions a function raises itself: not a bare re-raise, and not what a
    function or class defined inside it raises.
    """

    def __init__(self):
        self.names: set[str] = set()
        self.depth = 0

    def visit_FunctionDef(self, node):
        self.depth += 1
        if self.depth == 1:  # the function itself; nested ones raise on their own account
            self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        pass

    def visit_Lambda(self, node):
        pass

    def visit_Raise(self, node):
        if node.exc is None:
            return
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        self.names.add(ast.unparse(target).rsplit(".", 1)[-1])


def raised_names(function) -> set[str]:
    finder = _RaiseFinder()
    finder.visit(ast.parse(textwrap.dedent(inspect.getsource(function))))
    return finder.names


def signature_parameters(function) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())
    return [p for p in parameters if p.name not in SELF_OR_CLS]


def unwrapped(function):
    """The plain function behind a classmethod or staticmethod."""
    return getattr(function, "__func__", function)


def check_function(function, owner: str) -> list[str]:
    """Problems with a public function's or method's docstring and type hints."""
    function = unwrapped(function)
    name = f"{owner}{function.__name__}"
    doc = parsed(function)
    problems = []
    parameters = signature_parameters(function)
    expected = [p.name for p in parameters]
    documented = documented_names(doc, "Parameters")
    if documented != expected:
        problems.append(f"{name}: Parameters documents {documented}, the signature has {expected}")
    signature = inspect.signature(function)
    returns_none = signature.return_annotation in (None, "None")
    if not returns_none and not (doc["Returns"] or doc["Yields"]):
        problems.append(f"{name}: no Returns section")
    unannotated = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    if unannotated:
        problems.append(f"{name}: no type hint on {unannotated}")
    if signature.return_annotation is inspect.Signature.empty:
        problems.append(f"{name}: no return type hint")
    raised = raised_names(function)
    listed = {entry.type.strip() for entry in doc["Raises"]}
    if raised - listed:
        problems.append(f"{name}: raises {sorted(raised - listed)}, its Raises section lists "
                        f"{sorted(listed)}")
    return problems


def field_names(cls) -> list[str] | None:
    """The public fields of a dataclass or NamedTuple, or None for another class."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return [name for name in cls._fields if not name.startswith("_")]
    return None


def is_public_method(name: str) -> bool:
    # __call__ is the interface of a callable object (pydocstyle counts it as a public method)
    return not name.startswith("_") or name == "__call__"


def check_class(cls) -> list[str]:
    """Problems with a public class's docstring and those of its public methods."""
    doc = parsed(cls)
    problems = []
    fields = field_names(cls)
    named = documented_names(doc, "Parameters") + documented_names(doc, "Attributes")
    if fields is not None:
        undocumented = [name for name in fields if name not in named]
        if undocumented:
            problems.append(f"{cls.__qualname__}: fields {undocumented} are in neither its "
                            "Parameters nor its Attributes")
        stale = [name for name in named if name not in fields and not hasattr(cls, name)]
        if stale:
            problems.append(f"{cls.__qualname__}: documents {stale}, which it does not have")
    elif "__init__" in vars(cls) and not getattr(cls, "_is_protocol", False):
        # a hand-written __init__ is documented on the class (a Protocol has none to document)
        init = vars(cls)["__init__"]
        expected = [p.name for p in signature_parameters(init)]
        if documented_names(doc, "Parameters") != expected:
            problems.append(f"{cls.__qualname__}: Parameters documents "
                            f"{documented_names(doc, 'Parameters')}, __init__ takes {expected}")
        if any(p.annotation is inspect.Parameter.empty for p in signature_parameters(init)):
            problems.append(f"{cls.__qualname__}.__init__: incomplete type hints")
    for name, member in vars(cls).items():
        if not is_public_method(name):
            continue
        if isinstance(member, property):
            if not inspect.getdoc(member):
                problems.append(f"{cls.__qualname__}.{name}: a property without a docstring")
        elif inspect.isfunction(unwrapped(member)):
            problems += check_function(member, f"{cls.__qualname__}.")
    return problems


def public_objects(module_name: str):
    """(name, object) for each function and class in the module's `__all__` defined there."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module_name:
            yield name, obj


def module_file(module_name: str) -> str:
    return importlib.import_module(module_name).__file__


# -- the tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_the_public_api_has_numpydoc_sections_and_type_hints(module_name):
    problems = []
    for _, obj in public_objects(module_name):
        problems += check_class(obj) if inspect.isclass(obj) else check_function(obj, "")
    assert not problems, f"{module_name}:\n" + "\n".join(problems)


def test_ruff_finds_nothing_in_the_documented_modules():
    paths = sorted({module_file(name) for name in DOCUMENTED})
    root = Path(hiercheck.__file__).resolve().parents[2]  # pyproject.toml configures the rules
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "--output-format", "concise", *paths],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_the_examples_run(module_name):
    """Every Examples section of the module's own docstrings, run as a doctest."""
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module, module_name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) failed: see the captured stdout"


def test_the_entry_points_show_examples():
    from hiercheck.models import GroupedData, Priors, load_dataset
    from hiercheck.samplers import empirical_bayes
    from hiercheck.validation import cli

    for entry in (GroupedData.from_csv, Priors.weakly_informative, load_dataset,
                  empirical_bayes.fit, cli.main):
        examples = doctest.DocTestParser().get_examples(inspect.getdoc(entry))
        assert parsed(entry)["Examples"] and examples, f"{qualified(entry)} shows no example"


def test_the_seed_type_is_exported_and_the_package_is_typed():
    from hiercheck._typing import SeedLike

    assert hiercheck.SeedLike is SeedLike
    assert (Path(hiercheck.__file__).parent / "py.typed").is_file()


# -- the checker catches what it is meant to ------------------------------------------------------

def _undocumented_raise(x: int) -> int:
    """Twice x.

    Parameters
    ----------
    x : int
        A number.

    Returns
    -------
    int
        2 x.
    """
    if x < 0:
        raise hiercheck.HiercheckError("negative")
    return 2 * x


def _missing_parameter(x: int, y) -> None:
    """Nothing.

    Parameters
    ----------
    x : int
        A number.
    """


def _reraises_only(x: int) -> None:
    """Nothing.

    Parameters
    ----------
    x : int
        A number.
    """
    try:
        pass
    except ValueError:
        raise


@dataclasses.dataclass
class _Undocumented:
    """A dataclass that forgets a field.

    Attributes
    ----------
    a : int
        One.
    """

    a: int
    b: int


def test_the_checker_reports_each_kind_of_gap():
    assert any("raises ['HiercheckError']" in p for p in check_function(_undocumented_raise, ""))
    problems = check_function(_missing_parameter, "")
    assert any("the signature has ['x', 'y']" in p for p in problems)
    assert any("no type hint on ['y']" in p for p in problems)
    assert check_function(_reraises_only, "") == []
    assert any("['b']" in p for p in check_class(_Undocumented))
