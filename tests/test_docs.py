"""The documentation site cannot rot.

* Every public module declares ``__all__``, and the generated API reference
  (``docs/_ext/api_reference.py``) describes every name in it, either on the module's page or,
  for a re-export, on the page of the module that defines it. The site build
  (``python -m sphinx -W -b html docs OUT``, run by ``.ci/run``) then fails on any name the
  Python domain did not register; :func:`missing_names` is that check.
* The index's toctree and relative links resolve, and its example code runs.
* Every tutorial script matches the gallery's pattern, so adding a tutorial is adding a file.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def api():
    return _load("api_reference", DOCS / "_ext" / "api_reference.py")


@pytest.fixture(scope="module")
def plans(api):
    return api.plan(api.public_modules(ROOT))


def _exported(path: Path) -> list[str] | None:
    """The literal ``__all__`` of a source file, read without importing it (None if absent)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            return ast.literal_eval(value) if not isinstance(value, ast.Call) else []
    return None


def _public_files() -> dict[str, Path]:
    """Every public module's source file by dotted name, found by walking the folders."""
    found = {}
    for package, folder in {
        "hiergrammar": "hiergrammar",
        "hiergrammar.theory": "theory",
        "hiergrammar.vision": "vision",
    }.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not any(part.startswith("_") for part in parts):
                found[".".join([package, *parts])] = path
    return found


def test_public_modules_are_every_module_but_private_ones(api):
    modules = api.public_modules(ROOT)
    assert sorted(modules) == sorted(_public_files())
    for expected in (
        "hiergrammar",
        "hiergrammar.bp",
        "hiergrammar.teach",
        "hiergrammar.cli.teach",
        "hiergrammar.theory.symbolic",
        "hiergrammar.vision.pipeline",
    ):
        assert expected in modules
    assert "hiergrammar.kernels._numba_loops" not in modules
    assert "hiergrammar.cli.__main__" not in modules


def test_every_public_module_declares_all():
    missing = [name for name, path in _public_files().items() if _exported(path) is None]
    assert missing == []


def test_the_reference_describes_every_name_of_every_all(api, plans):
    import importlib

    total = 0
    for module, page in plans.items():
        exported = list(importlib.import_module(module).__all__)
        assert sorted(page.names) == sorted(exported), module
        assert len(set(page.names)) == len(page.names), module
        total += len(exported)
        text = api.module_page(page)
        assert f".. automodule:: {module}" in text
        for name, directive in page.documented:
            assert f".. {directive}:: {module}.{name}" in text
        for name, home in page.linked.items():
            # a re-export points to the page that describes it
            assert name in dict(plans[home].documented), f"{module}.{name}: {home} lacks it"
            assert f":py:obj:`{home}.{name}`" in text
    assert total > 400
    index = api.index_page(plans)
    for module in plans:
        assert f":doc:`{module}`" in index and f"   {module}\n" in index


def test_reexports_are_linked_not_described_twice(plans):
    assert plans["hiergrammar"].linked["RHM"] == "hiergrammar.rhm"
    assert plans["hiergrammar.bp"].linked["ZeroEvidenceError"] == "hiergrammar.validation"
    assert ("RHM", "autoclass") in plans["hiergrammar.rhm"].documented
    assert ("tree_bp", "autofunction") in plans["hiergrammar.bp"].documented
    assert ("InputError", "autoexception") in plans["hiergrammar.validation"].documented
    # a documented constant
    assert ("BACKENDS", "autodata") in plans["hiergrammar.kernels"].documented
    described = [f"{page.linked.get(n, m)}.{n}" for m, page in plans.items() for n in page.names]
    on_pages = {f"{m}.{n}" for m, page in plans.items() for n, _ in page.documented}
    assert set(described) <= on_pages


def test_missing_names_reports_a_name_the_build_did_not_register(plans, api):
    known = {f"{m}.{n}" for m, page in plans.items() for n, _ in page.documented}
    assert api.missing_names(plans, known) == []
    known.discard("hiergrammar.rhm.RHM")
    missing = api.missing_names(plans, known)
    # the class itself and every module that re-exports it
    assert "hiergrammar.rhm.RHM" in missing and "hiergrammar.RHM" in missing
    known.discard("hiergrammar.bp.tree_bp")
    assert "hiergrammar.bp.tree_bp" in api.missing_names(plans, known)


def test_plan_refuses_a_module_without_all_or_with_a_wrong_name(api, tmp_path, monkeypatch):
    (tmp_path / "hg_doc_probe_a.py").write_text("def f():\n    pass\n")
    (tmp_path / "hg_doc_probe_b.py").write_text("__all__ = ['g']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="declares no __all__"):
        api.plan(["hg_doc_probe_a"])
    with pytest.raises(ValueError, match="does not have"):
        api.plan(["hg_doc_probe_b"])


def _links(markdown: str) -> list[str]:
    """Targets of Markdown links and images that are relative paths (no URL, no anchor)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    return [
        t.split("#")[0] for t in targets if not re.match(r"^[a-z]+:", t) and not t.startswith("#")
    ]


@pytest.mark.parametrize("page", ["index.md", "teach.md"])
def test_relative_links_resolve(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    for target in _links(text):
        assert (DOCS / target).exists(), f"docs/{page} links to missing {target}"


def test_toctree_lists_existing_pages_and_the_glob():
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    block = re.search(r"```\{toctree\}\n(.*?)```", text, flags=re.S).group(1)
    entries = [
        line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")
    ]
    generated = {"auto_tutorials/index": DOCS / "tutorials", "api/index": DOCS / "_ext"}
    for entry in entries:
        if entry == "*":
            continue
        if entry in generated:
            assert generated[entry].exists()
        else:
            assert (DOCS / f"{entry}.md").exists(), entry
    assert entries[-1] == "*", "the glob picks up pages added later"


def test_index_example_runs():
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "docs/index.md", "exec"), {})
        # the example prints the class accuracy of exact BP at eps = 0.2: well above chance
        assert float(out.getvalue().split()[-1]) > 0.5


def test_every_tutorial_is_in_the_gallery():
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    pattern = re.search(r'"filename_pattern": r"([^"]+)"', conf).group(1)
    scripts = sorted((DOCS / "tutorials").glob("*.py"))
    assert len(scripts) >= 4
    for script in scripts:
        assert re.search(pattern, "/" + script.name), f"{script.name} would not be executed"
        assert re.match(r"tutorial_\d+_\w+\.py$", script.name)
        # a gallery script opens with a docstring holding an RST title
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
        assert doc and re.search(r"\n=+\n", doc), script.name
    assert (DOCS / "tutorials" / "README.txt").exists()
