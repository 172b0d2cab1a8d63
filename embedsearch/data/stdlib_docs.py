"""A corpus every Python install carries: the docstrings of the standard library, read without importing it.

Each public module, class and function docstring of the top-level ``.py`` modules and packages in the running
interpreter's standard library becomes one document (id ``module.qualname``, metadata ``module`` and ``kind``).
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from embedsearch.data.documents import Document

SKIPPED = ("test", "tests", "idlelib", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "tkinter", "this")


def stdlib_documents(limit: int | None = None) -> list[Document]:
    """Docstring documents of the standard library, sorted by id, at most ``limit`` of them (modules first)."""
    documents = sorted(_all_documents(), key=lambda d: (d.metadata["kind"] != "module", d.id))
    return documents[:limit] if limit else documents


def _all_documents() -> Iterator[Document]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/__init__.py")):
        module = path.stem if path.name != "__init__.py" else path.parent.name
        if module.startswith("_") or module in SKIPPED or module not in sys.stdlib_module_names:
            continue
        yield from _documents_of(module, path)


def _documents_of(module: str, path: Path) -> Iterator[Document]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return
    if doc := ast.get_docstring(tree):
        yield Document(module, f"{module}: {doc}", {"module": module, "kind": "module"})
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            if doc := ast.get_docstring(node):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                name = f"{module}.{node.name}"
                yield Document(name, f"{name}: {doc}", {"module": module, "kind": kind})
