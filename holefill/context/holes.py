"""Typed holes (ChatLSP for Python): expected type, relevant types and relevant headers at a cursor.

Pure functions over (document text, cursor offset, path, workspace); the engine, CLI and LSP call
`hole_context` (or the three parts) and `holefill.context.prompt.context_block` lays the result out.

- `expected_type_at`: the type the code at the cursor should have, by the rules of RESEARCH.md §6.5
  (the first that applies): argument of a call (positional, keyword, `*args`; `dataclasses.replace`
  keywords take the field's type; `list.append`-style methods the receiver's element type), default
  value of an annotated parameter, right-hand side of an annotated assignment (`x: T = ▮`), element
  of a list/set/dict literal whose own expected type is known, assignment to a target whose declared
  type jedi knows (`self.count = ▮`), `return` in an annotated function (`yield` takes the element of
  `Iterator[T]`), conditions of `if`/`elif`/`while`/`assert`, `not`, the test of a conditional
  expression (all `bool`), the right operand of a comparison (the left operand's type), the pattern
  of a `case` (the `match` subject's type). Otherwise "unknown".
- `relevant_types`: the workspace classes (dataclasses, enums, TypedDicts, Protocols, NamedTuples,
  plain classes) and type aliases reachable from the expected type, breadth first, recursively
  through field annotations, base classes and, for a base class, its subclasses in the same module
  (depth <= 2, at most 12), rendered as compact Python stubs. Aliases are expanded at no depth cost.
  When the expected type is unknown (e.g. `x = ▮` for a new name) or a builtin (`int`, `bool`),
  the workspace types named by the enclosing function's signature are added one level deeper: the
  types of the values in play (a weaker hint than ChatLSP's, which has nothing there).
- `relevant_headers`: functions, parameters and variables in scope at the cursor whose type (or
  return type) mentions a type of the goal (the expected type; for `Callable[..., R]` its `R`).
  Builtin-only goals keep only exact matches defined in the workspace. Ranked: user-defined types
  first, exact matches, distance from the cursor, fewer parameters; the enclosing function last; at
  most 8; rendered as `def` stubs (`name: T` for variables).

Static only: jedi runs with a `Project(smart_sys_path=False, load_unsafe_extensions=False)` whose
only added search path is the workspace root (and `src/` when present), nothing of the user's code
is imported or executed. Projects are cached per workspace root; the first call on a workspace pays
for jedi's builtins (~0.5-1 s), later calls take tens of milliseconds.
"""

from __future__ import annotations

import ast
import io
import os
import re
import sys
import threading
import time
import tokenize
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jedi
import parso

__all__ = [
    "ExpectedType",
    "Header",
    "HoleContext",
    "TypeDef",
    "TypeRef",
    "expected_type_at",
    "hole_context",
    "relevant_headers",
    "relevant_types",
    "warm_up",
]

MAX_TYPE_DEPTH = 2
MAX_TYPES = 12
MAX_HEADERS = 8
MAX_MEMBERS = 24  # member lines of one class stub
MAX_DEFAULT_CHARS = 40  # longer default values render as `...`
VISIBLE_LINES = 150  # a definition this close above the cursor in the same file is in the prompt
MAX_INFERENCES = 8  # jedi inferences of unannotated variables per call (headers)
MAX_IMPORT_LOOKUPS = 40  # imported names followed per call (headers)
MAX_FILE_BYTES = 1_000_000

_LOCK = threading.RLock()


# --------------------------------------------------------------------------- records


@dataclass
class TypeRef:
    """A name in a type expression, resolved to its definition."""

    name: str  # last component, as written in the definition
    qualname: str  # module-qualified name, e.g. "models.Todo", "builtins.int"
    kind: str  # "class" | "alias" | "newtype" | "typevar" | "other"
    path: str | None  # file of the definition; None for an unsaved buffer or a compiled module
    line: int  # 1-based line of the definition (0 when unknown)
    column: int  # 0-based column of the definition's name
    user: bool  # defined in the workspace or in the current document


@dataclass
class ExpectedType:
    type: str | None  # annotation text, whitespace-normalised; None when unknown
    source: str  # rule: param|keyword|default|annassign|assign|element|return|yield|condition|
    #              compare|case|unknown
    refs: list[TypeRef] = field(default_factory=list)  # the names of `type`, resolved
    callee: str | None = None  # call rules: qualified name of the called function
    param: str | None = None  # call and default rules: the parameter

    @property
    def known(self) -> bool:
        return self.type is not None


@dataclass
class TypeDef:
    name: str
    qualname: str
    kind: str  # class|dataclass|enum|typeddict|protocol|namedtuple|alias|newtype
    text: str  # compact Python stub
    path: str | None
    line: int  # 1-based, first line of the definition (decorators included)
    end_line: int
    depth: int  # 0: named by the expected type; 1, 2: reached through fields/bases
    visible: bool  # in the current document shortly above the cursor (the prompt shows it)


@dataclass
class Header:
    name: str
    kind: str  # function|param|variable
    signature: str  # `def name(params) -> R: ...` or `name: T`
    return_type: str | None  # return annotation (functions) or type (variables)
    path: str | None
    line: int
    score: float
    visible: bool


@dataclass
class HoleContext:
    expected: ExpectedType
    types: list[TypeDef]
    headers: list[Header]
    timings_ms: dict[str, float] = field(default_factory=dict)
    path: str | None = None


# --------------------------------------------------------------------------- projects and files

_PROJECTS: OrderedDict[str, jedi.Project] = OrderedDict()
_FILES: OrderedDict[str, tuple[int, int, str, Any]] = OrderedDict()  # path -> (mtime, size, code, tree)
_GRAMMAR = parso.load_grammar()


def _project(root: str | None) -> jedi.Project:
    """The jedi project of a workspace (cached per root)."""
    key = root or ""
    with _LOCK:
        project = _PROJECTS.get(key)
        if project is not None:
            _PROJECTS.move_to_end(key)
            return project
    project = _new_project(root)  # outside the lock: it may ask a subprocess for sys.path
    with _LOCK:
        project = _PROJECTS.setdefault(key, project)
        _PROJECTS.move_to_end(key)
        while len(_PROJECTS) > 8:
            _PROJECTS.popitem(last=False)
        return project


def _new_project(root: str | None) -> jedi.Project:
    """Its root (and `src/`) come before the environment's site-packages, so that a checkout of
    a package that is also installed (not in editable mode) resolves its own imports, relative
    ones included, to the checkout's files rather than to the installed copy; they come after
    the standard library, so that no workspace module shadows it. A root that is itself a
    package (a directory of site-packages, say) stays at the end: its modules are not
    top-level names."""
    added = []
    if root:
        added.append(root)
        src = os.path.join(root, "src")
        if os.path.isdir(src):
            added.append(src)
    project = jedi.Project(root or os.getcwd(), smart_sys_path=False,
                           load_unsafe_extensions=False, added_sys_path=added)
    if root and not os.path.isfile(os.path.join(root, "__init__.py")):
        try:
            env_path = list(project.get_environment().get_sys_path())
        except Exception:  # no usable environment: jedi falls back on its own
            env_path = []
        sys_path = _workspace_first(added, env_path)
        if sys_path is not None:
            project = jedi.Project(root, sys_path=sys_path, smart_sys_path=False,
                                   load_unsafe_extensions=False)
    return project


def _workspace_first(added: list[str], env_path: list[str]) -> list[str] | None:
    """`env_path` with the workspace directories `added` before its first site-packages (or
    dist-packages) entry; None when it has none."""
    ours = {os.path.normpath(a) for a in added}
    rest = [e for e in env_path if os.path.normpath(e) not in ours]
    for i, entry in enumerate(rest):
        if os.path.basename(os.path.normpath(entry)) in ("site-packages", "dist-packages"):
            return rest[:i] + list(added) + rest[i:]
    return None


def _read(path: str) -> tuple[str, Any] | None:
    """Code and parso tree of a file on disk, cached by (mtime, size)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_size > MAX_FILE_BYTES:
        return None
    with _LOCK:
        hit = _FILES.get(path)
        if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            _FILES.move_to_end(path)
            return hit[2], hit[3]
    try:
        code = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    tree = _GRAMMAR.parse(code, error_recovery=True)
    with _LOCK:
        _FILES[path] = (st.st_mtime_ns, st.st_size, code, tree)
        while len(_FILES) > 128:
            _FILES.popitem(last=False)
    return code, tree


def warm_up(workspace: str | None = None) -> float:
    """Create the workspace's jedi Project and load builtins once; returns the seconds it took."""
    start = time.perf_counter()
    hole_context("x: int = 0\nx = \n", 15, None, workspace)
    return time.perf_counter() - start


