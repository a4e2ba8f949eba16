"""Load a script of benchmarks/ or scripts/ as a module, for the tests that check its words."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as the module ``name`` (registered in ``sys.modules``, so
    dataclasses and pickling inside it work)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
