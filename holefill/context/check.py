"""Error rounds: check a suggestion the way a compiler would, before it is shown.

`check_suggestion(text, offset, suggestion, ...)` splices the suggestion into the document at the
cursor and reports, conservatively (a false error drops a good suggestion):

- `syntax`: the top-level block around the cursor (lines from the previous to the next statement
  at column 0) does not parse with the suggestion while it does with a neutral filler at the
  cursor ("", "...", "pass", "_"), so the suggestion is to blame. When that block cannot be cut
  out on its own, the whole file is judged the same way; when the document is already broken
  around the cursor, nothing is reported. The file itself is parsed once per document version
  (cached), so checking k drafts costs k block parses.
- `undefined-name`: a name the suggestion reads that does not resolve in the scope where it is
  read, by Python's rules as the stdlib `symtable` computes them (nothing is imported or run):
  local to that function, lambda or comprehension (bound anywhere in it, before or after), free
  from an enclosing function, declared `global`/`nonlocal`, bound at module level, or a builtin.
  Class bodies are not visible from their methods (the hint then names `self.<name>`). The block
  around the cursor gets its own symbol table per draft; the scopes enclosing a nested block come
  from the table of the top-level block around it and the module-level bindings from the
  document's parse (both cached per document version). Where the scope of a name is not known
  (symtable fails, an annotation under `from __future__ import annotations`, ambiguous scopes),
  the old rule applies: the name is reported only when it is bound nowhere in the spliced
  module. Off when the module star-imports, calls `globals()`/`locals()`/`vars()` or `exec`s
  code into its own namespace.
- `unknown-attribute`: `obj.attr` where jedi infers `obj` to be only instances/classes of
  workspace classes (or workspace modules) whose members are all known (no `__getattr__`, every
  base class resolved in the workspace or a plain builtin/enum/typing base), `attr` is not among
  jedi's completions for `obj.` and the name appears nowhere in the defining module nor the
  document.
- `type-mismatch`: the suggestion is the whole expression at a hole whose expected type is known
  (`holefill.context.holes.expected_type_at`) and resolves to concrete classes, jedi infers the
  expression to instances of classes none of which is (a subclass of) an expected one (numeric
  promotion and `None` for `Optional` allowed). Abstract expected types (`Sequence`, `Callable`,
  Protocols, `Any`, type variables) are never checked.

Nothing is imported or executed; jedi runs on the workspace Project of `holes.py`.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import symtable
import sys
import tokenize
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from holefill.context import holes

__all__ = ["CheckError", "check_suggestion", "format_errors"]

_FILLERS = ("", "...", "pass", "_", "_:\n pass")
_ALWAYS_DEFINED = {
    "__name__", "__file__", "__doc__", "__package__", "__spec__", "__loader__", "__builtins__",
    "__path__", "__annotations__", "__dict__", "__module__", "__qualname__", "__class__",
    "__debug__", "__cached__", "_", "reveal_type", "reveal_locals",
}
_BUILTIN_NAMES = set(dir(builtins))
_OK_BASES = {"object", "Enum", "IntEnum", "StrEnum", "Flag", "IntFlag", "NamedTuple",
             "Generic", "ABC", "Protocol", "TypedDict", "Exception", "BaseException"}
_ABSTRACT = {"Sequence", "MutableSequence", "Iterable", "Iterator", "Collection", "Container",
             "Mapping", "MutableMapping", "AbstractSet", "MutableSet", "Callable", "Any",
             "object", "Awaitable", "Coroutine", "Generator", "AsyncIterator", "AsyncIterable",
             "AsyncGenerator", "Hashable", "Sized", "Reversible", "SupportsInt", "SupportsFloat",
             "Type", "type", "Literal", "Self", "LiteralString", "Never", "NoReturn",
             "TypeGuard", "TypeIs", "Annotated", "ClassVar", "Final", "Required", "NotRequired"}
_CONTAINERS = {"list": "list", "List": "list", "dict": "dict", "Dict": "dict", "set": "set",
               "Set": "set", "frozenset": "frozenset", "FrozenSet": "frozenset",
               "tuple": "tuple", "Tuple": "tuple", "DefaultDict": "dict", "defaultdict": "dict",
               "Deque": "deque", "deque": "deque", "OrderedDict": "dict", "Counter": "dict"}
_NONE = "builtins.NoneType"
_PROMOTIONS = {"bool": {"int", "float", "complex"}, "int": {"float", "complex"},
               "float": {"complex"}}


@dataclass
class CheckError:
    kind: str  # syntax | undefined-name | unknown-attribute | type-mismatch
    message: str
    line: int  # 1-based line in the spliced document
    column: int  # 0-based column (characters)
    hint: str | None = None  # e.g. close matches to an unknown name


def format_errors(errors: list[CheckError]) -> list[str]:
    return [f"line {e.line}: {e.message}" + (f" ({e.hint})" if e.hint else "") for e in errors]


def check_suggestion(text: str, offset: int, suggestion: str, path: str | None = None,
                     workspace: str | None = None,
                     expected: holes.ExpectedType | None = None) -> list[CheckError]:
    """Errors the suggestion would introduce when inserted at `offset`; empty when none is known.

    `expected` (from `holes.expected_type_at`) enables the type-mismatch check; pass it when the
    hole context is already computed, else it is not computed here (no type check). Checking
    several drafts for the same document is cheap: the document's own parse is cached and each
    draft re-parses only the top-level block around the cursor."""
    offset = max(0, min(offset, len(text)))
    if not suggestion.strip():
        return []
    new = text[:offset] + suggestion + text[offset:]
    span = (offset, offset + len(suggestion))
    base = _baseline(text, offset)
    tree, errors, source = _syntax(text, offset, suggestion, new, base)
    if errors or tree is None:
        return errors
    lines = _LineIndex(new)
    line0, line1 = lines.position(span[0])[0], lines.position(span[1])[0]
    nodes = list(_span_nodes(tree, line0, line1))
    if base.bound is not None:
        bound, dynamic = _bound_names(ast.walk(tree))
        if not (dynamic or base.dynamic):
            scopes = None
            if any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) for n in nodes):
                scopes = _scopes(text, offset, new, base, tree, source, line0, line1)
            errors += _undefined(nodes, new, span, lines, base.bound | bound, scopes)
    with holes._LOCK:
        errors += _semantic(nodes, new, text, span, lines, path, workspace, expected)
    return errors


# --------------------------------------------------------------------------- syntax


def _parse(src: str) -> tuple[ast.Module | None, SyntaxError | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings of odd drafts are not ours to show
            return ast.parse(src), None
    except SyntaxError as exc:
        return None, exc
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, absurd nesting
        return None, SyntaxError(str(exc))


@dataclass
class _Baseline:
    """The document with a neutral filler at the cursor (no suggestion)."""

    bound: set[str] | None  # names bound anywhere in it; None when it does not parse
    dynamic: bool  # star imports, globals(), exec: names cannot be judged
    region: tuple[int, int, str] | None  # (start, end, header) of the smallest enclosing
    #   function/class or top-level block that parses on its own (after `header`) with a filler
    fill: str | None = None  # the filler the whole document parses with
    module_bound: set[str] | None = None  # names bound at module level or declared `global`
    tables: _DocTables | None | bool = False  # symbol tables around the cursor (False: not
    #   computed yet; None: they cannot be built)


_BASELINES: OrderedDict[tuple[int, int, int], _Baseline] = OrderedDict()


def _baseline(text: str, offset: int) -> _Baseline:
    key = (hash(text), len(text), offset)
    with holes._LOCK:
        hit = _BASELINES.get(key)
        if hit is not None:
            _BASELINES.move_to_end(key)
            return hit
    tree = None
    fillers = _fillers(text, offset)
    for fill in fillers:
        tree, err = _parse(text[:offset] + fill + text[offset:])
        if err is None:
            break
    declared: set[str] = set()
    bound, dynamic = _bound_names(ast.walk(tree), declared) if tree is not None \
        else (None, False)
    good_fill = fill if tree is not None else None
    module_bound = _module_names(tree) | declared if tree is not None else None
    region = None
    for start, end, header in _regions(text, offset):
        if tree is None and not header and not _DEF.match(text, start):
            continue  # a broken file: only a def/class region is cut out reliably enough
        if any(_parse(header + text[start:offset] + f + text[offset:end])[1] is None
               for f in fillers):
            region = (start, end, header)
            break
    base = _Baseline(bound=bound, dynamic=dynamic, region=region, fill=good_fill,
                     module_bound=module_bound)
    with holes._LOCK:
        _BASELINES[key] = base
        while len(_BASELINES) > 16:
            _BASELINES.popitem(last=False)
    return base


_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _fillers(text: str, offset: int) -> list[str]:
    """Neutral fillers for the cursor: the fixed ones, and `_` plus the closing brackets of the
    brackets still open in the statement before the cursor (`f(a, ▮` -> `_)`)."""
    start = max(_top_level_block(text, offset)[0], offset - 20_000)
    start = text.rfind("\n", 0, start) + 1
    stack: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text[start:offset]).readline):
            if tok.type == tokenize.OP and tok.string in _CLOSERS:
                stack.append(_CLOSERS[tok.string])
            elif tok.type == tokenize.OP and tok.string in ")]}" and stack:
                stack.pop()
            elif tok.type == tokenize.NEWLINE:
                stack = []
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    fillers = list(_FILLERS)
    if stack:
        fillers.append("_" + "".join(reversed(stack)))
    return fillers


@dataclass
class _Source:
    """What the tree of the spliced block or file was parsed from."""

    src: str
    shift: int  # document line = line in `src` + shift
    start: int | None  # offset of the cut-out region in the document; None: the whole file
    header: str = ""  # "if 1:\n" before a nested region


def _syntax(text: str, offset: int, suggestion: str, new: str, base: _Baseline
            ) -> tuple[ast.Module | None, list[CheckError], _Source | None]:
    """(tree of the spliced block or file, syntax errors, its source). Line numbers are the
    document's."""
    if base.region is not None:
        start, end, header = base.region
        src = header + text[start:offset] + suggestion + text[offset:end]
        tree, err = _parse(src)
        shift = text.count("\n", 0, start) - header.count("\n")
        if err is not None and base.bound is not None:
            # confirm on the whole file: a region cut can split what the suggestion starts
            # (a decorator before the next top-level class)
            tree, err = _parse(new)
            if err is None:
                return tree, [], _Source(new, 0, None)
            return None, [_syntax_error(err)], None
        if err is not None:
            e = _syntax_error(err)
            e.line += shift
            return None, [e], None
        ast.increment_lineno(tree, shift)
        return tree, [], _Source(src, shift, start, header)
    if base.bound is not None:  # no region could be cut out, the file parses: judge the file
        tree, err = _parse(new)
        if err is None:
            return tree, [], _Source(new, 0, None)
        return None, [_syntax_error(err)], None
    return None, [], None  # broken around the cursor already: nothing to judge


