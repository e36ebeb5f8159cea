"""Import rules: dependencies run one way, the numeric core stays light, and no library code
switches the matplotlib backend.

The layers, lowest first (an import may point down or sideways, never up):

1. core: every ``hiergrammar`` module not listed below (model, engines, noise, sampling,
   artifacts, validation, and the measurement functions of ``hiergrammar.experiments``);
2. theory: ``hiergrammar.theory`` (folder ``theory/``);
3. vision: ``hiergrammar.vision`` (folder ``vision/``);
4. top: the figure steps ``hiergrammar.figures``, ``hiergrammar.reproduce`` and the command
   line ``hiergrammar.cli``.

Imports are read from the source (AST), including module names written in strings (tables of
steps or commands imported with ``importlib``); docstrings do not count.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Installed package name -> folder in the repository (setup.cfg's package_dir).
FOLDERS = {
    "hiergrammar": ROOT / "hiergrammar",
    "hiergrammar.theory": ROOT / "theory",
    "hiergrammar.vision": ROOT / "vision",
}

#: (layer, module prefixes), lowest first; a module belongs to its longest matching prefix.
LAYERS = (
    ("core", ("hiergrammar",)),
    ("theory", ("hiergrammar.theory",)),
    ("vision", ("hiergrammar.vision",)),
    ("top", ("hiergrammar.figures", "hiergrammar.reproduce", "hiergrammar.cli")),
)

_MODULE_STRING = re.compile(r"hiergrammar(?:\.[A-Za-z_]\w*)+(?::\w+)?")


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module`` (its longest matching prefix)."""
    best, best_len = None, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise ValueError(f"{module} is in no layer")
    return best


def library_modules() -> dict[str, Path]:
    """Every module of the installed package, by its installed name."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """The ``hiergrammar`` modules that ``source`` (the code of ``module``) imports, by
    statement or by name in a string."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            if _MODULE_STRING.fullmatch(node.value):
                found.add(node.value.partition(":")[0])
    return {name for name in found if name == "hiergrammar" or name.startswith("hiergrammar.")}


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that point to a higher layer."""
    own = layer_of(module)
    return sorted(
        f"{module} ({LAYERS[own][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
        for target in imported_modules(source, module, is_package)
        if layer_of(target) > own
    )


def test_the_scanner_sees_statements_strings_and_relative_imports():
    source = '''"""Docstrings may mention hiergrammar.cli freely."""
import hiergrammar.figures.theory
from hiergrammar import cli
from ..vision import rhm_probe
STEPS = ["hiergrammar.theory.figures:reproduce_step"]
def f():
    """hiergrammar.vision.cli"""
    from hiergrammar.rhm import RHM
'''
    assert upward_imports(source, "hiergrammar.experiments.beliefs") == [
        "hiergrammar.experiments.beliefs (core) -> hiergrammar.cli (top)",
        "hiergrammar.experiments.beliefs (core) -> hiergrammar.figures.theory (top)",
        "hiergrammar.experiments.beliefs (core) -> hiergrammar.theory.figures (theory)",
        "hiergrammar.experiments.beliefs (core) -> hiergrammar.vision (vision)",
        "hiergrammar.experiments.beliefs (core) -> hiergrammar.vision.rhm_probe (vision)",
    ]
    assert upward_imports(source, "hiergrammar.cli.theory") == []


def test_layers_of_known_modules():
    assert [
        LAYERS[layer_of(m)][0]
        for m in (
            "hiergrammar",
            "hiergrammar.experiments.beliefs",
            "hiergrammar.theory.meanfield",
            "hiergrammar.vision.image_sets",
            "hiergrammar.figures.cnn_probe",
            "hiergrammar.reproduce",
            "hiergrammar.cli.args",
        )
    ] == ["core", "core", "theory", "vision", "top", "top", "top"]


def test_library_modules_cover_every_folder():
    modules = library_modules()
    assert {"hiergrammar", "hiergrammar.theory", "hiergrammar.vision", "hiergrammar.cli"} <= set(
        modules
    )
    assert len(modules) == sum(len(list(f.rglob("*.py"))) for f in FOLDERS.values())


def test_no_import_runs_back_up_the_layers():
    violations = []
    for module, path in library_modules().items():
        violations += upward_imports(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
        )
    assert violations == []


def test_the_vision_package_has_no_command_line_code():
    """The ``hiergrammar vision`` commands live in ``hiergrammar.cli``; the library only
    computes: one CLI package, imports run vision <- CLI."""
    offenders = []
    for module, path in library_modules().items():
        if layer_of(module) != layer_of("hiergrammar.vision"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "argparse" for name in names):
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


def test_no_library_code_switches_the_matplotlib_backend():
    """``matplotlib.use`` or ``pyplot.switch_backend`` in a library function changes the
    backend of a user's notebook; figures use ``matplotlib.figure.Figure`` or plain pyplot."""
    offenders = []
    for module, path in library_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("use", "switch_backend")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("matplotlib", "mpl", "plt", "pyplot")
            ):
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


def _heavy_modules_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted(m for m in ('pgmpy', 'torch', 'sympy', 'matplotlib', 'dask', "
        "'distributed', 'pyarrow', 'pandas') "
        "if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_and_tree_bp_stay_light():
    """``import hiergrammar`` and a ``tree_bp`` call import neither pgmpy (which imports torch
    when installed: seconds), torch, sympy, matplotlib, nor the sweeps' Dask, pyarrow and
    pandas."""
    assert _heavy_modules_after("import hiergrammar") == []
    code = (
        "from hiergrammar import RHM\n"
        "from hiergrammar.bp import tree_bp\n"
        "from hiergrammar.noise import eps_evidence\n"
        "rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)\n"
        "data = rhm.sample(3, seed=1)\n"
        "result = tree_bp(rhm, eps_evidence(data.x, 0.2, 4))\n"
        "assert result.marginals[2].shape == (3, 1, 2)\n"
    )
    assert _heavy_modules_after(code) == []


@pytest.mark.parametrize(
    "code",
    ["from hiergrammar.cli import build_parser; build_parser()", "import hiergrammar.reproduce"],
)
def test_the_command_line_parser_stays_light(code):
    assert _heavy_modules_after(code) == []
