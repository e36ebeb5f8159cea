"""Generate the API reference from the package itself, so that it cannot rot.

Every public module (no part of its dotted name starts with ``_``) declares ``__all__``; each
module gets one page, ``api/<module>.rst``, written when the build starts:

* the module's docstring (``automodule``), then a table of every name in its ``__all__``;
* each name *defined* in the module, in ``__all__`` order: ``autoclass`` (with its members),
  ``autoexception``, ``autofunction`` or ``autodata``;
* each name it *re-exports* from another public module that documents it (for example
  ``hiergrammar.RHM``, defined in :mod:`hiergrammar.rhm`) appears in the table and links to
  that page, so no object is described twice.

After the build has read every page, :func:`check_reference` warns about each ``__all__`` name
that the Python domain does not know (under ``-W`` a warning fails the build), so a name that a
directive silently skipped cannot go unnoticed. ``tests/test_docs.py`` runs :func:`plan` without
Sphinx and checks that it covers every name.

The pages are regenerated at every build into ``docs/api/`` (ignored by git).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The installed packages and the folders they live in (relative to the repository root).
PACKAGES = {
    "hiergrammar": "hiergrammar",
    "hiergrammar.theory": "theory",
    "hiergrammar.vision": "vision",
}
#: Entry points that run a program when imported.
NOT_IMPORTABLE = {"hiergrammar.cli.__main__"}
#: Where the generated pages go, relative to the documentation's source folder.
API_DIR = "api"
#: ``autodata`` shows a value only when its ``repr`` is at most this long.
MAX_VALUE_REPR = 80


@dataclass
class ModulePlan:
    """What the page of one module holds.

    ``documented``: ``(name, directive)`` pairs described on this page, in ``__all__`` order;
    ``linked``: ``name -> home module`` for re-exports described on their home page.
    """

    module: str
    documented: list[tuple[str, str]] = field(default_factory=list)
    linked: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Every name of the module's ``__all__`` that the page lists."""
        return [name for name, _ in self.documented] + list(self.linked)


def public_modules(root: Path) -> list[str]:
    """Dotted names of every public module of the packages in :data:`PACKAGES`, sorted.

    ``root`` is the repository root. A module is public when no part of its dotted name starts
    with an underscore (``__init__`` stands for its package).
    """
    names = []
    for package, folder in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if name in NOT_IMPORTABLE or any(p.startswith("_") for p in parts):
                continue
            names.append(name)
    return sorted(names)


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if (
        inspect.isfunction(obj)
        or inspect.isbuiltin(obj)
        or callable(obj)
        and hasattr(obj, "__wrapped__")
    ):
        return "autofunction"
    return "autodata"


def _home(obj: Any) -> str | None:
    """The module that defines a class or function (None for other objects)."""
    if inspect.isclass(obj) or inspect.isfunction(obj) or hasattr(obj, "__wrapped__"):
        return getattr(obj, "__module__", None)
    return None


def plan(modules: list[str]) -> dict[str, ModulePlan]:
    """Decide, for every name of every module's ``__all__``, where it is described.

    A class or function whose defining module is another public module that lists it in its
    own ``__all__`` (under the same name) is linked there; everything else is described on the
    page of the module that exports it.

    Raises
    ------
    ValueError
        When a module has no ``__all__`` or lists a name it does not have.
    """
    imported = {name: importlib.import_module(name) for name in modules}
    plans: dict[str, ModulePlan] = {}
    for name, module in imported.items():
        exported = getattr(module, "__all__", None)
        if exported is None:
            raise ValueError(f"public module {name} declares no __all__")
        page = ModulePlan(name)
        for attr in exported:
            if not hasattr(module, attr):
                raise ValueError(f"{name}.__all__ lists {attr!r}, which {name} does not have")
            obj = getattr(module, attr)
            home = _home(obj)
            if (
                home is not None
                and home != name
                and home in imported
                and attr in getattr(imported[home], "__all__", ())
                and getattr(imported[home], attr) is obj
            ):
                page.linked[attr] = home
            else:
                page.documented.append((attr, _directive(obj)))
        plans[name] = page
    return plans


