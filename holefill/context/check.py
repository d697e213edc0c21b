"""Error rounds: check a suggestion the way a compiler would, before it is shown.

`check_suggestion(text, offset, suggestion, ...)` splices the suggestion into the document at the
cursor and reports, conservatively (a false error drops a good suggestion):

- `syntax`: the top-level block around the cursor (lines from the previous to the next statement
  at column 0) does not parse with the suggestion while it does with a neutral filler at the
  cursor ("", "...", "pass", "_"), so the suggestion is to blame. When that block cannot be cut
  out on its own, the whole file is judged the same way; when the document is already broken
  around the cursor, nothing is reported. The file itself is parsed once per document version
  (cached), so checking k drafts costs k block parses.
- `undefined-name`: a name the suggestion reads that is not a builtin and is bound nowhere in the
  spliced module (any scope: assignments, imports, definitions, parameters, loop/with/except/match
  targets, `global`). Off when the module star-imports, calls `globals()`/`locals()`/`vars()`
  or `exec`s code into its own namespace.
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
    tree, errors = _syntax(text, offset, suggestion, new, base)
    if errors or tree is None:
        return errors
    lines = _LineIndex(new)
    line0, line1 = lines.position(span[0])[0], lines.position(span[1])[0]
    nodes = list(_span_nodes(tree, line0, line1))
    if base.bound is not None:
        bound, dynamic = _bound_names(ast.walk(tree))
        if not (dynamic or base.dynamic):
            errors += _undefined(nodes, new, span, lines, base.bound | bound)
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
    bound, dynamic = _bound_names(ast.walk(tree)) if tree is not None else (None, False)
    region = None
    for start, end, header in _regions(text, offset):
        if tree is None and not header and not _DEF.match(text, start):
            continue  # a broken file: only a def/class region is cut out reliably enough
        if any(_parse(header + text[start:offset] + f + text[offset:end])[1] is None
               for f in fillers):
            region = (start, end, header)
            break
    base = _Baseline(bound=bound, dynamic=dynamic, region=region)
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


def _syntax(text: str, offset: int, suggestion: str, new: str,
            base: _Baseline) -> tuple[ast.Module | None, list[CheckError]]:
    """(tree of the spliced block or file, syntax errors). Line numbers are the document's."""
    if base.region is not None:
        start, end, header = base.region
        tree, err = _parse(header + text[start:offset] + suggestion + text[offset:end])
        shift = text.count("\n", 0, start) - header.count("\n")
        if err is not None and base.bound is not None:
            # confirm on the whole file: a region cut can split what the suggestion starts
            # (a decorator before the next top-level class)
            tree, err = _parse(new)
            return (tree, []) if err is None else (None, [_syntax_error(err)])
        if err is not None:
            e = _syntax_error(err)
            e.line += shift
            return None, [e]
        ast.increment_lineno(tree, shift)
        return tree, []
    if base.bound is not None:  # no region could be cut out, the file parses: judge the file
        tree, err = _parse(new)
        return (tree, []) if err is None else (None, [_syntax_error(err)])
    return None, []  # broken around the cursor already: nothing to judge


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


def _bound_names(nodes) -> tuple[set[str], bool]:
    """Names bound by the nodes (any scope), and whether names are bound dynamically."""
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
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif type(node).__name__ in ("TypeVar", "ParamSpec", "TypeVarTuple"):
            bound.add(getattr(node, "name", ""))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                (node.func.id in ("globals", "locals", "vars") and not node.args)
                or (node.func.id == "exec" and len(node.args) < 2)):
            dynamic = True  # names bound through the namespace dict or exec'd code
    return bound, dynamic


def _undefined(nodes: list[ast.AST], new: str, span: tuple[int, int], lines: _LineIndex,
               bound: set[str]) -> list[CheckError]:
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
        if name in bound or name in _BUILTIN_NAMES or name in _ALWAYS_DEFINED or name in reported:
            continue
        if start == span[0] and span[0] > 0 and (new[span[0] - 1].isalnum() or
                                                 new[span[0] - 1] == "_"):
            continue  # the cursor was inside the identifier: its start came from the document
        reported.add(name)
        close = _close_matches(name, bound | _BUILTIN_NAMES)
        errors.append(CheckError("undefined-name", f"name '{name}' is not defined",
                                 node.lineno, lines.char_col(node.lineno, node.col_offset),
                                 f"did you mean {', '.join(close)}?" if close else None))
    return errors


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
