"""The top-level API: ``dir(conceptlab)`` and ``__all__`` list the public names, each name
resolves, and ``import conceptlab`` stays cheap (nothing heavy imported until a name is used)."""

from __future__ import annotations

import subprocess
import sys

import conceptlab


def test_dir_lists_the_public_api_and_nothing_else() -> None:
    names = dir(conceptlab)
    assert names == sorted(conceptlab.__all__)
    for name in ("ConceptBottleneckModel", "ConceptBank", "build_encoder", "audit",
                 "export_table", "plot", "__version__"):
        assert name in names
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    assert "importlib" not in names and "Any" not in names


def test_every_public_name_resolves() -> None:
    for name in conceptlab.__all__:
        assert getattr(conceptlab, name) is not None, name


def test_import_is_cheap() -> None:
    code = ("import sys, conceptlab; heavy = [m for m in ('torch', 'numpy', 'matplotlib', "
            "'pandas', 'transformers') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