class _Mod:
    """One module of the analysis: code, parso tree and (lazily) a jedi Script."""

    def __init__(self, an: _Analysis, path: str | None, code: str, tree: Any,
                 script: jedi.Script | None = None) -> None:
        self.an = an
        self.path = path
        self.code = code
        self.tree = tree
        self._script = script

    @property
    def script(self) -> jedi.Script:
        if self._script is None:
            self._script = jedi.Script(self.code, path=self.path, project=self.an.project)
        return self._script

    def leaf_at(self, line: int, column: int):
        """The leaf at a position; at the boundary of two leaves, the one that starts there
        (parso returns the one that ends there)."""
        try:
            leaf = self.tree.get_leaf_for_position((line, column))
        except ValueError:
            return None
        if leaf is not None and leaf.end_pos == (line, column):
            nxt = leaf.get_next_leaf()
            if nxt is not None and nxt.start_pos == (line, column):
                return nxt
        return leaf


class _Analysis:
    def __init__(self, text: str, offset: int, path: str | None, workspace: str | None) -> None:
        self.text = text
        self.offset = max(0, min(offset, len(text)))
        self.path = os.path.abspath(path) if path else None
        root = workspace or (os.path.dirname(self.path) if self.path else None)
        self.root = os.path.abspath(root) if root else None
        self.project = _project(self.root)
        script = jedi.Script(text, path=self.path, project=self.project)
        tree = getattr(script, "_module_node", None)
        if tree is None:  # private in jedi; parse ourselves if it ever goes away
            tree = _GRAMMAR.parse(text, error_recovery=True)
        self.cur = _Mod(self, self.path, text, tree, script)
        self.mods: dict[str | None, _Mod] = {self.path: self.cur}
        before = text[:self.offset]
        self.line = before.count("\n") + 1
        self.column = self.offset - (before.rfind("\n") + 1)
        self.inferences = 0
        self._tainted: set[str] | None = None

    @property
    def tainted(self) -> set[str]:
        """Names of the document bound to third-party code (see `_tainted_names`)."""
        if self._tainted is None:
            self._tainted = _tainted_names(self)
        return self._tainted

    def module_kind(self, dotted: str, level: int = 0) -> str:
        """"workspace", "stdlib" or "third-party" for an imported module, found statically."""
        if level > 0:
            return "workspace"
        top = dotted.split(".")[0]
        if top in sys.stdlib_module_names:
            return "stdlib"
        for base in {self.root, os.path.dirname(self.path) if self.path else None} - {None}:
            for sub in ("", "src"):
                folder = os.path.join(base, sub, top)
                if os.path.isdir(folder) or os.path.isfile(folder + ".py"):
                    return "workspace"
        return "third-party"

    def mod(self, path: str | None) -> _Mod | None:
        if path is None or path == self.path:
            return self.cur
        if path in self.mods:
            return self.mods[path]
        got = _read(path)
        mod = _Mod(self, path, got[0], got[1]) if got else None
        self.mods[path] = mod
        return mod

    def is_user(self, path: str | None, module_name: str | None = None) -> bool:
        if path is None:
            return module_name == "__main__" and self.path is None
        if path == self.path:
            return True
        if "site-packages" in path or "dist-packages" in path or "typeshed" in path:
            return False
        return bool(self.root) and (path == self.root or path.startswith(self.root + os.sep))


# --------------------------------------------------------------------------- small helpers

_TYPING_WRAPPERS = {
    "Optional", "Union", "List", "Dict", "Set", "FrozenSet", "Tuple", "Type", "type", "list",
    "dict", "set", "frozenset", "tuple", "Sequence", "MutableSequence", "Iterable", "Iterator",
    "Collection", "Container", "Mapping", "MutableMapping", "AbstractSet", "MutableSet",
    "Generator", "AsyncIterator", "AsyncIterable", "AsyncGenerator", "Awaitable", "Coroutine",
    "Deque", "DefaultDict", "OrderedDict", "Counter", "ChainMap", "deque", "defaultdict",
    "ClassVar", "Final", "Annotated", "Required", "NotRequired", "ReadOnly", "Literal",
    "Callable", "Any", "None", "NoReturn", "Never", "Self", "TypeAlias", "typing", "t",
    "collections", "abc", "typing_extensions",
}
_ELEMENT_OF = {
    "list", "List", "set", "Set", "frozenset", "FrozenSet", "Sequence", "MutableSequence",
    "Iterable", "Iterator", "Collection", "AbstractSet", "MutableSet", "Deque", "deque",
    "Generator", "AsyncIterator", "AsyncIterable", "AsyncGenerator", "tuple", "Tuple",
}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping", "DefaultDict", "defaultdict",
             "OrderedDict"}
_BUILTIN_TYPES = {"int", "float", "complex", "str", "bytes", "bool", "list", "dict", "set",
                  "tuple", "frozenset", "bytearray", "object", "None", "type"}
_COMPOUND = {"if", "elif", "else", "while", "for", "with", "try", "except", "finally", "def",
             "class", "async", "match", "case"}
_COMPARE = {"==", "!=", "<", ">", "<=", ">=", "is"}
_ARITH = {"+", "-", "*", "/", "//", "%", "**", "|", "&", "^", "<<", ">>", "@"}
_AUG = {"+=", "-=", "*=", "/=", "//=", "%=", "**=", "|=", "&=", "^=", "<<=", ">>=", "@="}


def _compact(code: str) -> str:
    """One line of code without comments, whitespace collapsed."""
    try:
        out = []
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.COMMENT:
                continue
            out.append(tok)
        pieces = []
        prev_end = None
        for tok in out:
            if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
                continue
            if prev_end is not None and (tok.start != prev_end):
                pieces.append(" ")
            pieces.append(tok.string)
            prev_end = tok.end
        text = "".join(pieces)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        text = re.sub(r"#[^\n]*", "", code)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([(\[{]) ", r"\1", text)
    text = re.sub(r" ([)\]}])", r"\1", text)
    text = re.sub(r",([)\]}])", r"\1", text)
    return text


def _code(node) -> str:
    return _compact(node.get_code(include_prefix=False))


def _parse_expr(text: str) -> ast.Expression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text.strip(), mode="eval")


def _type_atoms(type_text: str | None, goal: bool = False) -> list[str]:
    """Names of the types an annotation is about: containers, Optional/Union and typing wrappers
    stripped; for a `Callable[[A], R]` goal only `R` counts. Dotted names keep their last part."""
    if not type_text:
        return []
    try:
        tree = _parse_expr(type_text).body
    except SyntaxError:
        return [w for w in re.findall(r"[A-Za-z_]\w*", type_text) if w not in _TYPING_WRAPPERS]
    out: list[str] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            out.append(node.id)
        elif isinstance(node, ast.Attribute):
            out.append(node.attr)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str):  # forward reference
                out.extend(_type_atoms(node.value, goal))
        elif isinstance(node, ast.Subscript):
            head = node.value.attr if isinstance(node.value, ast.Attribute) else (
                node.value.id if isinstance(node.value, ast.Name) else "")
            if head == "Literal":
                return
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head == "Callable" and goal and len(parts) == 2:
                walk(parts[1])
                return
            if head == "Annotated" and parts:
                walk(parts[0])
                return
            if head not in _TYPING_WRAPPERS:
                walk(node.value)
            for part in parts:
                walk(part)
        elif isinstance(node, ast.BinOp):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                walk(elt)

    walk(tree)
    seen: list[str] = []
    for name in out:
        if name not in _TYPING_WRAPPERS and name not in seen:
            seen.append(name)
    if not seen and re.fullmatch(r"\s*None\s*", type_text):
        return ["None"]
    return seen


_TRANSPARENT = {"Optional", "Union", "Annotated", "Final", "ClassVar", "Required", "NotRequired",
                "ReadOnly"}


def _top_atoms(type_text: str | None, goal: bool = False) -> set[str]:
    """Outermost type names of an annotation: `Optional`/`Union`/`|` are looked through, a
    generic gives its container (`list[Todo]` -> {"list"}); for a `Callable[..., R]` goal, R's."""
    if not type_text:
        return set()
    try:
        tree = _parse_expr(type_text).body
    except SyntaxError:
        return set()
    out: set[str] = set()

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Constant):
            if node.value is None:
                out.add("None")
            elif isinstance(node.value, str):
                out.update(_top_atoms(node.value, goal))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, ast.Subscript):
            head = node.value.attr if isinstance(node.value, ast.Attribute) else (
                node.value.id if isinstance(node.value, ast.Name) else "")
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head in _TRANSPARENT:
                for part in parts[:1] if head == "Annotated" else parts:
                    walk(part)
            elif head == "Callable" and goal and len(parts) == 2:
                walk(parts[1])
            else:
                walk(node.value)

    walk(tree)
    return out


