"""Sphinx configuration of the hiergrammar documentation site.

Build it (from the repository root; warnings are errors, nothing is fetched from the network)::

    python -m sphinx -W -b html docs docs/_build/html

* Markdown pages (``index.md``, ``model.md``, ``theory_derivation.md``, ``teach.md``) are read
  by myst-parser; docstrings are numpydoc, rendered by ``numpydoc``.
* ``api/`` is generated at every build from each public module's ``__all__``
  (``docs/_ext/api_reference.py``), and the build fails if a name in an ``__all__`` is not
  documented.
* The tutorials are the scripts in ``docs/tutorials/``; sphinx-gallery runs every one of them at
  every build (``auto_tutorials/``, generated) and the build fails if one raises.
* ``teach_tree_bp.html``, the interactive page of ``hiergrammar teach``, is written at every
  build and copied to the root of the site.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

# Tutorials and docstrings draw figures without a display; no progress bars in the log.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HIERGRAMMAR_NO_PROGRESS", "1")

import hiergrammar  # noqa: E402

project = "hiergrammar"
author = "the hiergrammar developers"
copyright = "the hiergrammar developers"
release = version = hiergrammar.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "api_reference",
    "teach_page",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated",
    "tutorials/README.txt",
    "**/*.ipynb",
    "sg_execution_times.rst",
]
# `name` in a docstring links to the object when it exists, and is shown as code otherwise.
default_role = "py:obj"

# -- MyST ---------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- autodoc and numpydoc ----------------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False  # the API pages are written by api_reference
numpydoc_show_class_members = False  # autoclass :members: lists them once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- tutorials (sphinx-gallery) -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    # every script is a tutorial; tutorial_<n>_*.py sort by their number
    "filename_pattern": r"tutorial_\d+_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    # "executed at every build": never reuse the outputs of an earlier build
    "run_stale_examples": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_signature": False,
    "write_computation_times": False,
    "reset_modules": ("matplotlib",),
    "image_scrapers": ("matplotlib",),
    "default_thumb_file": None,
    "min_reported_time": 1,
}

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"hiergrammar {release}"
html_static_path: list[str] = []
html_extra_path = ["_generated/extra"]  # teach_tree_bp.html, written by teach_page
html_show_sourcelink = False
html_theme_options = {
    "description": "Random Hierarchy Models, exact tree BP and the diffusion phase transition",
    "fixed_sidebar": False,
    "page_width": "1240px",
    "sidebar_width": "230px",
}