def _syntax_error(err: SyntaxError) -> CheckError:
    return CheckError("syntax", f"syntax error: {err.msg}" if err.msg else "syntax error",
                      err.lineno or 1, max(0, (err.offset or 1) - 1))


_DEF = re.compile(r"[ \t]*(?:async[ \t]+def|def|class)[ \t]")


def _regions(text: str, offset: int) -> list[tuple[int, int, str]]:
    """Candidate regions around `offset`, smallest first: the innermost enclosing `def`/`class`
    (by indentation; a nested one is wrapped in `if 1:` so that it parses at top level), then
    the top-level block."""
    out: list[tuple[int, int, str]] = []
    line_start = text.rfind("\n", 0, offset) + 1
    cur = text[line_start:offset]
    width = len(cur) - len(cur.lstrip(" \t"))
    pos = line_start
    steps = 0
    while pos > 0 and steps < 2000:
        steps += 1
        prev = text.rfind("\n", 0, pos - 1) + 1
        line = text[prev:pos - 1]
        pos = prev
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if indent < width:
            width = indent
            if _DEF.match(line):
                end = _block_end(text, offset, indent)
                out.append((prev, end, "if 1:\n" if indent else ""))
                break
        if indent == 0:
            break
    start, end = _top_level_block(text, offset)
    if not out or out[-1][:2] != (start, end):
        out.append((start, end, ""))
    return out


