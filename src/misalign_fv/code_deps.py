"""The library files a workflow script runs, computed from its imports, so that a rule declares
them as inputs and editing any of them reruns the rule (and nothing else).

Imports are read statically (``ast``), including those inside functions, and followed
transitively through ``misalign_fv``; modules a script loads by name at run time (a benchmark's
module, say) are passed as ``extra``. Nothing is imported, so the workflow parses fast.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "misalign_fv"


def _module_file(root: Path, module: str) -> Path | None:
    """``src/misalign_fv/a/b.py`` or ``.../a/b/__init__.py`` for ``misalign_fv.a.b``; None if neither."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _imports(path: Path, root: Path) -> tuple[str, ...]:
    """Every ``misalign_fv`` module ``path`` imports (absolute or relative), with its parent packages."""
    tree = ast.parse(path.read_text(), filename=str(path))
    # the package a relative import starts from (a module's folder; a package's own folder for __init__)
    package = ".".join(path.relative_to(root).parts[:-1]) if path.is_relative_to(root) else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parent, node.module or ""] if p)
            else:
                base = node.module or ""
            # `from pkg import name`: name is a submodule or an attribute of pkg; keep whichever exists.
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(m for m in found if _module_file(root, m) is not None))


def code_inputs(script: str | Path, root: str | Path, extra: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[str]:
    """Sorted paths (under ``root``, the folder holding ``misalign_fv/``) of the library files ``script`` runs.

    ``extra``: modules loaded by name at run time (``misalign_fv.benchmarks.em``); ``exclude``:
    module prefixes not followed (a lazily imported part the job does not run for these wildcards).
    """
    root = Path(root)
    skip = tuple(exclude)
    todo: list[Path] = [Path(script)]
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
    return sorted(str(p) for p in seen if p != Path(script))
