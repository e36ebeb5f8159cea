"""Write the interactive page of ``hiergrammar teach`` into the site at every build.

The page (:func:`hiergrammar.teach.write_page`, default grammar and noise grid) is written to
``docs/_generated/extra/teach_tree_bp.html`` when the build starts; ``conf.py`` lists that
folder in ``html_extra_path``, so Sphinx copies the file, untouched, to the root of the site,
where ``teach.md`` links to it and shows it in a frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The page's file name in the site.
PAGE = "teach_tree_bp.html"
#: Where it is written, relative to the documentation's source folder.
FOLDER = Path("_generated") / "extra"


def setup(app: Any) -> dict[str, Any]:
    def generate(app: Any) -> None:
        from hiergrammar.teach import write_page

        folder = Path(app.srcdir) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        write_page(folder / PAGE)

    # before Sphinx copies html_extra_path, which it checks for existence at config time
    (Path(app.srcdir) / FOLDER).mkdir(parents=True, exist_ok=True)
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