def _block_end(text: str, offset: int, indent: int) -> int:
    """Offset of the first code line after `offset` indented at most `indent`."""
    pos = text.find("\n", offset)
    while pos >= 0:
        nxt = pos + 1
        line_end = text.find("\n", nxt)
        line = text[nxt:line_end if line_end >= 0 else len(text)]
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#") and len(line) - len(stripped) <= indent \
                and not stripped.startswith((")", "]", "}")):
            return nxt
        pos = line_end
    return len(text)


_TOP = re.compile(r"(?:async\s+def|def|class|@|if|for|while|with|try|import|from|[A-Za-z_])")


def _top_level_block(text: str, offset: int) -> tuple[int, int]:
    """Offsets of the top-level block around `offset` (lines starting at column 0)."""
    line_start = text.rfind("\n", 0, offset) + 1
    start = line_start
    pos = line_start
    while pos > 0:
        prev = text.rfind("\n", 0, pos - 1) + 1
        line = text[prev:pos - 1] if pos - 1 >= prev else ""
        pos = prev
        if line and not line[0].isspace() and _TOP.match(line) and not line.startswith(
                ("else", "elif", "except", "finally")):
            start = prev
            break
        start = prev
    end = len(text)
    pos = text.find("\n", offset)
    while pos >= 0:
        nxt = pos + 1
        line_end = text.find("\n", nxt)
        line = text[nxt:line_end if line_end >= 0 else len(text)]
        if line and not line[0].isspace() and _TOP.match(line) and not line.startswith(
                ("else", "elif", "except", "finally", ")", "]", "}")):
            end = nxt
            break
        pos = line_end
    return start, end


# --------------------------------------------------------------------------- undefined names


class _LineIndex:
    """Character offsets of ast (line, UTF-8 byte column) positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        i = text.find("\n")
        while i >= 0:
            self.starts.append(i + 1)
            i = text.find("\n", i + 1)
        self._lines: dict[int, str] = {}

    def line_text(self, line: int) -> str:
        if line not in self._lines:
            start = self.starts[line - 1] if line - 1 < len(self.starts) else len(self.text)
            end = self.text.find("\n", start)
            self._lines[line] = self.text[start:end if end >= 0 else len(self.text)]
        return self._lines[line]

    def char_col(self, line: int, byte_col: int) -> int:
        raw = self.line_text(line).encode("utf-8")
        return len(raw[:byte_col].decode("utf-8", errors="ignore"))

    def offset(self, line: int, byte_col: int) -> int:
        if line - 1 >= len(self.starts):
            return len(self.text)
        return self.starts[line - 1] + self.char_col(line, byte_col)

    def position(self, offset: int) -> tuple[int, int]:
        """(1-based line, character column) of a character offset."""
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.starts[lo]


def _span_nodes(tree: ast.AST, line0: int, line1: int):
    """The nodes of `tree` whose lines overlap [line0, line1] (subtrees outside are skipped)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        lineno = getattr(node, "lineno", None)
        if lineno is not None:
            end = getattr(node, "end_lineno", None) or lineno
            for deco in getattr(node, "decorator_list", ()):  # decorators sit above `def`
                lineno = min(lineno, deco.lineno)
            if end < line0 or lineno > line1:
                continue
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _handler_or_pattern_name(node: ast.AST) -> str | None:
    """The name an `except ... as name` or a match pattern (`case x`, `*rest`, `**rest`)
    binds, if the node is one that binds a name."""
    if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return node.name
    if isinstance(node, ast.MatchMapping):
        return node.rest
    return None


