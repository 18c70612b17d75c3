"""The derivation names the code that implements each formula; those names must exist."""

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOTTED_NAME = re.compile(r"`((?:models|samplers|validation)(?:\.\w+)+)`")


def referenced_names():
    names = set()
    for page in DOCS.glob("*.md"):
        names.update((page.name, name) for name in DOTTED_NAME.findall(page.read_text()))
    return sorted(names)


def resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then walk attributes for the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_derivation_references_code():
    assert len([n for page, n in referenced_names() if page == "derivation.md"]) >= 15


@pytest.mark.parametrize("page, name", referenced_names())
def test_every_referenced_name_exists(page, name):
    assert resolve(name) is not None, f"{page} names {name}, which does not exist"
