"""The public names of horde_model_records: lazy at run time, real types for type checkers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import horde_model_records

INIT = Path(horde_model_records.__file__)


def _type_checking_imports() -> dict[str, str]:
    """name -> module (as `.module`) of every import under `if TYPE_CHECKING:` in __init__.py."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
                for alias in stmt.names:
                    names[alias.asname or alias.name] = "." * stmt.level + (stmt.module or "")
    return names


def test_lazy_names_are_declared_for_type_checkers() -> None:
    """Every lazily loaded name is imported under TYPE_CHECKING from the module it loads from."""
    assert _type_checking_imports() == horde_model_records._LAZY


def test_lazy_names_are_exported() -> None:
    """Every lazily loaded name is in __all__ and resolves on first access."""
    for name in horde_model_records._LAZY:
        assert name in horde_model_records.__all__
        assert getattr(horde_model_records, name) is not None


def test_import_leaves_the_converter_unloaded() -> None:
    """Importing the package loads neither the converter nor the conversion code."""
    code = (
        "import sys, horde_model_records; "
        "print(sorted(m for m in ('horde_model_records.convert', 'horde_model_records.serde') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