def _first_line(module: Any) -> str:
    doc = inspect.getdoc(module) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _title(text: str) -> list[str]:
    return [text, "=" * len(text), ""]


def module_page(page: ModulePlan) -> str:
    """The reStructuredText of one module's page."""
    module = importlib.import_module(page.module)
    lines = _title(page.module)
    lines += [f".. automodule:: {page.module}", "   :no-members:", ""]
    if page.documented:
        lines += [".. rubric:: Names", "", ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {name}" for name, _ in page.documented] + [""]  # relative to the module
    if page.linked:
        lines += [".. rubric:: Re-exported here, documented where they are defined", ""]
        for name, home in page.linked.items():
            lines.append(f"* ``{page.module}.{name}``: :py:obj:`{home}.{name}`")
        lines.append("")
    for name, directive in page.documented:
        lines += [f".. {directive}:: {page.module}.{name}"]
        if directive == "autoclass":
            lines += ["   :members:", "   :show-inheritance:"]
        elif directive == "autoexception":
            lines += ["   :show-inheritance:"]
        elif directive == "autodata" and len(repr(getattr(module, name))) > MAX_VALUE_REPR:
            lines += ["   :no-value:"]
        lines.append("")
    return "\n".join(lines)


def index_page(plans: dict[str, ModulePlan]) -> str:
    """The reStructuredText of ``api/index``: every module with the first paragraph of its
    docstring, grouped by package, and the hidden table of contents of the module pages."""
    lines = _title("API reference")
    total = sum(len(p.names) for p in plans.values())
    lines += [
        f"Every public module of the package and every name in its ``__all__`` "
        f"({len(plans)} modules, {total} names), generated from the code at each build. "
        "Array shapes follow the conventions of :doc:`../model`: batches first, levels "
        "``l = 0..L`` with the class at level ``L``.",
        "",
        ".. toctree::",
        "   :hidden:",
        "",
    ]
    lines += [f"   {name}" for name in plans] + [""]
    for package in PACKAGES:
        members = [name for name in plans if name == package or name.startswith(package + ".")]
        members = [
            n
            for n in members
            if not any(n.startswith(p + ".") for p in PACKAGES if len(p) > len(package))
        ]
        lines += [f".. rubric:: {package}", "", ".. list-table::", "   :widths: 30 70", ""]
        for name in members:
            summary = _first_line(importlib.import_module(name)) or " "
            lines += [f"   * - :doc:`{name}`", f"     - {summary}"]
        lines.append("")
    return "\n".join(lines)


def write_pages(srcdir: Path, root: Path) -> dict[str, ModulePlan]:
    """Write ``api/index.rst`` and one page per module under ``srcdir``; remove stale pages.

    Files are rewritten only when their text changes, so Sphinx re-reads only what changed.
    """
    plans = plan(public_modules(root))
    out = srcdir / API_DIR
    out.mkdir(exist_ok=True)
    pages = {f"{name}.rst": module_page(page) for name, page in plans.items()}
    pages["index.rst"] = index_page(plans)
    for stale in set(p.name for p in out.glob("*.rst")) - set(pages):
        (out / stale).unlink()
    for filename, text in pages.items():
        path = out / filename
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return plans


def missing_names(plans: dict[str, ModulePlan], known: set[str] | dict) -> list[str]:
    """The ``module.name`` entries of ``plans`` whose described object (on its own page or,
    for a re-export, on its home page) is not among the ``known`` full names."""
    missing = []
    for page in plans.values():
        for name in page.names:
            if f"{page.linked.get(name, page.module)}.{name}" not in known:
                missing.append(f"{page.module}.{name}")
    return missing


def setup(app: Any) -> dict[str, Any]:
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    root = Path(app.srcdir).resolve().parent
    plans: dict[str, ModulePlan] = {}

    def generate(app: Any) -> None:
        plans.update(write_pages(Path(app.srcdir), root))

    def check(app: Any, env: Any) -> None:
        for name in missing_names(plans, env.get_domain("py").objects):
            logger.warning("API reference: %s is in __all__ but not documented", name)

    app.connect("builder-inited", generate)
    app.connect("env-check-consistency", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