def _container_parts(type_text: str) -> tuple[str, list[str]] | None:
    """("list", ["Todo"]) for "list[Todo]"; Optional[...] is looked through."""
    try:
        node = _parse_expr(type_text).body
    except SyntaxError:
        return None
    while True:
        if isinstance(node, ast.Subscript):
            head = node.value.attr if isinstance(node.value, ast.Attribute) else (
                node.value.id if isinstance(node.value, ast.Name) else "")
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head == "Optional" and parts:
                node = parts[0]
                continue
            return head, [ast.unparse(p) for p in parts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            left, right = node.left, node.right
            if isinstance(right, ast.Constant) and right.value is None:
                node = left
                continue
            if isinstance(left, ast.Constant) and left.value is None:
                node = right
                continue
        return None


def _element_type(type_text: str | None, which: str) -> str | None:
    """Element type of a container annotation; `which` is "elem", "key" or "value"."""
    if not type_text:
        return None
    got = _container_parts(type_text)
    if not got:
        return None
    head, parts = got
    if head in _MAPPINGS and len(parts) == 2:
        return parts[0] if which == "key" else parts[1] if which == "value" else None
    if head in _ELEMENT_OF and parts and which == "elem":
        if head in ("tuple", "Tuple") and not (len(parts) == 2 and parts[1] == "..."):
            return None
        return parts[0]
    return None


def _leaves_in(node, keep) -> list:
    """The leaves of a parso node, in order, for which `keep(leaf)` is true."""
    out = []
    leaf = node.get_first_leaf()
    last = node.get_last_leaf()
    while leaf is not None:
        if keep(leaf):
            out.append(leaf)
        if leaf is last:
            break
        leaf = leaf.get_next_leaf()
    return out


def _is_attribute_name(leaf) -> bool:
    prev = leaf.get_previous_leaf()
    return prev is not None and prev.type == "operator" and prev.value == "."


def _names_in(node) -> list:
    """Name leaves of a parso node that are not attribute names (`a.b` gives `a`)."""
    return _leaves_in(node, lambda leaf: leaf.type == "name" and not _is_attribute_name(leaf))


def _strings_in(node) -> list:
    return _leaves_in(node, lambda leaf: leaf.type == "string")


def _ancestor(node, *types: str):
    node = node.parent
    while node is not None:
        if node.type in types:
            return node
        node = node.parent
    return None


# --------------------------------------------------------------------------- resolving names


def _tainted_names(an: _Analysis) -> set[str]:
    """Names bound to third-party code: imported from a third-party module, assigned from an
    expression using such a name (also `self.x` attributes, as "self.x"), or parameters
    annotated with one. jedi's inference into
    large libraries can take minutes (transformers: >2 min for one attribute), so expressions
    rooted in these names are never inferred."""
    tainted: set[str] = set()
    assignments: list[tuple[list[str], set[str]]] = []
    params: list[tuple[str, set[str]]] = []
    for node in _walk_all(an.cur.tree):
        if node.type in ("import_from", "import_name"):
            try:
                level = node.level if node.type == "import_from" else 0
                for path, name in zip(node.get_paths(), node.get_defined_names(),
                                      strict=False):
                    dotted = ".".join(n.value for n in path)
                    if an.module_kind(dotted, level) == "third-party":
                        tainted.add(name.value)
            except (AttributeError, ValueError):
                continue
        elif node.type == "expr_stmt":
            value = _assignment_value(node)
            if value is not None:
                targets = [n.value for n in node.get_defined_names()]
                first = node.children[0]
                if first.type in ("atom_expr", "power") and len(first.children) == 2 and \
                        first.children[0].type == "name" and first.children[0].value == "self":
                    targets.append("self" + first.children[1].get_code(include_prefix=False))
                assignments.append((targets, {n.value for n in _names_in(value)}))
        elif node.type == "param" and node.annotation is not None:
            params.append((node.name.value, {n.value for n in _names_in(node.annotation)}))
    if not tainted:
        return tainted
    for name, used in params:
        if used & tainted:
            tainted.add(name)
    for _ in range(3):  # a few rounds of propagation through assignments
        before = len(tainted)
        for targets, used in assignments:
            if used & tainted:
                tainted.update(targets)
        if len(tainted) == before:
            break
    return tainted


def _walk_all(node):
    """Every node below `node`, nested scopes included (`_walk` stops at them)."""
    return _walk(node, into_scopes=True)


def _safe_at(an: _Analysis, mod: _Mod, line: int, column: int) -> bool:
    """Whether jedi may infer the expression at (line, column): its root name (`a` of `a.b(c).d`)
    is not bound to third-party code."""
    if mod is not an.cur:
        return True
    leaf = mod.leaf_at(line, column)
    if leaf is None:
        return True
    node = leaf.parent
    while node is not None and node.type == "trailer":
        node = node.parent
    if node is not None and node.type in ("atom_expr", "power"):
        index = 0
        first = node.children[0]
        if first.type == "keyword" and first.value == "await" and len(node.children) > 1:
            index, first = 1, node.children[1]
        root = first.value if first.type == "name" else None
        if root == "self" and len(node.children) > index + 1:  # `self.k` set from a library
            attr = "self" + node.children[index + 1].get_code(include_prefix=False)
            if attr in an.tainted:
                return False
    else:
        root = leaf.value if leaf.type == "name" else None
    return root is None or root not in an.tainted


def _ref_from_name(an: _Analysis, d) -> TypeRef | None:
    """TypeRef for a jedi Name (a goto/infer result)."""
    kind = d.type
    full = d.full_name or d.name
    path = str(d.module_path) if d.module_path else None
    if kind == "instance":  # an inferred value: refer to its class
        name = full.rsplit(".", 1)[-1]
        line, column = _find_class(an, path, full, d.module_name) or (0, 0)
        return TypeRef(name=name, qualname=full, kind="class", path=path, line=line,
                       column=column, user=an.is_user(path, d.module_name) and line > 0)
    if kind == "class":
        return TypeRef(name=d.name, qualname=full, kind="class", path=path, line=d.line or 0,
                       column=d.column or 0, user=an.is_user(path, d.module_name))
    if kind == "statement":
        mod = an.mod(path) if an.is_user(path, d.module_name) else None
        sub = _statement_kind(mod, d.line, d.column) if mod else "other"
        return TypeRef(name=d.name, qualname=full, kind=sub, path=path, line=d.line or 0,
                       column=d.column or 0, user=mod is not None)
    return None


def _find_class(an: _Analysis, path: str | None, full: str, module_name: str | None):
    """(line, column) of a class given its qualified name, found in its module's tree."""
    if not an.is_user(path, module_name):
        return None
    mod = an.mod(path)
    if mod is None:
        return None
    qual = full[len(module_name) + 1:] if module_name and full.startswith(module_name + ".") \
        else full.rsplit(".", 1)[-1]
    scope = mod.tree
    found = None
    for part in qual.split("."):
        found = None
        for cls in scope.iter_classdefs():
            if cls.name.value == part:
                found = cls
                break
        if found is None:
            return None
        scope = found
    return found.name.start_pos if found is not None else None


def _statement_kind(mod: _Mod, line: int, column: int) -> str:
    """alias | newtype | typevar | other, for a module-level assignment."""
    node = _assignment_of(mod, line, column)
    if node is None:
        return "other"
    value = _assignment_value(node)
    if value is None:
        return "other"
    text = _code(value)
    if re.match(r"(?:\w+\.)*TypeVar\(", text):
        return "typevar"
    if re.match(r"(?:\w+\.)*NewType\(", text):
        return "newtype"
    ann = _annassign(node)
    if ann is not None and "TypeAlias" in _code(ann[0]):
        return "alias"
    if _looks_like_type(text) and node.parent is not None and \
            _ancestor(node, "funcdef", "classdef") is None:
        return "alias"
    return "other"


def _looks_like_type(text: str) -> bool:
    try:
        node = _parse_expr(text).body
    except SyntaxError:
        return False
    ok = (ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.Tuple, ast.List, ast.Load,
          ast.BitOr, ast.Constant, ast.expr_context)
    for sub in ast.walk(node):
        if not isinstance(sub, ok):
            return False
        if isinstance(sub, ast.BinOp) and not isinstance(sub.op, ast.BitOr):
            return False
        if isinstance(sub, ast.Constant) and not (sub.value is None or isinstance(sub.value, str)
                                                  or sub.value is Ellipsis):
            return False
    has_sub_or_union = any(isinstance(s, (ast.Subscript, ast.BinOp)) for s in ast.walk(node))
    # a bare `X = Y` is an alias only when Y looks like a class name
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return name[:1].isupper()
    return has_sub_or_union


def _assignment_of(mod: _Mod, line: int, column: int):
    leaf = mod.leaf_at(line, column)
    if leaf is None:
        return None
    node = leaf.parent
    while node is not None and node.type not in ("expr_stmt", "simple_stmt", "file_input",
                                                  "suite", "funcdef", "classdef"):
        node = node.parent
    return node if node is not None and node.type == "expr_stmt" else None


def _annassign(expr_stmt):
    """(annotation node, value node or None) of `x: T [= v]`."""
    if len(expr_stmt.children) >= 2 and expr_stmt.children[1].type == "annassign":
        parts = expr_stmt.children[1].children
        return parts[1], (parts[3] if len(parts) >= 4 else None)
    return None


def _assignment_value(expr_stmt):
    ann = _annassign(expr_stmt)
    if ann is not None:
        return ann[1]
    children = expr_stmt.children
    if len(children) >= 3 and children[-2].type == "operator" and children[-2].value == "=":
        return children[-1]
    return None


def _resolve_node_names(an: _Analysis, mod: _Mod, node) -> list[TypeRef]:
    """Resolve the names of an annotation node of `mod` (string forward references too)."""
    refs: list[TypeRef] = []
    for leaf in _names_in(node):
        refs.extend(_goto_refs(an, mod, leaf.start_pos[0], leaf.start_pos[1]))
    for leaf in _strings_in(node):
        inner = leaf.value.strip("'\"")
        for name in _type_atoms(inner):
            refs.extend(_resolve_in_scope(an, mod, name))
    return _dedupe(refs)


def _goto_refs(an: _Analysis, mod: _Mod, line: int, column: int) -> list[TypeRef]:
    try:
        defs = mod.script.goto(line, column, follow_imports=True)
    except Exception:  # jedi raises assorted errors on odd code; a hole is never worth a crash
        return []
    refs = []
    for d in defs:
        ref = _ref_from_name(an, d)
        if ref is not None:
            refs.append(ref)
    return refs[:1]


def _resolve_in_scope(an: _Analysis, mod: _Mod, name: str) -> list[TypeRef]:
    """Resolve a module-scope name of `mod` (for string annotations) with a probe line."""
    if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return []
    code = mod.code + ("" if mod.code.endswith("\n") else "\n") + name + "\n"
    line = code.count("\n")
    try:
        script = jedi.Script(code, path=mod.path, project=an.project)
        defs = script.goto(line, len(name) - len(name.rsplit(".", 1)[-1]), follow_imports=True)
    except Exception:
        return []
    refs = [r for r in (_ref_from_name(an, d) for d in defs) if r is not None]
    return refs[:1]


def _dedupe(refs: list[TypeRef]) -> list[TypeRef]:
    seen: set[str] = set()
    out = []
    for ref in refs:
        if ref.qualname not in seen:
            seen.add(ref.qualname)
            out.append(ref)
    return out


def _refs_from_values(an: _Analysis, values) -> tuple[str | None, list[TypeRef]]:
    """Type text and refs from jedi inference results (instances and classes)."""
    refs = []
    for d in values:
        if d.type not in ("instance", "class"):
            continue
        ref = _ref_from_name(an, d)
        if ref is not None:
            refs.append(ref)
    refs = _dedupe(refs)
    if not refs:
        return None, []
    names = []
    for ref in refs:
        name = "None" if ref.qualname in ("builtins.NoneType", "types.NoneType") else ref.name
        if name not in names:
            names.append(name)
    return " | ".join(names), refs


# --------------------------------------------------------------------------- cursor analysis


@dataclass
class _Tok:
    type: int
    string: str
    start: tuple[int, int]
    end: tuple[int, int]


def _tokens_before(an: _Analysis) -> list[_Tok] | None:
    """Tokens of the statement the cursor is in, from its start to the cursor (None when the
    cursor is inside a string or a comment)."""
    pos = (an.line, an.column)
    leaf = an.cur.leaf_at(*pos)
    tree = an.cur.tree
    if leaf is None:
        leaf = tree.get_last_leaf()
    if leaf is not None and leaf.start_pos >= pos:
        leaf = leaf.get_previous_leaf()
    start_line = an.line
    if leaf is not None and leaf.type not in ("newline", "endmarker"):
        node = leaf
        while node.parent is not None and node.parent.type not in ("suite", "file_input"):
            node = node.parent
        start_line = min(node.start_pos[0], an.line)
        if an.line - start_line > 400:
            start_line = an.line - 400
    lines_start = _line_offset(an.text, start_line)
    src = an.text[lines_start:an.offset]
    toks: list[_Tok] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.ERRORTOKEN and tok.string.strip() and tok.string[0] in "'\"":
                return None  # unterminated string: the cursor is inside it
            if tok.type in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER,
                            tokenize.ENCODING):
                continue
            if tok.type == tokenize.COMMENT:
                if tok.end[0] == src.count("\n") + 1 and tok.end[1] >= len(src.rsplit("\n", 1)[-1]):
                    return None  # the cursor is in a comment
                continue
            toks.append(_Tok(tok.type, tok.string, (tok.start[0] + start_line - 1, tok.start[1]),
                             (tok.end[0] + start_line - 1, tok.end[1])))
    except tokenize.TokenError as exc:
        if "string" in str(exc).lower():
            return None
    except (IndentationError, SyntaxError):
        pass
    if toks and toks[-1].type == tokenize.NEWLINE and toks[-1].end > pos:
        toks.pop()  # the tokenizer's implicit NEWLINE at the end of the source
    return toks


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        nxt = text.find("\n", offset)
        if nxt < 0:
            return len(text)
        offset = nxt + 1
    return offset


