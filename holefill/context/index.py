"""Tree-sitter project index of a workspace's Python files (LANCE, RESEARCH §5.3-5.4).

Per module: its classes, functions and methods with signatures (annotations included) and the
first docstring line, class attributes (class body and `self.x = ...`), base classes, the import
graph (absolute and relative imports, aliases, `from x import *`, `__all__`) and how often each
attribute name is used. Names resolve through the graph the way Python binds them, so
`__init__` re-exports and star imports lead to the defining module.

Nothing is imported or executed: files are only parsed. Bounded: files over MAX_FILE_BYTES,
binary files, .gitignored files and virtual environments are skipped; a build stops after
`max_files` files or `time_budget_s` seconds (`stats.truncated` says so). Parse trees are
dropped after extraction, so memory grows with the number of symbols, not with the source.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter as ts
import tree_sitter_python as tsp

MAX_FILE_BYTES = 1_000_000
MAX_FILES = 50_000
TIME_BUDGET_S = 120.0
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", "build", "dist", ".eggs"}
MAX_SIGNATURE_CHARS = 160

_LANG = ts.Language(tsp.language())
_USAGE = ts.Query(_LANG, "(attribute attribute: (identifier) @a)")
# `recv.name(...)` with a receiver other than self/cls: what callers outside a class call on it
_CALLED = ts.Query(_LANG, "(call function: (attribute object: (_) @o attribute: (identifier) @a))")
_NAMED_RECEIVERS = {"identifier", "attribute", "call", "subscript", "parenthesized_expression"}
_SELF_ATTR = ts.Query(
    _LANG, "(assignment left: (attribute object: (identifier) @o attribute: (identifier) @a))")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


@dataclass
class Symbol:
    qualname: str  # module.Class.method
    name: str
    kind: str  # module | class | function | method | attribute
    module: str
    signature: str  # compact, without `self`: "Class.method(a: int) -> str"
    doc: str  # first docstring line
    path: str
    line: int  # 1-based
    parent: str | None = None  # qualname of the class (methods, attributes) or module
    returns: str | None = None  # return annotation text, for correlation


@dataclass
class Import:
    module: str  # absolute module name (relative imports resolved)
    name: str | None  # imported name; None for `import x`; "*" for star imports
    alias: str  # the name it binds in the importing module
    line: int


@dataclass
class ModuleInfo:
    name: str
    path: str
    symbol: Symbol  # the module itself
    defs: dict[str, Symbol] = field(default_factory=dict)  # top-level functions and classes
    classes: dict[str, dict[str, Symbol]] = field(default_factory=dict)  # class qualname -> members
    bases: dict[str, list[str]] = field(default_factory=dict)  # class qualname -> base texts
    imports: list[Import] = field(default_factory=list)
    all_names: list[str] | None = None
    usage: Counter = field(default_factory=Counter)  # attribute name -> uses in this file
    calls: Counter = field(default_factory=Counter)  # name -> `x.name(` calls, x not self/cls
    # (receiver's last name, name) -> calls: `a.console.print(` counts ("console", "print")
    receiver_calls: Counter = field(default_factory=Counter)


@dataclass
class IndexStats:
    files: int = 0
    symbols: int = 0
    skipped_binary: int = 0
    skipped_large: int = 0
    seconds: float = 0.0
    truncated: bool = False


# --------------------------------------------------------------------------- file discovery


def python_files(root: str | Path) -> list[str]:
    """The .py files under `root` that git would not ignore. In a git work tree git itself
    answers (`ls-files`, every .gitignore level honoured); elsewhere the .gitignore files are
    read with pathspec. Virtual environments and caches are always skipped."""
    root = str(Path(root).resolve())
    listed = _git_files(root)
    if listed is not None:
        return [p for p in listed if not _skipped_dir(os.path.relpath(p, root))]
    return _walk_files(root)


def _skipped_dir(rel: str) -> bool:
    return any(part in SKIP_DIRS for part in Path(rel).parts[:-1])


def _git_files(root: str) -> list[str] | None:
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard",
             "--", "*.py"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    if not out.stdout:  # a workspace that its enclosing repository ignores (e.g. site-packages)
        ignored = subprocess.run(["git", "-C", root, "check-ignore", "-q", root],
                                 capture_output=True, timeout=30, check=False)
        if ignored.returncode == 0:
            return None
    files = [os.path.join(root, p) for p in out.stdout.decode("utf-8", "replace").split("\0") if p]
    return sorted(p for p in files if os.path.isfile(p))


def _walk_files(root: str) -> list[str]:
    import pathspec

    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "pyvenv.cfg" in filenames:  # a virtual environment
            dirnames[:] = []
            continue
        if ".gitignore" in filenames:
            try:
                lines = Path(dirpath, ".gitignore").read_text(errors="replace").splitlines()
                specs.append((dirpath, pathspec.GitIgnoreSpec.from_lines(lines)))
            except OSError:
                pass

        def ignored(path: str, is_dir: bool) -> bool:
            for base, spec in specs:
                if path.startswith(base + os.sep):
                    rel = os.path.relpath(path, base) + ("/" if is_dir else "")
                    if spec.match_file(rel):
                        return True
            return False

        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not ignored(os.path.join(dirpath, d), True))
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.endswith(".py") and not ignored(os.path.join(dirpath, f), False)]
    return found


def module_name(path: str | Path) -> tuple[str, bool]:
    """Dotted module name of a file, from the packages (`__init__.py`) that contain it, and
    whether it is a package's `__init__`."""
    p = Path(path)
    is_package = p.name == "__init__.py"
    parts = [] if is_package else [p.stem]
    d = p.parent
    while (d / "__init__.py").is_file() and d.parent != d:
        parts.insert(0, d.name)
        d = d.parent
    if not parts:  # an __init__.py outside any package: name it after its directory
        parts = [p.parent.name]
    return ".".join(parts), is_package


