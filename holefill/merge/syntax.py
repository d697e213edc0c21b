"""Syntax checks for merge candidates: ``ast`` for whole files, tree-sitter for fragments.

Nothing here imports or executes user code: ``ast.parse`` only parses.
"""

from __future__ import annotations

import ast
import functools
import warnings

__all__ = ["ast_parses", "ts_error_count"]


def ast_parses(text: str) -> bool:
    """True when ``text`` is a syntactically valid Python module."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes etc.
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return True


@functools.lru_cache(maxsize=1)
def _parser():  # type: ignore[no-untyped-def]
    try:
        import tree_sitter_python
        from tree_sitter import Language, Parser
    except ImportError:  # pragma: no cover - tree-sitter is a declared dependency
        return None
    return Parser(Language(tree_sitter_python.language()))


def ts_error_count(text: str) -> int:
    """Number of ERROR and MISSING nodes tree-sitter finds in ``text`` (0 when it parses cleanly).

    Works on fragments (an indented block without its header still yields few errors).  Falls back
    to ``0 if ast_parses(text) else 1`` when tree-sitter is unavailable.
    """
    parser = _parser()
    if parser is None:  # pragma: no cover
        return 0 if ast_parses(text) else 1
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    root = tree.root_node
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count