def _split_statement(toks: list[_Tok]) -> list[_Tok]:
    """The tokens of the innermost simple statement (after `;`, NEWLINE or a compound header's
    colon at bracket depth 0)."""
    start = 0
    depth = 0
    lambdas = 0
    for i, tok in enumerate(toks):
        s = tok.string
        if tok.type == tokenize.OP and s in "([{":
            depth += 1
        elif tok.type == tokenize.OP and s in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            if tok.type == tokenize.NEWLINE or s == ";":
                start, lambdas = i + 1, 0
            elif s == "lambda":
                lambdas += 1
            elif s == ":" and tok.type == tokenize.OP:
                if lambdas:
                    lambdas -= 1
                elif start < len(toks) and toks[start].string in _COMPOUND:
                    start, lambdas = i + 1, 0
    return toks[start:]


def _open_brackets(toks: list[_Tok]) -> list[int]:
    stack: list[int] = []
    for i, tok in enumerate(toks):
        if tok.type != tokenize.OP:
            continue
        if tok.string in "([{":
            stack.append(i)
        elif tok.string in ")]}" and stack:
            stack.pop()
    return stack


def _simple_tail(item: list[_Tok], pos: tuple[int, int]) -> int:
    """Index in `item` where the expression being typed begins: a (dotted) name prefix, possibly
    after `await`; everything from there to the cursor belongs to the hole."""
    i = len(item)
    if i and item[-1].type == tokenize.NAME and item[-1].end == pos and \
            item[-1].string not in _KEYWORDS:
        i -= 1
        while i >= 2 and item[i - 1].string == "." and item[i - 2].type == tokenize.NAME:
            i -= 2
    elif i >= 2 and item[-1].string == "." and item[-2].type == tokenize.NAME:
        i -= 1
        while i >= 2 and item[i - 1].type == tokenize.NAME and item[i - 2].string == ".":
            i -= 2
        i -= 1
    if i and item[i - 1].string == "await":
        i -= 1
    return i


_KEYWORDS = {"return", "yield", "if", "elif", "else", "while", "for", "in", "not", "and", "or",
             "is", "lambda", "await", "assert", "case", "match", "del", "pass", "import", "from",
             "as", "with", "def", "class", "raise", "try", "except", "finally", "global",
             "nonlocal", "async", "None", "True", "False", "break", "continue"}


def _items(toks: list[_Tok], start: int) -> list[_Tok]:
    """Tokens of the last comma-separated item from `start` (bracket depth relative to start)."""
    depth = 0
    begin = start
    for i in range(start, len(toks)):
        s = toks[i].string
        if toks[i].type == tokenize.OP and s in "([{":
            depth += 1
        elif toks[i].type == tokenize.OP and s in ")]}":
            depth -= 1
        elif depth == 0 and s == ",":
            begin = i + 1
    return toks[begin:]


@dataclass
class _Site:
    rule: str
    data: Any = None