def _bound_names(nodes, declared: set[str] | None = None) -> tuple[set[str], bool]:
    """Names bound by the nodes (any scope), and whether names are bound dynamically. Names
    declared `global` are also added to `declared`."""
    bound: set[str] = set()
    dynamic = False
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    dynamic = True
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
            if declared is not None and isinstance(node, ast.Global):
                declared.update(node.names)
        elif bound_here := _handler_or_pattern_name(node):
            bound.add(bound_here)
        elif type(node).__name__ in ("TypeVar", "ParamSpec", "TypeVarTuple"):
            bound.add(getattr(node, "name", ""))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                (node.func.id in ("globals", "locals", "vars") and not node.args)
                or (node.func.id == "exec" and len(node.args) < 2)):
            dynamic = True  # names bound through the namespace dict or exec'd code
    return bound, dynamic


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound at module level: assignments, `del`, imports, definitions, loop/with/except/
    match targets, walrus targets, outside of function, class, lambda and comprehension scopes
    (a walrus in a comprehension binds here too)."""
    out: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        parts = _scope_parts(node)
        if parts is not None:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            stack.extend(parts[0])
            if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                out.update(n.target.id for part in parts[1] for n in ast.walk(part)
                           if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name))
            continue
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                out.add(node.id)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif bound_here := _handler_or_pattern_name(node):
            out.add(bound_here)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _undefined(nodes: list[ast.AST], new: str, span: tuple[int, int], lines: _LineIndex,
               bound: set[str], scopes: _Scopes | None) -> list[CheckError]:
    """Names the suggestion reads that do not resolve where they are read (`scopes`); where
    their scope is not known, names bound nowhere in the module (`bound`)."""
    errors: list[CheckError] = []
    reported: set[str] = set()
    for node in sorted((n for n in nodes if isinstance(n, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset)):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        start = lines.offset(node.lineno, node.col_offset)
        if not (span[0] <= start < span[1]):
            continue
        name = node.id
        if name in _BUILTIN_NAMES or name in _ALWAYS_DEFINED or name in reported:
            continue
        if start == span[0] and span[0] > 0 and (new[span[0] - 1].isalnum() or
                                                 new[span[0] - 1] == "_"):
            continue  # the cursor was inside the identifier: its start came from the document
        resolved = scopes.resolves(node) if scopes is not None else None
        if resolved if resolved is not None else name in bound:
            continue
        reported.add(name)
        hint = scopes.class_attribute(node) if resolved is not None else None
        if hint is None:
            pool = scopes.visible(node) if resolved is not None else bound
            close = _close_matches(name, pool | _BUILTIN_NAMES)
            hint = f"did you mean {', '.join(close)}?" if close else None
        errors.append(CheckError("undefined-name", f"name '{name}' is not defined",
                                 node.lineno, lines.char_col(node.lineno, node.col_offset), hint))
    return errors


# Scopes: which symbol table a name of the spliced block is read in, and whether it resolves.

_SCOPE_NAMES = {ast.Lambda: "lambda", ast.ListComp: "listcomp", ast.SetComp: "setcomp",
                ast.DictComp: "dictcomp", ast.GeneratorExp: "genexpr"}
# PEP 709 (3.12-3.15): list/set/dict comprehensions get no table of their own; their names are
# merged into the enclosing function's table
_INLINED_COMPREHENSIONS = sys.version_info >= (3, 12)
_DEF_NAME = re.compile(r"[ \t]*(?:async[ \t]+def|def|class)[ \t]+(\w+)")


def _symtable(src: str) -> symtable.SymbolTable | None:
    """The module's symbol table (compiled, never run); None when it cannot be built (a
    `nonlocal` without binding, a `global` after use, null bytes, absurd nesting)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return symtable.symtable(src, "<document>", "exec")
    except Exception:
        return None


def _module_bound(top: symtable.SymbolTable, own: bool = True) -> set[str]:
    """Names a module table binds at module level (assignments, imports, definitions, `del`,
    loop/with/except/match targets) and names any of its scopes declares `global`. With
    `own=False`, only the latter."""
    out = set()
    for name in top.get_identifiers():
        sym = top.lookup(name)
        if sym.is_declared_global() or own and (sym.is_assigned() or sym.is_imported()):
            out.add(name)
    return out


@dataclass
class _DocTables:
    """Symbol tables of the document (with the neutral filler at the cursor): of the top-level
    block around the cursor, or of the whole document when that block has none of its own."""

    top: symtable.SymbolTable
    shift: int  # document line = table line + shift

    def chain(self, line: int, name: str) -> list[symtable.SymbolTable] | None:
        """Tables from the top down to the function or class `name` defined at `line`."""
        line -= self.shift
        path = [self.top]
        table = self.top
        for _ in range(200):
            kids = [c for c in table.get_children() if c.get_lineno() <= line]
            hits = [c for c in kids if c.get_lineno() == line and c.get_name() == name
                    and c.get_type() in ("function", "class")]
            if len(hits) == 1:
                return path + hits
            if hits or not kids:
                return None
            table = kids[-1]  # the last scope starting before `line` is the one around it
            path.append(table)
        return None


def _outer_chain(text: str, offset: int, base: _Baseline,
                 start: int, name: str) -> list[symtable.SymbolTable] | None:
    """The document's tables enclosing the definition `name` at offset `start` (module
    excluded, innermost last): from the top-level block's table, else the whole document's
    (cached per document version)."""
    if base.fill is None:
        return None
    line = text.count("\n", 0, start) + 1
    if base.tables is False:
        base.tables = None
        lo, hi = _top_level_block(text, offset)
        if lo <= start:
            top = _symtable(text[lo:offset] + base.fill + text[offset:hi])
            if top is not None:
                base.tables = _DocTables(top, text.count("\n", 0, lo))
                if base.tables.chain(line, name) is None:
                    base.tables = None
        if base.tables is None:
            top = _symtable(text[:offset] + base.fill + text[offset:])
            base.tables = _DocTables(top, 0) if top is not None else None
    path = base.tables.chain(line, name) if base.tables is not None else None
    return path[1:-1] if path is not None else None


def _scopes(text: str, offset: int, new: str, base: _Baseline, tree: ast.Module,
            source: _Source | None, line0: int, line1: int) -> _Scopes | None:
    """Scopes of the names in lines [line0, line1] of `tree`; None when unknown."""
    if source is None:
        return None
    if source.start is not None:
        if base.module_bound is None:
            return None
        top = _symtable(source.src)
        if top is not None:
            outer: list[symtable.SymbolTable] = []
            if source.header:
                m = _DEF_NAME.match(text, source.start)
                path = _outer_chain(text, offset, base, source.start, m.group(1)) if m else None
                if path is None:
                    return None
                outer = path
            own = _module_bound(top, own=not source.header)
            return _Scopes(tree, top, source.shift, line0, line1, base.module_bound | own,
                           outer, nested=bool(source.header))
        # the block has no table of its own (a `nonlocal` for a name of the enclosing
        # function): judge the whole spliced file
        tree, err = _parse(new)
        if err is not None:
            return None
        source = _Source(new, 0, None)
    top = _symtable(source.src)
    if top is None:
        return None
    return _Scopes(tree, top, source.shift, line0, line1, _module_bound(top))


