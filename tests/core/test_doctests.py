"""The core's docstring examples run as tests, so the documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import coolmix

CORE = (
    "errors",
    "validate",
    "fileio",
    "mixture",
    "distributions",
    "schedule",
    "schedules",
    "permutation",
    "seekable",
    "sampler",
    "weighting",
    "packing",
    "plan",
    "mixconfig",
    "config",
    "testing",
)


def _core_modules() -> list[str]:
    names = []
    for name in CORE:
        try:
            mod = importlib.import_module(f"coolmix.{name}")
        except ModuleNotFoundError:
            continue
        names.append(mod.__name__)
        if hasattr(mod, "__path__"):  # a package: its submodules too
            names += [f"{mod.__name__}.{m.name}" for m in pkgutil.iter_modules(mod.__path__)]
    return names


MODULES = _core_modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def test_the_core_has_examples():
    """Guards against collecting nothing: the core documents itself with dozens of examples."""
    finder = doctest.DocTestFinder()
    total = sum(len(t.examples) for name in MODULES for t in finder.find(importlib.import_module(name)))
    assert total >= 40, total
    assert coolmix.__name__ == "coolmix"
