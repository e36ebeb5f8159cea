"""Packaging: the wheel installs ``hiergrammar`` and nothing else at the top level, with
``hiergrammar.theory`` and ``hiergrammar.vision`` inside, and a non-editable install imports
them. The build runs offline (``--no-build-isolation``, ``--no-index``) with the setuptools of
this environment (the ``test`` extra asks for one that builds wheels itself)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hiergrammar

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "hiergrammar": ROOT / "hiergrammar",
    "hiergrammar.theory": ROOT / "theory",
    "hiergrammar.vision": ROOT / "vision",
}


def _package_folders() -> dict[str, Path]:
    """Every package (a folder with ``__init__.py``) by its installed name."""
    out = {}
    for package, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            out[".".join([package, *parts])] = init.parent
    return out


def _installed_files() -> set[str]:
    """Paths that the wheel must hold: every module of every package, under ``hiergrammar/``."""
    files = set()
    for package, folder in FOLDERS.items():
        prefix = Path(*package.split("."))
        for path in folder.rglob("*.py"):
            files.add((prefix / path.relative_to(folder)).as_posix())
    return files


def test_setup_cfg_lists_every_package():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    assert listed == set(_package_folders())
    mapping = dict(
        line.split(" = ") for line in config["options"]["package_dir"].strip().splitlines()
    )
    assert mapping == {name: str(path.relative_to(ROOT)) for name, path in FOLDERS.items()}


def _can_build_wheels() -> bool:
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (setuptools >= 70.1)

        return True
    except ImportError:
        pass
    try:
        import wheel.bdist_wheel  # noqa: F401

        return True
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not _can_build_wheels(),
    reason="this environment's setuptools cannot build wheels offline: "
    "pip install 'setuptools>=70.1' (the test extra)",
)
def test_wheel_holds_only_hiergrammar_and_a_plain_install_imports_it(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in FOLDERS.values():
        shutil.copytree(folder, source / folder.name, ignore=ignore)
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-q", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(f"hiergrammar-{hiergrammar.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"hiergrammar-{hiergrammar.__version__}.dist-info/"
    strays = [n for n in names if not n.startswith(("hiergrammar/", dist_info))]
    assert strays == []
    assert {n for n in names if n.endswith(".py")} == _installed_files()
    with zipfile.ZipFile(wheel) as zf:
        entry_points = zf.read(dist_info + "entry_points.txt").decode()
        top_level = zf.read(dist_info + "top_level.txt").decode().split()
    assert "hiergrammar = hiergrammar.cli:main" in entry_points
    assert top_level == ["hiergrammar"]

    # A non-editable install, away from the checkout: the subpackages are found there.
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import importlib.util\n"
        "import hiergrammar.theory.meanfield, hiergrammar.vision.image_sets, hiergrammar.cli\n"
        "import hiergrammar.figures.theory\n"
        "for m in (hiergrammar.theory.meanfield, hiergrammar.vision.image_sets, hiergrammar.cli):\n"
        "    assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "assert importlib.util.find_spec('theory') is None\n"
        "assert importlib.util.find_spec('vision') is None\n"
        "print(hiergrammar.theory.meanfield.critical_eps(32, 8, 2))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert abs(float(done.stdout) - 17 / 24) < 1e-12
