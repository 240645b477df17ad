"""The library files a workflow script runs, computed from its imports, so that a rule declares
them as inputs and editing any of them reruns the rule (and nothing else).

Imports are read statically (as text), including those inside functions, and followed
transitively through ``misalign_fv``; modules a script loads by name at run time (a benchmark's
module, say) are passed as ``extra``. Nothing is imported, so the workflow parses fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "misalign_fv"


@lru_cache(maxsize=None)
def _module_file(root: Path, module: str) -> Path | None:
    """``src/misalign_fv/a/b.py`` or ``.../a/b/__init__.py`` for ``misalign_fv.a.b``; None if neither."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# `import a.b, c` / `from .a import (b, c)`: read as text (parsing every module's AST costs most of
# a dry run); a match inside a string at worst adds an input, never loses one.
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]+)", re.M)


@lru_cache(maxsize=None)
def _imports(path: Path, root: Path) -> tuple[str, ...]:
    """Every ``misalign_fv`` module ``path`` imports (absolute or relative), with its parent packages."""
    text = path.read_text()
    # the package a relative import starts from (a module's folder; a package's own folder for __init__)
    package = path.relative_to(root).parts[:-1] if path.is_relative_to(root) else ()
    names: list[str] = []
    for m in _IMPORT.finditer(text):
        names += [n.split(" as ")[0].strip() for n in m.group(1).split(",")]
    for m in _FROM.finditer(text):
        module, imported = m.group(1), m.group(2).strip("() \t")
        level = len(module) - len(module.lstrip("."))
        base = ".".join([*package[: len(package) - level + 1], module.lstrip(".")] if level else [module]).strip(".")
        # `from pkg import name`: name is a submodule or an attribute of pkg; keep whichever exists.
        names += [base, *(f"{base}.{n.split(' as ')[0].strip()}" for n in imported.replace("\n", " ").split(",") if n.strip())]
    found: set[str] = set()
    for name in names:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(m for m in found if _module_file(root, m) is not None))


def code_inputs(script: str | Path, root: str | Path, extra: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[str]:
    """Sorted paths (under ``root``, the folder holding ``misalign_fv/``) of the library files ``script`` runs.

    ``extra``: modules loaded by name at run time (``misalign_fv.benchmarks.em``); ``exclude``:
    module prefixes not followed (a lazily imported part the job does not run for these wildcards).
    The answer is cached per arguments: a workflow asks once per job.
    """
    return list(_closure(Path(script), Path(root), tuple(extra), tuple(exclude)))


@lru_cache(maxsize=None)
def _closure(script: Path, root: Path, extra: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[str, ...]:
    skip = exclude
    todo: list[Path] = [script]
    todo += [f for m in extra if (f := _module_file(root, m)) is not None]
    unknown = [m for m in extra if _module_file(root, m) is None]
    if unknown:
        raise ValueError(f"code_inputs: no module {unknown[0]} under {root}")
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path, root):
            if skip and any(module == s or module.startswith(s + ".") for s in skip):
                continue
            todo.append(_module_file(root, module))  # type: ignore[arg-type]
    return tuple(sorted(str(p) for p in seen if p != script))