class _Scopes:
    """Symbol tables of a parsed source (the cut-out block or the whole spliced file), mapped
    onto the names of its tree. A nested block (a method, an inner function) was compiled on its
    own: names it leaves global are looked up in `outer`, the document's tables enclosing it
    (module excluded, innermost last), then at module level (`module_bound`)."""

    def __init__(self, tree: ast.Module, top: symtable.SymbolTable, shift: int, line0: int,
                 line1: int, module_bound: set[str],
                 outer: list[symtable.SymbolTable] | None = None, nested: bool = False) -> None:
        self.top = top
        self.shift = shift
        self.module_bound = module_bound
        self.outer = outer or []
        self.nested = nested
        # bound at the block's top level: in the scope around a nested block
        self.top_bound = _module_bound(top) if nested else set()
        # (line, column) of a Name read -> (its table or None when unknown, tables from the
        # source's top down to it)
        self.names: dict[tuple[int, int], tuple[symtable.SymbolTable | None, tuple]] = {}
        self._walk(tree, line0, line1)

    # ------------------------------------------------------------------ mapping

    def _walk(self, tree: ast.Module, line0: int, line1: int) -> None:
        stack: list[tuple[ast.AST, symtable.SymbolTable | None, tuple]] = [
            (tree, self.top, (self.top,))]
        while stack:
            node, table, chain = stack.pop()
            lineno = getattr(node, "lineno", None)
            if lineno is not None:
                end = getattr(node, "end_lineno", None) or lineno
                for deco in getattr(node, "decorator_list", ()):
                    lineno = min(lineno, deco.lineno)
                if end < line0 or lineno > line1:
                    continue
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    self.names[(node.lineno, node.col_offset)] = (table, chain)
                continue
            parts = _scope_parts(node)
            if parts is None:
                stack.extend((c, table, chain) for c in ast.iter_child_nodes(node))
                continue
            outside, inside = parts
            inner = self._child(table, node)
            stack.extend((c, table, chain) for c in outside)
            inner_chain = chain if inner is None or inner is table else chain + (inner,)
            stack.extend((c, inner, inner_chain) for c in inside)

    def _child(self, table: symtable.SymbolTable | None,
               node: ast.AST) -> symtable.SymbolTable | None:
        """The table of the scope `node` opens inside `table` (None: unknown or ambiguous)."""
        if table is None or getattr(node, "type_params", None):
            return None  # PEP 695 scopes in between: not mapped
        if isinstance(node, ast.ClassDef):
            kind, name = "class", node.name
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kind, name = "function", node.name
        else:
            kind, name = "function", _SCOPE_NAMES[type(node)]
        hits = [c for c in table.get_children()
                if c.get_lineno() + self.shift == node.lineno and c.get_name() == name]
        if len(hits) == 1:
            return hits[0] if hits[0].get_type() == kind else None
        if not hits and _INLINED_COMPREHENSIONS and name in ("listcomp", "setcomp", "dictcomp") \
                and table.get_type() != "class":
            return table  # inlined: its names live in the enclosing table
        return None

    # ------------------------------------------------------------------ resolution

    def resolves(self, node: ast.Name) -> bool | None:
        """Whether the name read at `node` is bound where it is read; None when unknown."""
        table, _ = self.names.get((node.lineno, node.col_offset), (None, ()))
        name = node.id
        if table is None or name not in table.get_identifiers():
            return None  # e.g. annotations under `from __future__ import annotations`
        if table is self.top:
            return self._outside(name, own=True)
        sym = table.lookup(name)
        if sym.is_local() or sym.is_free():
            return True
        if sym.is_declared_global():
            return name in self.module_bound
        return self._outside(name, own=False)  # global: bound by no function of the source

    def _outside(self, name: str, own: bool) -> bool:
        """Whether `name`, left global by the parsed source, is bound around it. `own`: it is
        read at the source's top level, i.e. in the scope around a nested block itself (which
        may be a class body); else class scopes are skipped."""
        for i, table in enumerate(reversed(self.outer)):
            if table.get_type() == "class" and not (own and i == 0):
                continue
            if i == 0 and name in self.top_bound:
                return True
            if name in table.get_identifiers():
                sym = table.lookup(name)
                if sym.is_local() or sym.is_free():
                    return True
                if sym.is_global():
                    break  # no enclosing function binds it
        return name in self.module_bound

    def _tables_out(self, node: ast.Name) -> list[tuple[symtable.SymbolTable, bool]]:
        """(table, visible) from the scope of `node` outwards, module excluded."""
        table, chain = self.names[(node.lineno, node.col_offset)]
        out = []
        for t in reversed(chain):
            if t is self.top:
                break
            out.append((t, t is table or t.get_type() != "class"))
        top_level = table is self.top
        for i, t in enumerate(reversed(self.outer)):
            out.append((t, t.get_type() != "class" or (top_level and i == 0)))
        return out

    def visible(self, node: ast.Name) -> set[str]:
        """Names bound where `node` is read (for close matches)."""
        names = set(self.module_bound) | self.top_bound
        for t, visible in self._tables_out(node):
            if visible:
                names.update(n for n in t.get_identifiers()
                             if (s := t.lookup(n)).is_local() or s.is_free())
        return names

    def class_attribute(self, node: ast.Name) -> str | None:
        """A hint when the unresolved name is an attribute of a class whose method reads it."""
        tables = self._tables_out(node)
        for i, (t, visible) in enumerate(tables):
            if visible or node.id not in t.get_identifiers() or not t.lookup(node.id).is_local():
                continue
            method = tables[i - 1][0] if i > 0 else None
            params = method.get_parameters() if isinstance(method, symtable.Function) else ()
            recv = params[0] if params and params[0] in ("self", "cls") else t.get_name()
            return f"did you mean {recv}.{node.id}?"
        return None