# --------------------------------------------------------------------------- extraction


def _text(node) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def _compact(text: str) -> str:
    return " ".join(text.split())


def _docstring(body) -> str:
    if body is None or not body.named_children:
        return ""
    first = body.named_children[0]
    if first.type != "expression_statement" or not first.named_children:
        return ""
    string = first.named_children[0]
    if string.type != "string":
        return ""
    content = "".join(_text(c) for c in string.named_children if c.type == "string_content")
    for line in content.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _params(node, drop_first: bool) -> str:
    params = node.child_by_field_name("parameters")
    if params is None:
        return "()"
    items = [_compact(_text(c)) for c in params.named_children if c.type != "comment"]
    if drop_first and items and items[0] in ("self", "cls"):
        items = items[1:]
    return "(" + ", ".join(items) + ")"


def _resolve_relative(module: str, is_package: bool, level: int, target: str) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)] if level - 1 <= len(package) else []
    return ".".join([*package, *([target] if target else [])])


class _Extractor:
    def __init__(self, info: ModuleInfo, is_package: bool) -> None:
        self.info = info
        self.is_package = is_package

    def block(self, node, cls: str | None) -> None:
        for child in node.named_children:
            self.statement(child, cls)

    def statement(self, node, cls: str | None) -> None:
        kind = node.type
        if kind == "decorated_definition":
            inner = node.child_by_field_name("definition")
            if inner is not None:
                decorators = [_text(c) for c in node.named_children if c.type == "decorator"]
                self.definition(inner, cls, decorators)
        elif kind in ("function_definition", "class_definition"):
            self.definition(node, cls, [])
        elif kind in ("import_statement", "import_from_statement") and cls is None:
            self.imports(node)
        elif kind == "expression_statement":
            self.assignment(node, cls)
        elif kind in ("if_statement", "try_statement", "with_statement", "else_clause",
                      "elif_clause", "except_clause", "finally_clause", "block"):
            for child in node.named_children:  # conditional definitions and imports
                if child.type == "block":
                    self.block(child, cls)
                elif child.type in ("else_clause", "elif_clause", "except_clause",
                                    "finally_clause"):
                    self.statement(child, cls)

    def definition(self, node, cls: str | None, decorators: list[str]) -> None:
        name = _text(node.child_by_field_name("name"))
        if not name:
            return
        info = self.info
        body = node.child_by_field_name("body")
        line = node.start_point[0] + 1
        owner = cls or info.name
        qual = f"{owner}.{name}"
        if node.type == "class_definition":
            sup = node.child_by_field_name("superclasses")
            bases = [_compact(_text(c)) for c in sup.named_children
                     if c.type in ("identifier", "attribute")] if sup is not None else []
            sup_text = _compact(_text(sup)) if sup is not None else ""
            sym = Symbol(qual, name, "class", info.name, f"class {name}{sup_text}",
                         _docstring(body), info.path, line, parent=owner)
            info.classes[qual] = {}
            info.bases[qual] = bases
            if cls is not None:
                info.classes[cls][name] = sym
            else:
                info.defs[name] = sym
            if body is not None:
                self.block(body, qual)
            return
        ret = node.child_by_field_name("return_type")
        returns = _compact(_text(ret)) if ret is not None else None
        is_method = cls is not None and "@staticmethod" not in decorators
        signature = (cls.rsplit(".", 1)[-1] + "." if cls else "") + name + _params(node, is_method)
        if returns:
            signature += f" -> {returns}"
        if len(signature) > MAX_SIGNATURE_CHARS:
            signature = signature[: MAX_SIGNATURE_CHARS - 3] + "..."
        kind = "method" if cls is not None else "function"
        if "@property" in decorators or any(d.endswith(".setter") for d in decorators):
            kind = "property"
        sym = Symbol(qual, name, kind, info.name, signature, _docstring(body), info.path, line,
                     parent=owner, returns=returns)
        if cls is not None:
            members = info.classes[cls]
            if name not in members or kind != "property":  # keep the getter's signature
                members[name] = sym
        else:
            info.defs[name] = sym

    def assignment(self, node, cls: str | None) -> None:
        for child in node.named_children:
            if child.type != "assignment":
                continue
            left = child.child_by_field_name("left")
            if left is None or left.type != "identifier":
                continue
            name = _text(left)
            if cls is None and name == "__all__":
                right = child.child_by_field_name("right")
                if right is not None and right.type in ("list", "tuple"):
                    self.info.all_names = [
                        _text(s).strip("\"'") for s in right.named_children if s.type == "string"]
            elif cls is not None and name not in self.info.classes[cls]:
                ann = child.child_by_field_name("type")
                sig = cls.rsplit(".", 1)[-1] + "." + name + (f": {_compact(_text(ann))}"
                                                             if ann is not None else "")
                self.info.classes[cls][name] = Symbol(
                    f"{cls}.{name}", name, "attribute", self.info.name, sig, "", self.info.path,
                    child.start_point[0] + 1, parent=cls)

    def imports(self, node) -> None:
        info, line = self.info, node.start_point[0] + 1
        if node.type == "import_statement":
            for item in node.named_children:
                if item.type == "aliased_import":
                    target = _text(item.child_by_field_name("name"))
                    info.imports.append(Import(target, None,
                                               _text(item.child_by_field_name("alias")), line))
                elif item.type == "dotted_name":
                    target = _text(item)
                    # `import a.b` binds `a`; the submodule is reached through it
                    info.imports.append(Import(target.split(".")[0], None,
                                               target.split(".")[0], line))
            return
        mod_node = node.child_by_field_name("module_name")
        if mod_node is None:
            return
        if mod_node.type == "relative_import":
            prefix = next((c for c in mod_node.children if c.type == "import_prefix"), None)
            level = len(_text(prefix).strip()) if prefix is not None else 1
            dotted = next((c for c in mod_node.named_children if c.type == "dotted_name"), None)
            module = _resolve_relative(info.name, self.is_package, level, _text(dotted))
        else:
            module = _text(mod_node)
        for item in node.named_children:
            if item == mod_node:
                continue
            if item.type == "wildcard_import":
                info.imports.append(Import(module, "*", "*", line))
            elif item.type == "aliased_import":
                info.imports.append(Import(module, _text(item.child_by_field_name("name")),
                                           _text(item.child_by_field_name("alias")), line))
            elif item.type == "dotted_name":
                name = _text(item)
                info.imports.append(Import(module, name, name, line))