def _classify(toks: list[_Tok], pos: tuple[int, int]) -> _Site:
    """The syntactic rule that applies at the end of `toks` (the cursor)."""
    toks = _split_statement(toks)
    stack = _open_brackets(toks)
    level_start = stack[-1] + 1 if stack else 0
    item = _items(toks, level_start) if stack else toks
    head = item[:_simple_tail(item, pos)]
    last = head[-1].string if head else None

    if head and last in ("and", "or"):
        # the hole is a further operand of a boolean chain: bool in conditions, else the type of
        # the whole chain
        chain_start = len(head) - 1
        depth = 0
        while chain_start > 0:
            s = head[chain_start - 1].string
            if s in ")]}":
                depth += 1
            elif s in "([{":
                depth -= 1
            if depth == 0 and (s in ("=", "return", "if", "elif", "while", "assert", "(", "[",
                                     ",", ":", "not", "lambda", "else") or s in _AUG):
                break
            chain_start -= 1
        prefix = toks[: len(toks) - len(item)] + head[:chain_start]
        outer = _classify(prefix, pos) if prefix else _Site("unknown")
        return outer if outer.rule != "unknown" else _Site("unknown")
    if last == "not":
        return _Site("condition")
    if last in _COMPARE or (last == "not" and len(head) >= 2 and head[-2].string == "is") or (
            last == "is" and head):
        left = head[:-1]
        if left and left[-1].string in ("is", "not"):
            left = left[:-1]
        if left and (left[-1].type == tokenize.NAME or left[-1].string in ")]") and \
                left[-1].string not in _KEYWORDS:
            return _Site("compare", left[-1])
        return _Site("unknown")
    if last == "if" and len(head) > 1:
        return _Site("condition")  # the test of a conditional expression
    if last == "else" and len(head) > 1:
        # the else-branch of a conditional expression: the expected type of the whole expression
        depth = 0
        for i in range(len(head) - 2, -1, -1):
            s = head[i].string
            if s in ")]}":
                depth += 1
            elif s in "([{":
                depth -= 1
            if depth == 0 and s == "if":
                j = i
                while j > 0 and head[j - 1].string not in ("=", "return", "(", "[", ",", ":",
                                                            "yield", "lambda"):
                    j -= 1
                prefix = toks[: len(toks) - len(item)] + head[:j]
                return _classify(prefix, pos) if prefix else _Site("unknown")
        return _Site("unknown")

    if stack:
        bracket = toks[stack[-1]]
        before = toks[: stack[-1]]
        callee = before[-1] if before else None
        is_call = callee is not None and (
            (callee.type == tokenize.NAME and callee.string not in _KEYWORDS)
            or callee.string in (")", "]") or callee.type == tokenize.STRING)
        if bracket.string == "(":
            if len(before) >= 2 and before[-2].string == "def":
                if len(head) >= 3 and head[-1].string == "=" and head[1].string == ":":
                    return _Site("default", (head[0].string, head[2:-1]))
                return _Site("unknown")
            if len(before) >= 2 and before[-2].string == "class":
                return _Site("unknown")
            if is_call:
                if not head:
                    return _Site("call", None)
                if len(head) == 2 and head[1].string == "=" and head[0].type == tokenize.NAME:
                    return _Site("call", head[0].string)
                return _Site("unknown")
            if not head:  # a parenthesised expression: the expected type of the parentheses
                return _classify(before, pos) if before else _Site("unknown")
            return _Site("unknown")
        if bracket.string == "[":
            if is_call:  # subscript
                return _Site("unknown")
            if not head:
                return _Site("element", (before, "elem"))
            return _Site("unknown")
        if bracket.string == "{":
            if not head:
                return _Site("element", (before, "key"))
            if len(head) >= 2 and head[-1].string == ":" and _balanced(head[:-1]):
                return _Site("element", (before, "value"))
            return _Site("unknown")
        return _Site("unknown")

    # statement level
    if not head:
        return _Site("unknown")
    first = head[0].string
    if len(head) == 1:
        if first == "return":
            return _Site("return")
        if first == "yield":
            return _Site("yield")
        if first in ("if", "elif", "while", "assert"):
            return _Site("condition")
        if first == "case":
            return _Site("case", head[0])
    if last == "=" or last in _AUG:
        targets = head[:-1]
        # chained assignment: the last target
        depth = 0
        for i in range(len(targets) - 1, -1, -1):
            s = targets[i].string
            if s in ")]}":
                depth += 1
            elif s in "([{":
                depth -= 1
            elif depth == 0 and s == "=":
                targets = targets[i + 1:]
                break
        colon = next((i for i, t in enumerate(targets) if t.string == ":" and
                      _balanced(targets[:i])), None)
        if colon is not None:
            return _Site("annassign", targets[colon + 1:])
        if targets and (targets[-1].type == tokenize.NAME) and "," not in \
                [t.string for t in targets]:
            return _Site("assign", targets[-1])
    return _Site("unknown")


def _balanced(toks: list[_Tok]) -> bool:
    depth = 0
    for tok in toks:
        if tok.string in "([{":
            depth += 1
        elif tok.string in ")]}":
            depth -= 1
    return depth == 0


# --------------------------------------------------------------------------- expected type


def _expected(an: _Analysis) -> ExpectedType:
    toks = _tokens_before(an)
    if toks is None:
        return ExpectedType(None, "unknown")
    site = _classify(toks, (an.line, an.column))
    return _resolve_site(an, site, toks)


def _resolve_site(an: _Analysis, site: _Site, toks: list[_Tok]) -> ExpectedType:
    rule = site.rule
    if rule == "condition":
        return ExpectedType("bool", "condition", _builtin_refs(an, ["bool"]))
    if rule == "call":
        return _call_rule(an, site.data, toks)
    if rule == "default":
        name, ann_toks = site.data
        exp = _from_tokens(an, ann_toks, "default")
        exp.param = name
        return exp
    if rule == "annassign":
        return _from_tokens(an, site.data, "annassign")
    if rule == "assign":
        return _declared_at(an, site.data, "assign")
    if rule == "compare":
        return _declared_at(an, site.data, "compare")
    if rule == "return" or rule == "yield":
        return _return_rule(an, rule)
    if rule == "case":
        return _case_rule(an, site.data)
    if rule == "element":
        before, which = site.data
        if not before:
            return ExpectedType(None, "unknown")
        outer_site = _classify(before, before[-1].end)
        if outer_site.rule in ("unknown", "element", "condition", "compare", "case"):
            return ExpectedType(None, "unknown")
        outer = _resolve_site(an, outer_site, before)
        elem = _element_type(outer.type, which)
        if elem is None:
            return ExpectedType(None, "unknown")
        atoms = set(_type_atoms(elem))
        refs = [r for r in outer.refs if r.name in atoms]
        return ExpectedType(_compact(elem), "element", refs, outer.callee, outer.param)
    return ExpectedType(None, "unknown")


def _builtin_refs(an: _Analysis, names: list[str]) -> list[TypeRef]:
    return [TypeRef(name=n, qualname=f"builtins.{n}", kind="class", path=None, line=0, column=0,
                    user=False) for n in names]


def _from_tokens(an: _Analysis, ann_toks: list[_Tok], source: str) -> ExpectedType:
    """Expected type from annotation tokens of the current document."""
    if not ann_toks:
        return ExpectedType(None, "unknown")
    first, last = ann_toks[0], ann_toks[-1]
    start = _line_offset(an.text, first.start[0]) + first.start[1]
    end = _line_offset(an.text, last.end[0]) + last.end[1]
    text = _compact(an.text[start:end])
    refs: list[TypeRef] = []
    for i, tok in enumerate(ann_toks):
        if tok.type == tokenize.NAME and not (i and ann_toks[i - 1].string == "."):
            refs.extend(_goto_refs(an, an.cur, tok.start[0], tok.start[1]))
        elif tok.type == tokenize.STRING:
            for name in _type_atoms(tok.string.strip("'\"")):
                refs.extend(_resolve_in_scope(an, an.cur, name))
    return ExpectedType(text, source, _dedupe(refs))


def _from_node(an: _Analysis, mod: _Mod, node, source: str) -> ExpectedType:
    return ExpectedType(_code(node), source, _resolve_node_names(an, mod, node))


def _annotation_of_definition(an: _Analysis, d) -> tuple[_Mod, Any] | None:
    """The annotation node of a parameter or annotated assignment that jedi Name `d` names."""
    path = str(d.module_path) if d.module_path else None
    if not an.is_user(path, d.module_name) or not d.line:
        return None
    mod = an.mod(path)
    if mod is None:
        return None
    leaf = mod.leaf_at(d.line, d.column)
    if leaf is None or leaf.type != "name":
        return None
    node = leaf.parent
    if node is not None and node.type == "tfpdef":
        node = node.parent
    if node is not None and node.type == "param":
        ann = node.annotation
        return (mod, ann) if ann is not None else None
    if node is not None and node.type == "expr_stmt" and node.children[0] is leaf:
        ann = _annassign(node)
        return (mod, ann[0]) if ann is not None else None
    if node is not None and node.type == "trailer":  # self.x: T = ... in a method
        stmt = _ancestor(leaf, "expr_stmt")
        if stmt is not None:
            ann = _annassign(stmt)
            return (mod, ann[0]) if ann is not None else None
    return None


def _declared_at(an: _Analysis, tok: _Tok, source: str) -> ExpectedType:
    """Declared type of the name/expression ending at `tok`: its annotation when jedi finds the
    definition, else the inferred class(es)."""
    line, column = tok.start
    script = an.cur.script
    if not _safe_at(an, an.cur, line, column):
        return ExpectedType(None, "unknown")
    if tok.type == tokenize.NAME:
        try:
            defs = script.goto(line, column)
        except Exception:
            defs = []
        for d in defs:
            found = _annotation_of_definition(an, d)
            if found is not None:
                return _from_node(an, found[0], found[1], source)
    try:
        values = script.infer(line, column)
    except Exception:
        values = []
    text, refs = _refs_from_values(an, values)
    if text is None:
        return ExpectedType(None, "unknown")
    return ExpectedType(text, source, refs)