def _scope_parts(node: ast.AST) -> tuple[list[ast.AST], list[ast.AST]] | None:
    """(parts evaluated in the enclosing scope, parts in the scope `node` opens); None when
    `node` opens no scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        outside: list[ast.AST] = list(args.defaults) + [d for d in args.kw_defaults if d]
        if not isinstance(node, ast.Lambda):
            outside += node.decorator_list
            every = args.posonlyargs + args.args + args.kwonlyargs + [
                a for a in (args.vararg, args.kwarg) if a is not None]
            outside += [a.annotation for a in every if a.annotation is not None]
            if node.returns is not None:
                outside.append(node.returns)
            return outside, list(node.body)
        return outside, [node.body]
    if isinstance(node, ast.ClassDef):
        return node.decorator_list + node.bases + list(node.keywords), list(node.body)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        first = node.generators[0]
        inside: list[ast.AST] = [node.key, node.value] if isinstance(node, ast.DictComp) \
            else [node.elt]
        inside += [first.target, *first.ifs, *node.generators[1:]]
        return [first.iter], inside
    return None


def _close_matches(name: str, names: set[str]) -> list[str]:
    import difflib

    pool = sorted(n for n in names if not n.startswith("__"))
    return difflib.get_close_matches(name, pool, n=3, cutoff=0.75)


# --------------------------------------------------------------------------- jedi-based checks


def _semantic(nodes: list[ast.AST], new: str, text: str, span: tuple[int, int],
              lines: _LineIndex, path: str | None, workspace: str | None,
              expected: holes.ExpectedType | None) -> list[CheckError]:
    attrs = []
    for node in nodes:
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            end = lines.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
            attr_start = end - len(node.attr)
            if span[0] <= attr_start < span[1]:
                attrs.append(node)
    calls = [n for n in nodes if isinstance(n, ast.Call) and any(
        k.arg and span[0] <= lines.offset(k.lineno, k.col_offset) < span[1] for k in n.keywords)]
    mismatch_expr = _hole_expression(nodes, new, span, lines, expected)
    if not attrs and not calls and mismatch_expr is None:
        return []
    an = holes._Analysis(new, span[0], path, workspace)
    errors: list[CheckError] = []
    for node in sorted(attrs, key=lambda n: (n.lineno, n.col_offset)):
        err = _check_attribute(an, node, lines, text, span)
        if err is not None:
            errors.append(err)
    for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
        errors.extend(_check_keywords(an, node, lines, new))
    if mismatch_expr is not None and not errors:
        err = _check_type(an, mismatch_expr, lines, expected)
        if err is not None:
            errors.append(err)
    return errors


def _infer_expr(an: holes._Analysis, node: ast.expr, lines: _LineIndex) -> list | None:
    """jedi's values for a name, attribute or call expression of the spliced document (None
    when unknown or when the expression is rooted in third-party code: see holes._safe_at)."""
    root, below = node, None
    while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
        below = root
        root = root.func if isinstance(root, ast.Call) else root.value
    if isinstance(root, ast.Name) and (root.id in an.tainted or (
            root.id == "self" and isinstance(below, ast.Attribute)
            and f"self.{below.attr}" in an.tainted)):
        return None
    try:
        if isinstance(node, ast.Name):
            return an.cur.script.infer(node.lineno, lines.char_col(node.lineno, node.col_offset))
        if isinstance(node, ast.Attribute):
            line = node.end_lineno or node.lineno
            col = lines.char_col(line, node.end_col_offset or 0) - len(node.attr)
            return an.cur.script.infer(line, col)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            callees = _infer_expr(an, node.func, lines)
            if not callees:
                return None
            out = []
            for d in callees:
                if d.type == "class":
                    out.append(d)  # marked below as an instance of that class
                elif d.type == "function":
                    out.extend(d.execute())
                else:
                    return None
            return [_Instance(d) if d.type == "class" else d for d in out]
    except Exception:  # jedi raises assorted errors on odd code
        return None
    return None


class _Instance:
    """An instance of the class jedi Name `cls` (what calling the class gives)."""

    type = "instance"

    def __init__(self, cls) -> None:
        self.cls = cls
        self.name = cls.name
        self.full_name = cls.full_name
        self.module_path = cls.module_path
        self.module_name = cls.module_name
        self.line = cls.line
        self.column = cls.column


def _check_attribute(an: holes._Analysis, node: ast.Attribute, lines: _LineIndex, text: str,
                     span: tuple[int, int]) -> CheckError | None:
    values = _infer_expr(an, node.value, lines)
    if not values:
        return None
    owners: list[str] = []
    module_texts: list[str] = []
    values = [d for d in values if d.full_name not in ("builtins.NoneType", "types.NoneType")]
    if not values:  # only None: the attribute fails at run time, but narrowing may differ
        return None
    for d in values:
        path = str(d.module_path) if d.module_path else None
        if not an.is_user(path, d.module_name):
            return None
        if d.type == "module":
            mod = an.mod(path)
            if mod is None or re.search(r"^def __getattr__\b", mod.code, re.M):
                return None
            if path and path.endswith("__init__.py"):
                return None  # packages: submodules are attributes too
            module_texts.append(mod.code)
            owners.append(f"module '{d.name}'")
            continue
        if d.type not in ("instance", "class"):
            return None
        ref = holes._ref_from_name(an, d)
        if ref is None or not ref.user:
            return None
        closed = _closed_class(an, ref, 0)
        if closed is None:
            return None
        module_texts.extend(closed)
        owners.append(f"'{ref.name}'" if d.type == "instance" else f"class '{ref.name}'")
    line = node.end_lineno or node.lineno
    col = lines.char_col(line, node.end_col_offset or 0) - len(node.attr)
    try:
        names = {c.name for c in an.cur.script.complete(line, col)}
    except Exception:
        return None
    attr = node.attr
    if attr in names:
        return None
    word = re.compile(rf"\b{re.escape(attr)}\b")
    outside = text  # the document without the suggestion
    if word.search(outside) or any(word.search(t) for t in module_texts):
        return None
    close = _close_matches(attr, {n for n in names if not n.startswith("_")})
    return CheckError("unknown-attribute",
                      f"{' | '.join(sorted(set(owners)))} has no attribute '{attr}'", line, col,
                      f"did you mean {', '.join(close)}?" if close else None)


def _check_keywords(an: holes._Analysis, node: ast.Call, lines: _LineIndex,
                    new: str) -> list[CheckError]:
    """Keyword arguments a workspace function or class (dataclass or own `__init__`) does not
    accept; nothing when it takes `**kwargs` or is decorated."""
    callees = _infer_expr(an, node.func, lines)
    if not callees or len(callees) != 1:
        return []
    d = callees[0]
    d = d.cls if isinstance(d, _Instance) else d
    if d.full_name == "dataclasses.replace" and node.args:
        return _check_replace(an, node, lines)
    path = str(d.module_path) if d.module_path else None
    if d.type not in ("class", "function") or not an.is_user(path, d.module_name):
        return []
    mod = an.mod(path)
    leaf = mod.leaf_at(d.line, d.column) if mod is not None and d.line else None
    definition = leaf.parent if leaf is not None else None
    if definition is None or definition.type not in ("classdef", "funcdef"):
        return []
    decorators = [x.get_code(include_prefix=False).strip() for x in definition.get_decorators()]
    if definition.type == "funcdef":
        if any(x not in ("@staticmethod", "@classmethod") for x in decorators):
            return []
    else:
        body = definition.get_code(include_prefix=False)
        own_init = re.search(r"\bdef\s+__init__\s*\(", body) is not None
        is_dataclass = any(re.fullmatch(r"@(dataclasses\.)?dataclass(\(.*\))?", x, re.S)
                           for x in decorators)
        if not (own_init or is_dataclass) or len(decorators) > int(is_dataclass) or \
                re.search(r"\bmetaclass\s*=|__new__|__init_subclass__", body):
            return []
        if is_dataclass and definition.get_super_arglist() is not None:
            return []  # inherited fields: jedi's view of them is not trusted here
    func_end = lines.offset(node.func.end_lineno or node.func.lineno,
                            node.func.end_col_offset or 0)
    paren = new.find("(", func_end)
    if paren < 0:
        return []
    line, col = lines.position(paren + 1)
    try:
        sigs = an.cur.script.get_signatures(line, col)
    except Exception:
        return []
    if not sigs:
        return []
    names: set[str] = set()
    for sig in sigs:
        for p in sig.params:
            if p.kind.name == "VAR_KEYWORD":
                return []
            if p.kind.name != "POSITIONAL_ONLY":
                names.add(p.name)
    errors = []
    for k in node.keywords:
        if k.arg and k.arg not in names:
            close = _close_matches(k.arg, names)
            errors.append(CheckError(
                "unknown-argument", f"{d.name}() got an unexpected keyword argument '{k.arg}'",
                k.lineno, lines.char_col(k.lineno, k.col_offset),
                f"did you mean {', '.join(close)}?" if close else None))
    return errors


def _check_replace(an: holes._Analysis, node: ast.Call, lines: _LineIndex) -> list[CheckError]:
    """`dataclasses.replace(obj, name=...)`: every name must be a field of obj's dataclass."""
    values = _infer_expr(an, node.args[0], lines)
    if not values or len(values) != 1 or values[0].type != "instance":
        return []
    ref = holes._ref_from_name(an, values[0])
    if ref is None or not ref.user:
        return []
    _, cls = holes._class_node(an, ref)
    if cls is None or not any("dataclass" in x.get_code() for x in cls.get_decorators()):
        return []
    errors = []
    for k in node.keywords:
        if k.arg and holes._field_annotation(an, ref, k.arg) is None:
            close = _close_matches(k.arg, set(_field_names(cls)))
            errors.append(CheckError(
                "unknown-argument", f"'{ref.name}' has no field '{k.arg}' (replace)",
                k.lineno, lines.char_col(k.lineno, k.col_offset),
                f"did you mean {', '.join(close)}?" if close else None))
    if errors and cls.get_super_arglist() is not None:
        return []  # fields may come from bases jedi could not see; stay quiet
    return errors