def parse_module(text: str, path: str, name: str | None = None,
                 is_package: bool | None = None) -> ModuleInfo:
    """Index records of one file's text."""
    if name is None or is_package is None:
        name, is_package = module_name(path)
    data = text.encode("utf-8", "replace")
    tree = ts.Parser(_LANG).parse(data)
    root = tree.root_node
    doc = _docstring(root)
    mod_sym = Symbol(name, name.rsplit(".", 1)[-1], "module", name, f"module {name}", doc, path, 1)
    info = ModuleInfo(name=name, path=path, symbol=mod_sym)
    _Extractor(info, is_package).block(root, None)
    usage = ts.QueryCursor(_USAGE).captures(root).get("a", [])
    info.usage = Counter(_text(n) for n in usage)
    info.calls, info.receiver_calls = called_names(root)
    _self_attributes(info, root)
    return info


def receiver_key(receiver: str) -> str:
    """The part of a receiver expression that names it: `self.console` -> "console",
    `super()` -> "super()"."""
    return "".join(receiver.split()).rsplit(".", 1)[-1]


def called_names(root) -> tuple[Counter, Counter]:
    """How often each attribute name is called as `recv.name(...)` with a receiver other than
    `self`/`cls` (the calls a class's users make: its own internal calls say less about what
    code outside it, where completion after `recv.` happens, calls); and the same per
    (receiver_key, name)."""
    out: Counter = Counter()
    by_receiver: Counter = Counter()
    for attr in ts.QueryCursor(_CALLED).captures(root).get("a", []):
        obj = attr.parent.child_by_field_name("object") if attr.parent is not None else None
        if obj is None or _text(obj) in ("self", "cls") or obj.type not in _NAMED_RECEIVERS:
            continue  # literals (`", ".join(`, `"{}".format(`) are builtin types, not ours
        name = _text(attr)
        out[name] += 1
        if obj.type in ("identifier", "attribute"):
            by_receiver[(receiver_key(_text(obj)), name)] += 1
        elif obj.type == "call" and _text(obj.child_by_field_name("function")) == "super":
            by_receiver[("super()", name)] += 1  # `super(Cls, self).name(`: one key
    return out, by_receiver


