"""Build the API reference from the docstrings with pdoc: ``bash scripts/api_docs.sh [OUT]``.

Writes static HTML to ``OUT`` (default ``build/api``, git-ignored): the top-level names of
``conceptlab`` (``__all__``) and every subpackage and module below it. Lazy top-level names
are resolved first so pdoc documents them on the front page. Modules whose optional extra is
missing are left out with pdoc's warning (the reference then says less, nothing breaks).
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path


def modules() -> list[str]:
    """``conceptlab`` and every module below it, by name (private ``_name`` modules left out)."""
    import conceptlab

    names = ["conceptlab"]
    for info in pkgutil.walk_packages(conceptlab.__path__, "conceptlab.", onerror=lambda _: None):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def build(out: Path, names: list[str] | None = None) -> Path:
    """Write the reference of ``names`` (default: :func:`modules`) to ``out``; returns
    ``out / "index.html"``."""
    import pdoc
    import pdoc.render

    import conceptlab

    for name in conceptlab.__all__:  # resolve the lazy names: pdoc sees them as members
        getattr(conceptlab, name)
    pdoc.render.configure(docformat="restructuredtext", show_source=False,
                          footer_text=f"conceptlab {conceptlab.__version__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdoc.pdoc(*(names or modules()), output_directory=out)
    return out / "index.html"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/api")
    print(f"API reference: {build(target)}")