def _field_names(cls) -> list[str]:
    out = []
    for stmt in holes._class_body(cls):
        if stmt.type == "expr_stmt" and holes._annassign(stmt) is not None and \
                stmt.children[0].type == "name":
            out.append(stmt.children[0].value)
    return out


def _closed_class(an: holes._Analysis, ref: holes.TypeRef, depth: int) -> list[str] | None:
    """Module texts of the class and its bases when all of its members are statically known."""
    if depth > 6:
        return None
    mod, cls = holes._class_node(an, ref)
    if cls is None:
        return None
    body = cls.get_code(include_prefix=False)
    if re.search(r"\bdef\s+(__getattr__|__getattribute__)\b|\bsetattr\(|__dict__|__slots__",
                 body):
        return None
    texts = [mod.code]
    arglist = cls.get_super_arglist()
    if arglist is None:
        return texts
    args = arglist.children if arglist.type == "arglist" else [arglist]
    for arg in args:
        if arg.type == "operator":
            continue
        if arg.type == "argument":
            return None  # metaclass=... or other keywords: dynamic
        code = arg.get_code(include_prefix=False).strip()
        base_name = re.sub(r"\[.*$", "", code, flags=re.S).split(".")[-1]
        refs = holes._resolve_node_names(an, mod, arg)[:1]
        if base_name in _OK_BASES and not (refs and refs[0].user):
            continue
        if not refs or not refs[0].user or refs[0].kind != "class":
            return None
        sub = _closed_class(an, refs[0], depth + 1)
        if sub is None:
            return None
        texts.extend(sub)
    return texts