def _enclosing_function(an: _Analysis):
    """parso funcdef/lambdef enclosing the cursor (by tree, then by indentation)."""
    leaf = an.cur.leaf_at(an.line, an.column)
    if leaf is not None and leaf.start_pos >= (an.line, an.column):
        leaf = leaf.get_previous_leaf() or leaf
    if leaf is not None:
        node = _ancestor(leaf, "funcdef", "lambdef", "classdef")
        if node is not None and node.start_pos[0] < an.line:
            return node
    # indentation: the nearest `def` above with a smaller indentation
    lines = an.text[:an.offset].split("\n")
    cur_indent = len(lines[-1]) - len(lines[-1].lstrip())
    for i in range(len(lines) - 2, max(-1, len(lines) - 2000), -1):
        text = lines[i]
        stripped = text.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(text) - len(stripped)
        if indent < cur_indent:
            if re.match(r"(async\s+)?def\s", stripped):
                found = an.cur.leaf_at(i + 1, indent + stripped.index("def"))
                return _ancestor(found, "funcdef") if found is not None else None
            if stripped.startswith("class "):
                return None
            cur_indent = indent
    return None


def _return_rule(an: _Analysis, rule: str) -> ExpectedType:
    func = _enclosing_function(an)
    if func is None or func.type != "funcdef" or func.annotation is None:
        return ExpectedType(None, "unknown")
    exp = _from_node(an, an.cur, func.annotation, rule)
    if rule == "yield":
        elem = _element_type(exp.type, "elem")
        if elem is None:
            return ExpectedType(None, "unknown")
        atoms = set(_type_atoms(elem))
        exp = ExpectedType(_compact(elem), "yield", [r for r in exp.refs if r.name in atoms])
    return exp


def _case_rule(an: _Analysis, case_tok: _Tok) -> ExpectedType:
    lines = an.text.split("\n")
    case_indent = case_tok.start[1]
    for i in range(case_tok.start[0] - 2, max(-1, case_tok.start[0] - 500), -1):
        text = lines[i]
        stripped = text.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(text) - len(stripped)
        if indent < case_indent:
            m = re.match(r"match\s+(.+?)\s*:\s*(#.*)?$", stripped)
            if not m:
                return ExpectedType(None, "unknown")
            subject = m.group(1)
            if not re.fullmatch(r"[A-Za-z_][\w.]*", subject):
                return ExpectedType(None, "unknown")
            col = indent + stripped.index(subject) + len(subject) - len(subject.split(".")[-1])
            tok = _Tok(tokenize.NAME, subject.split(".")[-1], (i + 1, col),
                       (i + 1, col + len(subject.split(".")[-1])))
            return _declared_at(an, tok, "case")
    return ExpectedType(None, "unknown")


_APPEND_LIKE = {"builtins.list.append": 0, "builtins.list.insert": 1, "builtins.set.add": 0,
                "collections.deque.append": 0, "collections.deque.appendleft": 0}


def _call_rule(an: _Analysis, keyword: str | None, toks: list[_Tok]) -> ExpectedType:
    before, _ = _call_args(toks)
    if before and not _safe_at(an, an.cur, *before[-1].start):
        return ExpectedType(None, "unknown")
    try:
        sigs = an.cur.script.get_signatures(an.line, an.column)
    except Exception:
        sigs = []
    if not sigs:
        return ExpectedType(None, "unknown")
    sig = sigs[0]
    callee = sig.full_name or sig.name
    params = sig.params
    index = sig.index
    if keyword is not None:
        index = next((i for i, p in enumerate(params) if p.name == keyword), index)
    if callee == "dataclasses.replace" and keyword:
        exp = _replace_rule(an, keyword, toks)
        exp.callee, exp.param = callee, keyword
        return exp
    if index is None or index >= len(params):
        return ExpectedType(None, "unknown", callee=callee)
    param = params[index]
    if callee in _APPEND_LIKE and _APPEND_LIKE[callee] == index:
        exp = _receiver_element(an, toks)
        exp.callee, exp.param = callee, param.name
        return exp
    source = "keyword" if keyword else "param"
    found = _annotation_of_definition(an, param)
    if found is not None:
        exp = _from_node(an, found[0], found[1], source)
    else:
        ann = _param_annotation(param.to_string())
        if ann is None or re.fullmatch(r"_?[A-Z]\w{0,3}|_\w+T\w*|Any|object", ann):
            return ExpectedType(None, "unknown", callee=callee, param=param.name)
        exp = ExpectedType(ann, source, _builtin_refs(an, [a for a in _type_atoms(ann)
                                                            if a in _BUILTIN_TYPES]))
    exp.callee, exp.param = callee, param.name
    return exp


def _param_annotation(text: str) -> str | None:
    """`T` of "name: T = default" (jedi's Param.to_string())."""
    text = text.lstrip("*")
    m = re.match(r"\s*\w+\s*:\s*", text)
    if not m:
        return None
    rest = text[m.end():]
    depth = 0
    for i, ch in enumerate(rest):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "=" and depth == 0:
            return rest[:i].strip() or None
    return rest.strip() or None


def _call_args(toks: list[_Tok]) -> tuple[list[_Tok], list[list[_Tok]]]:
    """(tokens before the innermost open call bracket, its argument token lists)."""
    stack = _open_brackets(toks)
    if not stack:
        return toks, []
    open_i = stack[-1]
    args: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks[open_i + 1:]:
        if tok.string in "([{":
            depth += 1
        elif tok.string in ")]}":
            depth -= 1
        if depth == 0 and tok.string == ",":
            args.append([])
        else:
            args[-1].append(tok)
    return toks[:open_i], args


def _replace_rule(an: _Analysis, keyword: str, toks: list[_Tok]) -> ExpectedType:
    """`dataclasses.replace(obj, field=▮)`: the type of `obj`'s field."""
    _, args = _call_args(toks)
    if not args or not args[0]:
        return ExpectedType(None, "unknown")
    last = args[0][-1]
    if not _safe_at(an, an.cur, *last.start):
        return ExpectedType(None, "unknown")
    try:
        values = an.cur.script.infer(*last.start)
    except Exception:
        values = []
    for d in values:
        ref = _ref_from_name(an, d)
        if ref is None or not ref.user or ref.kind != "class":
            continue
        found = _field_annotation(an, ref, keyword)
        if found is not None:
            return _from_node(an, found[0], found[1], "keyword")
    return ExpectedType(None, "unknown")


def _receiver_element(an: _Analysis, toks: list[_Tok]) -> ExpectedType:
    """`xs.append(▮)`: the element type of `xs`'s declared type."""
    before, _ = _call_args(toks)
    # before = [..., receiver, '.', 'append']
    if len(before) < 3 or before[-2].string != "." or before[-3].type != tokenize.NAME:
        return ExpectedType(None, "unknown")
    decl = _declared_at(an, before[-3], "param")
    elem = _element_type(decl.type, "elem")
    if elem is None:
        return ExpectedType(None, "unknown")
    atoms = set(_type_atoms(elem))
    return ExpectedType(_compact(elem), "param", [r for r in decl.refs if r.name in atoms])


def _class_node(an: _Analysis, ref: TypeRef):
    mod = an.mod(ref.path)
    if mod is None or not ref.line:
        return None, None
    leaf = mod.leaf_at(ref.line, ref.column)
    if leaf is None:
        return mod, None
    node = leaf.parent
    return mod, (node if node is not None and node.type == "classdef" else None)


def _field_annotation(an: _Analysis, ref: TypeRef, name: str, depth: int = 0):
    mod, cls = _class_node(an, ref)
    if cls is None:
        return None
    for stmt in _class_body(cls):
        if stmt.type == "expr_stmt":
            ann = _annassign(stmt)
            target = stmt.children[0]
            if ann is not None and target.type == "name" and target.value == name:
                return mod, ann[0]
    if depth < 2:  # inherited fields
        for base in _base_refs(an, mod, cls):
            if base.user and base.kind == "class":
                found = _field_annotation(an, base, name, depth + 1)
                if found is not None:
                    return found
    return None


def _class_body(cls) -> list:
    """Statements of a class body (simple statements unwrapped)."""
    suite = cls.children[-1]
    items = suite.children if suite.type == "suite" else [suite]
    out = []
    for item in items:
        if item.type == "simple_stmt":
            out.extend(c for c in item.children if c.type != "newline")
        else:
            out.append(item)
    return out


def _base_refs(an: _Analysis, mod: _Mod, cls) -> list[TypeRef]:
    arglist = cls.get_super_arglist()
    if arglist is None:
        return []
    args = arglist.children if arglist.type == "arglist" else [arglist]
    refs: list[TypeRef] = []
    for arg in args:
        if arg.type == "operator" or arg.type == "argument":  # skip `metaclass=...`
            continue
        refs.extend(_resolve_node_names(an, mod, arg)[:1])
    return refs


def expected_type_at(text: str, offset: int, path: str | None = None,
                     workspace: str | None = None) -> ExpectedType:
    """The expected type at `offset` (a character offset into `text`)."""
    with _LOCK:
        return _expected(_Analysis(text, offset, path, workspace))


# --------------------------------------------------------------------------- relevant types