def _self_attributes(info: ModuleInfo, root) -> None:
    """`self.x = ...` in a method body makes `x` an attribute of the enclosing class."""
    if not info.classes:
        return
    caps = ts.QueryCursor(_SELF_ATTR).captures(root)
    for obj, attr in zip(caps.get("o", []), caps.get("a", []), strict=False):
        if _text(obj) != "self":
            continue
        node, chain = attr.parent, []
        while node is not None:  # innermost class first
            if node.type == "class_definition":
                chain.append(_text(node.child_by_field_name("name")))
            node = node.parent
        if not chain:
            continue
        qual = ".".join([info.name, *reversed(chain)])
        members = info.classes.get(qual)
        name = _text(attr)
        if members is not None and name not in members:
            members[name] = Symbol(f"{qual}.{name}", name, "attribute", info.name,
                                   f"{chain[0]}.{name}", "", info.path, attr.start_point[0] + 1,
                                   parent=qual)


# --------------------------------------------------------------------------- the index


class ApiIndex:
    """The workspace's modules, kept current by `update_file` / `remove_file`. Thread-safe:
    the server updates it on its event loop while completions read it on the engine thread."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = str(Path(root).resolve()) if root else None
        self.modules: dict[str, ModuleInfo] = {}
        self.by_path: dict[str, str] = {}
        self.edited: dict[str, float] = {}  # path -> time of the last edit (recency ranking)
        self.stats = IndexStats()
        self._lock = threading.RLock()
        # workspace sums of a ModuleInfo counter field ("usage", "calls", "receiver_calls"),
        # built on first read, then kept current per edited file (_changed)
        self._totals: dict[str, Counter] = {}
        self.version = 0  # bumped on every change (search caches key on it)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, root: str | Path, max_files: int = MAX_FILES,
              time_budget_s: float = TIME_BUDGET_S,
              progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> ApiIndex:
        index = cls(root)
        index.add_files(python_files(root), max_files, time_budget_s, progress, cancelled)
        return index

    def add_files(self, paths: Iterable[str], max_files: int = MAX_FILES,
                  time_budget_s: float = TIME_BUDGET_S,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> None:
        paths = list(paths)
        start = time.perf_counter()
        for i, path in enumerate(paths):
            if (i >= max_files or time.perf_counter() - start > time_budget_s
                    or (cancelled is not None and cancelled())):
                self.stats.truncated = True
                break
            self.update_file(path, edited=False)
            if progress is not None and (i % 50 == 0 or i == len(paths) - 1):
                progress(i + 1, len(paths))
        self.stats.seconds += time.perf_counter() - start

    def update_file(self, path: str | Path, text: str | None = None, edited: bool = True) -> bool:
        """(Re)index one file, from `text` (an editor buffer) or from disk. Returns False (and
        forgets the file) when it is missing, binary or too large."""
        path = str(Path(path).resolve())
        if text is None:
            try:
                if os.path.getsize(path) > MAX_FILE_BYTES:
                    self.stats.skipped_large += 1
                    self.remove_file(path)
                    return False
                data = Path(path).read_bytes()
            except OSError:
                self.remove_file(path)
                return False
            if b"\0" in data[:8192]:
                self.stats.skipped_binary += 1
                self.remove_file(path)
                return False
            text = data.decode("utf-8", "replace")
        elif len(text) > MAX_FILE_BYTES:
            self.remove_file(path)
            return False
        info = parse_module(text, path)
        with self._lock:
            old = self.by_path.get(path)
            removed = []
            if old is not None and old != info.name and self.modules.get(old, None) is not None \
                    and self.modules[old].path == path:
                removed.append(self.modules.pop(old))
            if info.name in self.modules:
                removed.append(self.modules[info.name])
            self.modules[info.name] = info
            self.by_path[path] = info.name
            if edited:
                self.edited[path] = time.time()
            self._changed(removed, info)
        return True

    def remove_file(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        with self._lock:
            name = self.by_path.pop(path, None)
            removed = []
            if name is not None and name in self.modules and self.modules[name].path == path:
                removed.append(self.modules.pop(name))
            self.edited.pop(path, None)
            self._changed(removed, None)

    def _changed(self, removed: list[ModuleInfo], added: ModuleInfo | None) -> None:
        # the workspace totals follow the edit (one file's counts, not a sum over all files:
        # a completion after each edit reads them)
        for attr, total in self._totals.items():
            for info in removed:
                counts = getattr(info, attr)
                total.subtract(counts)
                for key in counts:
                    if total[key] <= 0:
                        del total[key]
            if added is not None:
                total.update(getattr(added, attr))
        self.version += 1
        self.stats.files = len(self.modules)

    def contains(self, path: str | Path | None) -> bool:
        if path is None:
            return False
        return str(Path(path).resolve()) in self.by_path

    def module_at(self, path: str | Path) -> ModuleInfo | None:
        with self._lock:
            name = self.by_path.get(str(Path(path).resolve()))
            return self.modules.get(name) if name else None

    # -- queries -----------------------------------------------------------------------------

    def _total(self, attr: str) -> Counter:
        """ModuleInfo.<attr> summed over the workspace."""
        with self._lock:
            if attr not in self._totals:
                total: Counter = Counter()
                for info in self.modules.values():
                    total.update(getattr(info, attr))
                self._totals[attr] = total
            return self._totals[attr]

    def usage(self) -> Counter:
        """Uses of each attribute name across the workspace (usage-frequency ranking)."""
        return self._total("usage")

    def call_usage(self) -> Counter:
        """`recv.name(` calls of each name across the workspace, receivers other than
        self/cls (ModuleInfo.calls summed; the name prior of api.correlate)."""
        return self._total("calls")

    def receiver_call_usage(self) -> Counter:
        """Calls per (receiver_key, name) across the workspace (ModuleInfo.receiver_calls)."""
        return self._total("receiver_calls")

    def symbols(self) -> list[Symbol]:
        """Every class, function and method (the search corpus)."""
        with self._lock:
            out: list[Symbol] = []
            for info in self.modules.values():
                out += info.defs.values()
                for members in info.classes.values():
                    out += [s for s in members.values() if s.kind != "attribute"]
            self.stats.symbols = len(out)
            return out

    def symbol(self, qualname: str) -> Symbol | None:
        with self._lock:
            if qualname in self.modules:
                return self.modules[qualname].symbol
            owner, _, name = qualname.rpartition(".")
            if owner in self.modules:
                return self.modules[owner].defs.get(name)
            info = self._module_of_class(owner)
            return info.classes[owner].get(name) if info is not None else None

    def _module_of_class(self, qual: str) -> ModuleInfo | None:
        parts = qual.split(".")
        for i in range(len(parts) - 1, 0, -1):
            info = self.modules.get(".".join(parts[:i]))
            if info is not None and qual in info.classes:
                return info
        return None

    def resolve(self, module: str | ModuleInfo, name: str, _seen: set | None = None
                ) -> Symbol | None:
        """What `name` is bound to in `module` (a name, or the records of a buffer that is not
        indexed): a class, function or module of the workspace, following imports, re-exports
        and star imports; None when it is not local."""
        seen = _seen if _seen is not None else set()
        key = module if isinstance(module, str) else module.name
        if (key, name) in seen or len(seen) > 64:
            return None
        seen.add((key, name))
        with self._lock:
            info = self.modules.get(module) if isinstance(module, str) else module
            if info is None:
                sub = self.modules.get(f"{key}.{name}")
                return sub.symbol if sub is not None else None
            if name in info.defs:
                return info.defs[name]
            for imp in reversed(info.imports):
                if imp.alias != name:
                    continue
                if imp.name is None:
                    target = self.modules.get(imp.module)
                    return target.symbol if target is not None else None
                found = self.resolve(imp.module, imp.name, seen)
                if found is not None:
                    return found
                sub = self.modules.get(f"{imp.module}.{imp.name}")
                return sub.symbol if sub is not None else None
            for imp in info.imports:
                if imp.name != "*":
                    continue
                star = self.modules.get(imp.module)
                if star is None or not self._exported(star, name):
                    continue
                found = self.resolve(imp.module, name, seen)
                if found is not None:
                    return found
            sub = self.modules.get(f"{key}.{name}")
            return sub.symbol if sub is not None else None

    @staticmethod
    def _exported(info: ModuleInfo, name: str) -> bool:
        if info.all_names is not None:
            return name in info.all_names
        return not name.startswith("_")

    def resolve_dotted(self, module: str | ModuleInfo, dotted: str) -> Symbol | None:
        """`a.b.C` as written in `module`: the first part through its bindings, then members."""
        parts = dotted.split(".")
        sym = self.resolve(module, parts[0])
        for part in parts[1:]:
            if sym is None:
                return None
            found = self.members(sym).get(part)
            if found is None and sym.kind == "module":  # a submodule: `import pkg.sub; pkg.sub`
                sub = self.modules.get(f"{sym.qualname}.{part}")
                found = sub.symbol if sub is not None else None
            sym = found
        return sym

    def members(self, sym: Symbol) -> dict[str, Symbol]:
        """Attributes of a module or class of the workspace (classes: with inherited members
        of workspace base classes; modules: with the names they import, i.e. re-exports)."""
        with self._lock:
            if sym.kind == "module":
                info = self.modules.get(sym.qualname)
                if info is None:
                    return {}
                out = dict(info.defs)
                for imp in info.imports:
                    if imp.name == "*":
                        star = self.modules.get(imp.module)
                        if star is not None:
                            for n in star.defs:
                                if self._exported(star, n):
                                    out.setdefault(n, star.defs[n])
                    elif imp.alias not in out:
                        found = self.resolve(info.name, imp.alias)
                        if found is not None:  # under the name it is bound to
                            out[imp.alias] = (found if found.name == imp.alias
                                              else dataclasses.replace(found, name=imp.alias))
                return out
            if sym.kind == "class":
                return self._class_members(sym.qualname, set())
            return {}

    def _class_members(self, qual: str, seen: set[str]) -> dict[str, Symbol]:
        if qual in seen or len(seen) > 32:
            return {}
        seen.add(qual)
        info = self._module_of_class(qual)
        if info is None:
            return {}
        out: dict[str, Symbol] = {}
        for base in reversed(info.bases.get(qual, [])):  # later bases lose to earlier ones
            target = self.resolve_dotted(info.name, base)
            if target is not None and target.kind == "class" and target.qualname != qual:
                out.update(self._class_members(target.qualname, seen))
        out.update(info.classes.get(qual, {}))
        return out

    def imported_names(self, module: str | ModuleInfo) -> dict[str, Symbol]:
        """The local classes, functions and modules a module's imports bind, by bound name."""
        with self._lock:
            info = self.modules.get(module) if isinstance(module, str) else module
            if info is None:
                return {}
            out: dict[str, Symbol] = {}
            for imp in info.imports:
                if imp.name == "*":
                    star = self.modules.get(imp.module)
                    if star is not None:
                        out.update({n: s for n, s in star.defs.items()
                                    if self._exported(star, n)})
                    continue
                found = self.resolve(info, imp.alias)
                if found is not None:
                    out[imp.alias] = found
            return out