def _hole_expression(nodes: list[ast.AST], new: str, span: tuple[int, int], lines: _LineIndex,
                     expected: holes.ExpectedType | None) -> ast.expr | None:
    """The expression that fills the hole when it is exactly the value the expected type is
    about (return value, annotated value, argument, keyword value, default)."""
    if expected is None or not expected.known or expected.source not in (
            "return", "annassign", "param", "keyword", "default", "assign"):
        return None
    line_start = new.rfind("\n", 0, span[0]) + 1
    m = re.search(r"[\w.]*$", new[line_start:span[0]])
    hole_start = span[0] - (len(m.group()) if m else 0)
    best = None
    for node in nodes:
        value = None
        if isinstance(node, ast.Return) and expected.source == "return":
            value = node.value
        elif isinstance(node, (ast.AnnAssign, ast.Assign, ast.AugAssign)) and \
                expected.source in ("annassign", "assign"):
            value = node.value
        elif isinstance(node, ast.Call) and expected.source in ("param", "keyword"):
            for v in list(node.args) + [k.value for k in node.keywords]:
                if lines.offset(v.lineno, v.col_offset) == hole_start:
                    value = v
        elif isinstance(node, ast.arguments) and expected.source == "default":
            for v in list(node.defaults) + [d for d in node.kw_defaults if d is not None]:
                if lines.offset(v.lineno, v.col_offset) == hole_start:
                    value = v
        if value is None or lines.offset(value.lineno, value.col_offset) != hole_start:
            continue
        end = lines.offset(value.end_lineno or value.lineno, value.end_col_offset or 0)
        if end < span[0] + len(new[span[0]:span[1]].rstrip()):
            continue  # the suggestion goes on after the expression: not the hole's value
        best = value
    return best


def _expected_classes(expected: holes.ExpectedType) -> set[str] | None:
    """Qualified names of the classes the expected type accepts, or None when it is abstract,
    generic or not fully resolved."""
    text = expected.type or ""
    try:
        node = holes._parse_expr(text).body
    except SyntaxError:
        return None
    out: set[str] = set()
    refs = {r.name: r for r in expected.refs}

    def add(n: ast.expr) -> bool:
        if isinstance(n, ast.Constant) and n.value is None:
            out.add("builtins.NoneType")
            return True
        if isinstance(n, ast.Name) or isinstance(n, ast.Attribute):
            name = n.id if isinstance(n, ast.Name) else n.attr
            if name in _ABSTRACT:
                return False
            if name in _CONTAINERS:
                out.add("builtins." + _CONTAINERS[name] if _CONTAINERS[name] != "deque"
                        else "collections.deque")
                return True
            ref = refs.get(name)
            if ref is None:
                if name in holes._BUILTIN_TYPES:
                    out.add("builtins." + name)
                    return True
                return False
            if ref.kind != "class":
                return False
            out.add(ref.qualname)
            return True
        if isinstance(n, ast.Subscript):
            head = n.value.id if isinstance(n.value, ast.Name) else (
                n.value.attr if isinstance(n.value, ast.Attribute) else "")
            parts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            if head == "Optional":
                out.add("builtins.NoneType")
                return all(add(p) for p in parts)
            if head == "Union":
                return all(add(p) for p in parts)
            if head in _CONTAINERS:
                return add(n.value)
            return False
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            return add(n.left) and add(n.right)
        return False

    return out if add(node) and out else None


def _check_type(an: holes._Analysis, expr: ast.expr, lines: _LineIndex,
                expected: holes.ExpectedType) -> CheckError | None:
    want = _expected_classes(expected)
    if not want:
        return None
    got = _literal_class(expr)
    if got is None:
        values = _infer_expr(an, expr, lines)
        if not values or any(d.type != "instance" for d in values):
            return None
        got_refs = []
        for d in values:
            ref = holes._ref_from_name(an, d)
            if ref is None:
                return None
            got_refs.append(ref)
        user_only = want <= ({r.qualname for r in expected.refs if r.user} | {_NONE})
        if any(_compatible(an, ref, want, 0, user_only) for ref in got_refs):
            return None
        got_names = sorted({r.name for r in got_refs})
    else:
        if got in want or any(w.split(".")[-1] in _PROMOTIONS.get(got.split(".")[-1], ())
                              for w in want):
            return None
        got_names = [got.split(".")[-1].replace("NoneType", "None")]
    line = expr.lineno
    return CheckError("type-mismatch",
                      f"expected {expected.type}, got {' | '.join(got_names)}", line,
                      lines.char_col(line, expr.col_offset))


def _literal_class(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant):
        value = expr.value
        if value is None:
            return "builtins.NoneType"
        if value is Ellipsis:
            return None
        return "builtins." + type(value).__name__
    if isinstance(expr, (ast.List, ast.ListComp)):
        return "builtins.list"
    if isinstance(expr, (ast.Dict, ast.DictComp)):
        return "builtins.dict"
    if isinstance(expr, (ast.Set, ast.SetComp)):
        return "builtins.set"
    if isinstance(expr, ast.Tuple):
        return "builtins.tuple"
    if isinstance(expr, ast.JoinedStr):
        return "builtins.str"
    return None


def _compatible(an: holes._Analysis, ref: holes.TypeRef, want: set[str], depth: int,
                user_only: bool) -> bool:
    if ref.qualname in want:
        return True
    name = ref.qualname.split(".")[-1]
    if ref.qualname.startswith("builtins."):
        if any(w.split(".")[-1] in _PROMOTIONS.get(name, ()) for w in want):
            return True
        builtin_type = getattr(builtins, name, None)
        for w in want:
            other = getattr(builtins, w.split(".")[-1], None) if w.startswith("builtins.") \
                else None
            if isinstance(builtin_type, type) and isinstance(other, type) and \
                    issubclass(builtin_type, other):
                return True
        return False
    if not ref.user:
        return True  # a library class: its hierarchy is not ours to judge
    if depth > 6:
        return True
    mod, cls = holes._class_node(an, ref)
    if cls is None:
        return True
    arglist = cls.get_super_arglist()
    if arglist is None:
        return False
    args = arglist.children if arglist.type == "arglist" else [arglist]
    for arg in args:
        if arg.type in ("operator", "argument"):
            continue
        refs = holes._resolve_node_names(an, mod, arg)[:1]
        if not refs:
            return True  # an unresolved base could be anything
        base = refs[0]
        if not base.user and not base.qualname.startswith("builtins.") and user_only:
            continue  # a library base cannot derive from a workspace class
        if _compatible(an, base, want, depth + 1, user_only):
            return True
    return False