_ENUM_BASES = {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"}


def _class_kind(cls, bases_text: str, decorators: list[str]) -> str:
    base_names = set(re.findall(r"[A-Za-z_]\w*", bases_text))
    if any("dataclass" in d for d in decorators):
        return "dataclass"
    if base_names & _ENUM_BASES:
        return "enum"
    if "TypedDict" in base_names:
        return "typeddict"
    if "Protocol" in base_names:
        return "protocol"
    if "NamedTuple" in base_names:
        return "namedtuple"
    return "class"


def _short_default(node) -> str:
    text = _code(node)
    return text if len(text) <= MAX_DEFAULT_CHARS else "..."


def _def_stub(func, name: str | None = None, drop_self: bool = False) -> str:
    """`def name(params) -> R: ...` for a parso funcdef."""
    params_node = func.children[2]
    parts = []
    for child in params_node.children[1:-1]:
        if child.type == "param":
            if drop_self and not parts and child.star_count == 0 and \
                    child.name.value in ("self", "cls"):
                parts.append(None)
                continue
            text = "*" * child.star_count + child.name.value
            if child.annotation is not None:
                text += ": " + _code(child.annotation)
            if child.default is not None:
                text += (" = " if child.annotation is not None else "=") + \
                    _short_default(child.default)
            parts.append(text)
        elif child.type == "operator" and child.value in ("*", "/"):
            parts.append(child.value)
    params = ", ".join(p for p in parts if p is not None)
    ret = f" -> {_code(func.annotation)}" if func.annotation is not None else ""
    prefix = "async " if func.parent is not None and func.parent.type == "async_stmt" or (
        func.parent is not None and func.parent.type == "async_funcdef") else ""
    return f"{prefix}def {name or func.name.value}({params}){ret}: ..."


def _n_params(func) -> int:
    return sum(1 for c in func.children[2].children
               if c.type == "param" and c.name.value not in ("self", "cls"))


def _render_class(an: _Analysis, mod: _Mod, cls) -> tuple[str, str, list]:
    """(stub text, kind, annotation nodes of fields) of a parso classdef."""
    decorators = [_code(d) for d in cls.get_decorators()]
    arglist = cls.get_super_arglist()
    bases = _code(arglist) if arglist is not None else ""
    kind = _class_kind(cls, bases, decorators)
    lines = [d for d in decorators if d.startswith("@") and "dataclass" in d]
    lines.append(f"class {cls.name.value}({bases}):" if bases else f"class {cls.name.value}:")
    body: list[str] = []
    field_anns: list = []
    init = None
    for stmt in _class_body(cls):
        if len(body) >= MAX_MEMBERS:
            body.append("...")
            break
        if stmt.type == "string" and not body:
            doc = stmt.value.strip("'\"rbuRBU").strip().split("\n")[0].strip()
            if doc:
                body.append(f'"""{doc[:100]}"""')
            continue
        if stmt.type == "expr_stmt":
            target = stmt.children[0]
            if target.type != "name":
                continue
            ann = _annassign(stmt)
            if ann is not None:
                text = f"{target.value}: {_code(ann[0])}"
                if ann[1] is not None:
                    text += " = " + _short_default(ann[1])
                body.append(text)
                field_anns.append(ann[0])
            elif kind == "enum" or target.value.isupper():
                value = _assignment_value(stmt)
                body.append(f"{target.value} = {_short_default(value) if value else '...'}")
            continue
        func, decos = _funcdef_of(stmt)
        if func is None:
            if stmt.type == "classdef":
                body.append(f"class {stmt.name.value}: ...")
            continue
        name = func.name.value
        if name == "__init__":
            init = func
        elif name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        elif name.startswith("__") and name not in ("__call__", "__iter__", "__getitem__",
                                                   "__len__", "__contains__"):
            continue
        for deco in decos:
            if deco in ("@property", "@staticmethod", "@classmethod") or \
                    deco.endswith(".setter"):
                body.append(deco)
        body.append(_def_stub(func, drop_self=False))
    if init is not None and kind == "class":
        attrs = _init_attributes(init)
        names_present = {b.split(":")[0] for b in body}
        extra = [f"{n}: {_code(a)}" for n, a in attrs if n not in names_present]
        field_anns.extend(a for _, a in attrs)
        body = extra + body
    if not body:
        body.append("...")
    lines.extend("    " + b for b in body)
    return "\n".join(lines), kind, field_anns


def _funcdef_of(stmt):
    """(funcdef, decorator texts) for a funcdef/decorated/async statement."""
    decos: list[str] = []
    node = stmt
    if node.type == "decorated":
        decos = [_code(d) for d in (node.children[0].children if node.children[0].type ==
                                    "decorators" else [node.children[0]])]
        node = node.children[1]
    if node.type in ("async_stmt", "async_funcdef"):
        node = node.children[1]
    return (node, decos) if node.type == "funcdef" else (None, decos)


def _init_attributes(init) -> list[tuple[str, Any]]:
    """(name, annotation node) of `self.x: T = ...` and `self.x = param` (annotated param)."""
    params = {p.name.value: p.annotation for p in init.get_params() if p.annotation is not None}
    out: list[tuple[str, Any]] = []
    seen = set()
    for node in _walk(init.children[-1]):
        if node.type != "expr_stmt":
            continue
        target = node.children[0]
        if target.type != "power" and target.type != "atom_expr":
            continue
        code = target.get_code(include_prefix=False).strip()
        m = re.fullmatch(r"self\.(\w+)", code)
        if not m or m.group(1) in seen or m.group(1).startswith("_"):
            continue
        ann = _annassign(node)
        if ann is not None:
            out.append((m.group(1), ann[0]))
            seen.add(m.group(1))
            continue
        value = _assignment_value(node)
        if value is not None and value.type == "name" and value.value in params:
            out.append((m.group(1), params[value.value]))
            seen.add(m.group(1))
    return out


def _walk(node, into_scopes: bool = False):
    """The nodes below `node` in source order; nested functions, classes and lambdas are
    yielded but not entered unless `into_scopes`."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        if into_scopes or cur is node or cur.type not in ("funcdef", "classdef", "lambdef"):
            stack.extend(reversed(getattr(cur, "children", [])))


def _subclass_refs(an: _Analysis, mod: _Mod, name: str) -> list[TypeRef]:
    """Classes of module `mod` (top level) that list `name` among their bases."""
    out = []
    for cls in mod.tree.iter_classdefs():
        arglist = cls.get_super_arglist()
        if arglist is None:
            continue
        if name in re.findall(r"[A-Za-z_]\w*", _code(arglist)):
            qual = (_module_name(an, mod.path) + "." if mod.path else "") + cls.name.value
            out.append(TypeRef(name=cls.name.value, qualname=qual, kind="class", path=mod.path,
                               line=cls.name.start_pos[0], column=cls.name.start_pos[1],
                               user=True))
    return out


def _module_name(an: _Analysis, path: str | None) -> str:
    if not path:
        return "__main__"
    rel = os.path.relpath(path, an.root) if an.root else os.path.basename(path)
    rel = rel[:-3] if rel.endswith(".py") else rel
    parts = [p for p in rel.split(os.sep) if p not in ("", ".")]
    if parts and parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] == "src":
        parts.pop(0)
    return ".".join(parts)


def _is_visible(an: _Analysis, path: str | None, line: int, end_line: int) -> bool:
    return path == an.path and end_line < an.line and an.line - line <= VISIBLE_LINES


def _types(an: _Analysis, expected: ExpectedType) -> list[TypeDef]:
    queue: list[tuple[TypeRef, int]] = [(r, 0) for r in expected.refs if r.user]
    seen: set[str] = set()
    out: list[TypeDef] = []
    while queue and len(out) < MAX_TYPES:
        ref, depth = queue.pop(0)
        key = (ref.path or "") + ":" + ref.qualname
        if key in seen or ref.kind in ("typevar", "other"):
            continue
        seen.add(key)
        if ref.kind == "class":
            mod, cls = _class_node(an, ref)
            if cls is None:
                continue
            text, kind, field_anns = _render_class(an, mod, cls)
            start = cls.get_decorators()[0].start_pos[0] if cls.get_decorators() else \
                cls.start_pos[0]
            end = cls.end_pos[0]
            out.append(TypeDef(name=ref.name, qualname=ref.qualname, kind=kind, text=text,
                               path=ref.path, line=start, end_line=end, depth=depth,
                               visible=_is_visible(an, ref.path, start, end)))
            if depth >= MAX_TYPE_DEPTH:
                continue
            children: list[TypeRef] = []
            for ann in field_anns:
                children.extend(_resolve_node_names(an, mod, ann))
            children.extend(_base_refs(an, mod, cls))
            if depth == 0:
                children.extend(_subclass_refs(an, mod, ref.name))
            queue.extend((c, depth + 1) for c in _dedupe(children) if c.user)
        elif ref.kind in ("alias", "newtype"):
            mod = an.mod(ref.path)
            stmt = _assignment_of(mod, ref.line, ref.column) if mod else None
            if stmt is None:
                continue
            text = _code(stmt)
            out.append(TypeDef(name=ref.name, qualname=ref.qualname, kind=ref.kind, text=text,
                               path=ref.path, line=stmt.start_pos[0], end_line=stmt.end_pos[0],
                               depth=depth, visible=_is_visible(an, ref.path, stmt.start_pos[0],
                                                                stmt.end_pos[0])))
            value = _assignment_value(stmt)
            if value is not None and ref.kind == "alias":
                # alias members sit at the alias's depth (ChatLSP expands aliases)
                members = [(c, depth) for c in _resolve_node_names(an, mod, value) if c.user]
                queue[0:0] = members
    return out


def _types_for(an: _Analysis, expected: ExpectedType) -> list[TypeDef]:
    """Relevant types of the expected type; for an unknown or builtin one, (also) the workspace
    types named by the enclosing function's signature (at depth 1 and below: a weaker hint)."""
    if expected.known:
        types = _types(an, expected)
        if any(r.user for r in expected.refs):
            return types
        # a builtin goal (`int`, `bool`, `str`): the workspace types of the values in play
        seen = {t.qualname for t in types}
        return types + [t for t in _signature_types(an) if t.qualname not in seen]
    return _signature_types(an)


def _signature_types(an: _Analysis) -> list[TypeDef]:
    func = _enclosing_function(an)
    if func is None or func.type != "funcdef":
        return []
    refs: list[TypeRef] = []
    for p in func.get_params():
        if p.annotation is not None:
            refs.extend(_resolve_node_names(an, an.cur, p.annotation))
    if func.annotation is not None:
        refs.extend(_resolve_node_names(an, an.cur, func.annotation))
    scope = ExpectedType(None, "unknown", _dedupe(refs))
    return [replace(t, depth=t.depth + 1) for t in _types(an, scope)]


def relevant_types(text: str, offset: int, path: str | None = None,
                   workspace: str | None = None,
                   expected: ExpectedType | None = None) -> list[TypeDef]:
    """Type definitions reachable from the expected type at `offset`, as stubs."""
    with _LOCK:
        an = _Analysis(text, offset, path, workspace)
        return _types_for(an, expected if expected is not None else _expected(an))


# --------------------------------------------------------------------------- relevant headers


def _goal(expected: ExpectedType) -> tuple[set[str], bool]:
    """(atoms the goal is about, whether they include a user-defined type)."""
    atoms = set(_type_atoms(expected.type, goal=True))
    user = {r.name for r in expected.refs if r.user}
    return atoms, bool(atoms & user)


def _scope_chain(an: _Analysis) -> list:
    """Enclosing function nodes of the cursor, innermost first."""
    chain = []
    func = _enclosing_function(an)
    while func is not None:
        if func.type == "funcdef":
            chain.append(func)
        func = _ancestor(func, "funcdef")
    return chain


def _headers(an: _Analysis, expected: ExpectedType) -> list[Header]:
    if not expected.known:
        return []
    atoms, user_goal = _goal(expected)
    if not atoms:
        return []
    goal_text = _compact(expected.type or "")
    goal_top = _top_atoms(expected.type, goal=True)
    user_names = {r.name for r in expected.refs if r.user}
    chain = _scope_chain(an)
    own = chain[0] if chain else None
    candidates: list[Header] = []
    seen: set[tuple[str, str | None, int]] = set()

    def consider(name: str, kind: str, type_text: str | None, signature: str, path: str | None,
                 line: int, n_params: int, end_line: int, is_user_type: bool,
                 own_function: bool = False) -> None:
        if not type_text or (name, path, line) in seen:
            return
        shared = _top_atoms(type_text) & goal_top
        if not shared:
            return
        exact = _compact(type_text) == goal_text
        if user_goal:
            # the outermost types must agree: a user type itself, or the same container of
            # user types (`list[Todo]`); `dict[Light, int]` is no `Light`
            if not is_user_type or not (shared & user_names or exact or
                                        set(_type_atoms(type_text)) & user_names):
                return
        elif not exact:
            return
        seen.add((name, path, line))
        score = 4.0 if user_goal else 1.0
        score += 2.0 if exact else 1.0
        if path == an.path:
            score += 1.0 / (1.0 + abs(an.line - line) / 50.0)
        score -= 0.05 * n_params
        if own_function:
            score -= 5.0
        candidates.append(Header(name=name, kind=kind, signature=signature, return_type=type_text,
                                 path=path, line=line, score=round(score, 3),
                                 visible=_is_visible(an, path, line, line)))

    def mentions_user(type_text: str) -> bool:
        return bool(set(_type_atoms(type_text)) & user_names)

    # parameters and annotated locals of the enclosing functions
    for func in chain:
        for p in func.get_params():
            if p.annotation is None or p.name.value in ("self", "cls"):
                continue
            ann = _code(p.annotation)
            consider(p.name.value, "param", ann, f"{p.name.value}: {ann}", an.path,
                     p.start_pos[0], 0, p.start_pos[0], mentions_user(ann))
        for node in _walk(func.children[-1]):
            if node.type == "expr_stmt" and node.start_pos[0] < an.line:
                _consider_assignment(an, node, consider, mentions_user)
    # module level of the current document
    for node in an.cur.tree.children:
        func, _ = _funcdef_of(node)
        if func is not None:
            if func.annotation is not None:
                ann = _code(func.annotation)
                consider(func.name.value, "function", ann, _def_stub(func), an.path,
                         func.start_pos[0], _n_params(func), func.end_pos[0], mentions_user(ann),
                         own_function=func is own)
            continue
        if node.type == "simple_stmt":
            for stmt in node.children:
                if stmt.type == "expr_stmt":
                    _consider_assignment(an, stmt, consider, mentions_user)
                elif stmt.type == "import_from":
                    _consider_imports(an, stmt, consider, mentions_user)
    candidates.sort(key=lambda h: (-h.score, h.name, h.path or "", h.line))
    return candidates[:MAX_HEADERS]


def _consider_assignment(an: _Analysis, stmt, consider, mentions_user) -> None:
    target = stmt.children[0]
    if target.type != "name":
        return
    ann = _annassign(stmt)
    if ann is not None:
        text = _code(ann[0])
        consider(target.value, "variable", text, f"{target.value}: {text}", an.path,
                 stmt.start_pos[0], 0, stmt.end_pos[0], mentions_user(text))
        return
    if an.inferences >= MAX_INFERENCES or target.value.startswith("_") or \
            stmt.start_pos[0] >= an.line or target.value in an.tainted:
        return
    an.inferences += 1
    try:
        values = an.cur.script.infer(*target.start_pos)
    except Exception:
        return
    text, refs = _refs_from_values(an, values)
    if text:
        consider(target.value, "variable", text, f"{target.value}: {text}", an.path,
                 stmt.start_pos[0], 0, stmt.end_pos[0], any(r.user for r in refs))


def _consider_imports(an: _Analysis, stmt, consider, mentions_user) -> None:
    try:
        modules = [".".join(n.value for n in path) for path in stmt.get_paths()]
    except (AttributeError, ValueError):
        return
    if any(an.module_kind(m, stmt.level) != "workspace" for m in modules):
        return  # headers come from workspace code only
    for name_leaf in stmt.get_defined_names():
        if an.inferences >= MAX_IMPORT_LOOKUPS + MAX_INFERENCES:
            return
        an.inferences += 1
        if not name_leaf.value[:1].islower():  # classes and constants are types' business
            continue
        try:
            defs = an.cur.script.goto(*name_leaf.start_pos, follow_imports=True)
        except Exception:
            continue
        for d in defs[:1]:
            path = str(d.module_path) if d.module_path else None
            if d.type != "function" or not an.is_user(path, d.module_name):
                continue
            mod = an.mod(path)
            leaf = mod.leaf_at(d.line, d.column) if mod else None
            func = leaf.parent if leaf is not None else None
            if func is None or func.type != "funcdef" or func.annotation is None:
                continue
            ann = _code(func.annotation)
            consider(name_leaf.value, "function", ann, _def_stub(func, name=name_leaf.value),
                     path, func.start_pos[0], _n_params(func), func.end_pos[0],
                     mentions_user(ann))


def relevant_headers(text: str, offset: int, path: str | None = None,
                     workspace: str | None = None,
                     expected: ExpectedType | None = None) -> list[Header]:
    """In-scope functions and variables whose type fits the expected type, ranked (at most 8)."""
    with _LOCK:
        an = _Analysis(text, offset, path, workspace)
        return _headers(an, expected if expected is not None else _expected(an))


# --------------------------------------------------------------------------- entry point


def hole_context(text: str, offset: int, path: str | None = None,
                 workspace: str | None = None) -> HoleContext:
    """Expected type, relevant types and relevant headers at `offset`, with timings."""
    with _LOCK:
        t0 = time.perf_counter()
        an = _Analysis(text, offset, path, workspace)
        t1 = time.perf_counter()
        expected = _expected(an)
        t2 = time.perf_counter()
        types = _types_for(an, expected)
        t3 = time.perf_counter()
        headers = _headers(an, expected)
        t4 = time.perf_counter()
    timings = {"setup": (t1 - t0) * 1000, "expected": (t2 - t1) * 1000,
               "types": (t3 - t2) * 1000, "headers": (t4 - t3) * 1000, "total": (t4 - t0) * 1000}
    return HoleContext(expected=expected, types=types, headers=headers,
                       timings_ms={k: round(v, 2) for k, v in timings.items()},
                       path=os.path.abspath(path) if path else None)

