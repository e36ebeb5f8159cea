"""The docstring examples of every library module run as doctests under ``python -m pytest``.

Modules are imported by their installed names (``hiergrammar.theory.meanfield``, not the folder
name ``theory.meanfield``), one test per module. A module whose optional extra is missing
(torch for ``hiergrammar.vision``) is skipped with the install hint.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "hiergrammar": ROOT / "hiergrammar",
    "hiergrammar.theory": ROOT / "theory",
    "hiergrammar.vision": ROOT / "vision",
}
#: Modules whose absence means "optional extra not installed", and that extra.
OPTIONAL = {
    "torch": "vision",
    "torchvision": "vision",
    "diffusers": "vision",
    "accelerate": "vision",
    "safetensors": "vision",
    "huggingface_hub": "vision",
    "PIL": "vision",
    "pyagrum": "engines",
}
#: Entry points that run a program when imported.
NOT_IMPORTABLE = {"hiergrammar.cli.__main__"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join([package, *parts]))
    return [name for name in names if name not in NOT_IMPORTABLE]


MODULES = _modules()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top in OPTIONAL:
            pytest.skip(f"{top} is not installed: pip install 'hiergrammar[{OPTIONAL[top]}]'")
        raise
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()


def test_every_example_is_collected():
    """The examples found by the doctest finder are the ``>>>`` lines of each source file
    (comment-only lines aside): a module or docstring silently skipped shows as a shortfall."""
    mismatches, total = {}, 0
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] in OPTIONAL:
                pytest.skip(f"{err.name} is not installed")
            raise
        found = sum(len(t.examples) for t in doctest.DocTestFinder().find(module, name))
        source = Path(module.__file__).read_text(encoding="utf-8")
        expected = len(re.findall(r"^\s*>>> (?!#)", source, flags=re.M))
        total += found
        if found != expected:
            mismatches[name] = (found, expected)
    assert mismatches == {}, "(examples found, '>>>' lines in the file) per module"
    assert total > 150
