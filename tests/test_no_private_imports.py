"""No module of conceptlab reads another module's private (``_name``) names.

Why: a private name is free to change with its module; a second module that imports it (or
reaches it as ``module._name``) ties the two together silently. What several modules share is
made public, with a docstring. The test parses every module under ``src/conceptlab`` with
``ast`` (nothing is imported) and lists each offence with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import conceptlab

ROOT = Path(conceptlab.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def resolve(module: str | None, level: int, here: str, is_package: bool) -> str:
    """The absolute module of ``from <level dots><module> import ...`` inside ``here``."""
    if level == 0:
        return module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def offences(path: Path) -> list[str]:
    """``file:line: what`` for each private name of another conceptlab module it reads."""
    here = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases: dict[str, str] = {}  # local name -> conceptlab module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("conceptlab"):
                    if private_module_outside(a.name, here):
                        found.append(f"{node.lineno}: import {a.name}")
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node.module, node.level, here, path.name == "__init__.py")
            if not source.startswith("conceptlab") or source == here:
                continue
            if private_module_outside(source, here):
                found.append(f"{node.lineno}: from {source} import ...")
            for a in node.names:
                if private(a.name) and (not is_module(f"{source}.{a.name}")
                                        or private_module_outside(f"{source}.{a.name}", here)):
                    found.append(f"{node.lineno}: from {source} import {a.name}")
                else:
                    aliases[a.asname or a.name] = f"{source}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain = []
            inner: ast.expr = node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                target = ".".join([aliases[inner.id], *reversed(chain)])
                if is_module(target) and target != here:
                    found.append(f"{node.lineno}: {target}.{node.attr}")
    return [f"{path.relative_to(ROOT.parent)}:{f}" for f in found]


def private_module_outside(module: str, here: str) -> bool:
    """A private module (``pkg._common``) read from outside its package: a private module is
    shared by the modules of its own package only."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if private(part):
            owner = ".".join(parts[:i])
            if here != owner and not here.startswith(owner + "."):
                return True
    return False


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of conceptlab (not a class or function)."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def all_offences() -> list[str]:
    return [o for path in sorted(ROOT.rglob("*.py")) for o in offences(path)]


def test_no_module_reads_another_modules_private_names() -> None:
    found = all_offences()
    assert not found, "private names read across modules:\n" + "\n".join(found)


def test_the_checker_sees_each_form_of_offence(tmp_path: Path, monkeypatch) -> None:
    """The checker flags ``from conceptlab.x import _y``, ``from .x import _y``,
    ``import conceptlab.x as m; m._y``, ``from conceptlab import x; x._y`` and a private
    module read from outside its package, and leaves a module's own private names, dunders
    and a package's private module read inside that package alone."""
    pkg = tmp_path / "conceptlab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "other.py").write_text("_hidden = 1\nshown = 2\n")
    (pkg / "lib").mkdir()
    (pkg / "lib" / "__init__.py").write_text("")
    (pkg / "lib" / "_secret.py").write_text("")
    (pkg / "sub" / "bad.py").write_text(
        "from conceptlab.other import _hidden\n"
        "from ..other import _hidden as h2\n"
        "import conceptlab.other as m\n"
        "from conceptlab import other\n"
        "from conceptlab.lib import _secret\n"
        "from conceptlab.lib._secret import anything\n"
        "x = m._hidden + other._hidden\n")
    (pkg / "sub" / "good.py").write_text(
        "from conceptlab.other import shown\n"
        "from conceptlab import other\n"
        "_mine = 1\n"
        "y = other.shown + _mine + other.__name__.__len__()\n"
        "class A:\n    _x = 1\n    def f(self):\n        return self._x\n")
    (pkg / "sub" / "_shared.py").write_text("def f():\n    return 1\n")
    (pkg / "sub" / "sibling.py").write_text(
        "from conceptlab.sub._shared import f\nfrom conceptlab.sub import _shared\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", pkg)
    bad = offences(pkg / "sub" / "bad.py")
    assert [b.split(":", 1)[1] for b in bad] == [
        "1: from conceptlab.other import _hidden", "2: from conceptlab.other import _hidden",
        "5: from conceptlab.lib import _secret",
        "6: from conceptlab.lib._secret import ...", "7: conceptlab.other._hidden",
        "7: conceptlab.other._hidden"], bad
    assert offences(pkg / "sub" / "good.py") == []
    assert offences(pkg / "sub" / "sibling.py") == []
