"""Structured (syntax-tree) merge of one conflict hunk, run before the classifier.

The idea is mergiraf's: parse the three revisions with tree-sitter, match their nodes, and merge
where the two sides' changes touch different nodes or commute.  Like mergiraf's default mode it
works from a line-level conflict: the three revisions are rebuilt as ``before + side + after``
(the text around the hunk is identical in all three), so everything outside the hunk matches
trivially and only the nodes the hunk touches are merged.

``merge_node(base, ours, theirs)`` on matched nodes:

1. a side equal to the base gives the other side; two equal sides give that text;
2. otherwise, when the three nodes have the same type, their children are aligned with the base
   (equal children by a longest common subsequence; the rest paired by position or by an identity
   key such as a definition's name) and merged child by child: a child changed on one side only
   takes that change, a child changed on both sides is merged recursively, a child deleted on one
   side and changed on the other is a conflict;
3. insertions at the same place on both sides are kept together only in containers that a
   ``CommutativeRule`` of the language declares order-insensitive (import blocks, class members,
   ``__all__``, set and dict literals, keyword arguments, some decorators), only when every
   inserted node is a member of that container, the two sides bind different names and neither
   side's new code mentions a name the other side's new code binds.  Anywhere else (a function
   body, positional arguments, module-level assignments) they are a conflict.

A conflict anywhere means the whole hunk abstains: nothing is half merged.  The result must start
with the unchanged text before the hunk and end with the unchanged text after it (so no byte
outside the hunk can change), and the caller still applies its parse check.  Language-specific
knowledge lives in ``LanguageProfile`` tables; the algorithm only reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .diff3 import diff_matches

__all__ = [
    "CLASS_CONFIDENCE",
    "PYTHON",
    "CommutativeRule",
    "LanguageProfile",
    "StructuredResult",
    "merge_hunk",
    "merge_revisions",
    "profile_for_path",
    "rule_class",
]

MAX_DEPTH = 200  # deeper than any real code; guards the recursion on pathological input


# --------------------------------------------------------------------------- language tables


def _always(_node: Any) -> bool:
    return True


@dataclass(frozen=True)
class CommutativeRule:
    """A container whose members may be inserted side by side in either order.

    ``parents``: node types of the container; ``applies(container)`` narrows it further (``list``
    only as the value of ``__all__``).  ``members``: node types that commute there (None: any named
    node); ``member_ok`` rejects some of them (an order-sensitive decorator).  ``fillers``: nodes
    that may travel with the members (comments, comma separators).  ``keys(member)``: the names a
    member binds; two sides binding the same name conflict.  ``separator``: the token between
    members in comma lists, used to check that a concatenation still alternates member/separator.
    ``sortable``: the container's members are often kept sorted (imports): when the existing
    members and each side's insertion are in order, the union is inserted in order too.
    ``deletion_needs_agreement``: a member removed by one side while the other side changed the
    container is a conflict (imports: the other side's new code may use the name).
    ``check_references``: refuse when one side's new members mention a name the other side's
    new members bind.
    """

    name: str
    parents: frozenset[str]
    members: frozenset[str] | None
    keys: Callable[[Any], frozenset[str]]
    fillers: frozenset[str] = frozenset({"comment"})
    applies: Callable[[Any], bool] = _always
    member_ok: Callable[[Any], bool] = _always
    separator: str | None = None
    sortable: bool = False
    deletion_needs_agreement: bool = False
    check_references: bool = True


@dataclass(frozen=True)
class LanguageProfile:
    """What the structured merge knows about one language."""

    name: str
    extensions: tuple[str, ...]
    load_language: Callable[[], Any]  # the tree-sitter Language
    rules: tuple[CommutativeRule, ...]
    # Containers whose children are whole statements: there, a statement both sides insert
    # identically is kept once even when the sides insert other statements next to it.
    statement_containers: frozenset[str] = frozenset()
    identifier_types: frozenset[str] = frozenset({"identifier"})

    def rule_for(self, container: Any) -> list[CommutativeRule]:
        return [r for r in self.rules if container.type in r.parents and r.applies(container)]


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "surrogatepass") if node is not None else ""


def _py_import_keys(node: Any) -> frozenset[str]:
    """Names an import binds: the alias, else the full dotted name (``import a.b`` and
    ``import a.c`` do not collide, ``from m import x`` and ``from n import x`` do)."""
    names: set[str] = set()
    skip = node.child_by_field_name("module_name") if node.type == "import_from_statement" else None
    for child in node.named_children:
        if skip is not None and child.id == skip.id:
            continue
        if child.type == "aliased_import":
            alias = child.child_by_field_name("alias")
            names.add(_text(alias if alias is not None else child))
        elif child.type in ("dotted_name", "wildcard_import"):
            names.add(_text(child))
    return frozenset(names)


def _py_definition_name(node: Any) -> str | None:
    if node.type == "decorated_definition":
        node = node.child_by_field_name("definition")
    if node is not None and node.type in ("function_definition", "class_definition"):
        return _text(node.child_by_field_name("name"))
    return None


def _py_simple_assignment(node: Any) -> Any:
    """The ``assignment`` of ``NAME = value`` (no annotation, one target), else None."""
    if node.type != "expression_statement" or node.named_child_count != 1:
        return None
    assign = node.named_children[0]
    if assign.type != "assignment" or assign.child_by_field_name("type") is not None:
        return None
    left = assign.child_by_field_name("left")
    if left is None or left.type != "identifier" or assign.child_by_field_name("right") is None:
        return None
    return assign


def _py_member_keys(node: Any) -> frozenset[str]:
    name = _py_definition_name(node)
    if name is not None:
        return frozenset({name})
    assign = _py_simple_assignment(node)
    if assign is not None:
        return frozenset({_text(assign.child_by_field_name("left"))})
    return frozenset()


def _py_class_member_ok(node: Any) -> bool:
    # Annotated fields are left out on purpose: in dataclasses and NamedTuples their order is the
    # constructor's signature.
    return _py_definition_name(node) is not None or _py_simple_assignment(node) is not None


def _py_in_class_body(block: Any) -> bool:
    parent = block.parent
    return parent is not None and parent.type == "class_definition"


def _py_is_all_value(container: Any) -> bool:
    """``__all__ = [...]`` / ``(...)`` or ``__all__ += [...]``."""
    parent = container.parent
    if parent is None or parent.type not in ("assignment", "augmented_assignment"):
        return False
    left = parent.child_by_field_name("left")
    right = parent.child_by_field_name("right")
    return (
        left is not None
        and _text(left) == "__all__"
        and right is not None
        and (right.id == container.id)
    )


def _py_pair_key(node: Any) -> frozenset[str]:
    key = node.child_by_field_name("key")
    return frozenset({_text(key)}) if key is not None else frozenset()


def _py_keyword_name(node: Any) -> frozenset[str]:
    name = node.child_by_field_name("name")
    return frozenset({_text(name)}) if name is not None else frozenset()


def _own_text(node: Any) -> frozenset[str]:
    return frozenset({_text(node)})


# Decorators whose position among the others matters (descriptors, wrappers, argument injection)
# are never reordered; only markers that form a set are.  Anything not listed abstains.
_PY_COMMUTING_DECORATOR_PREFIXES = ("pytest.mark.", "mark.", "unittest.skip", "skip")


def _py_decorator_ok(node: Any) -> bool:
    expr = _text(node).lstrip("@").strip()
    return expr.startswith(_PY_COMMUTING_DECORATOR_PREFIXES)


def _python_language() -> Any:
    import tree_sitter_python
    from tree_sitter import Language

    return Language(tree_sitter_python.language())


_COMMA_FILLERS = frozenset({",", "comment"})

PYTHON = LanguageProfile(
    name="python",
    extensions=(".py", ".pyi", ".pyw"),
    load_language=_python_language,
    statement_containers=frozenset({"module", "block"}),
    rules=(
        # `from __future__` imports must stay first, so future_import_statement is no member.
        CommutativeRule(
            name="imports",
            parents=frozenset({"module", "block"}),
            members=frozenset({"import_statement", "import_from_statement"}),
            keys=_py_import_keys,
            sortable=True,
            deletion_needs_agreement=True,
            check_references=False,  # an import reads no name the other side binds
        ),
        CommutativeRule(
            name="class-members",
            parents=frozenset({"block"}),
            applies=_py_in_class_body,
            members=frozenset(
                {
                    "function_definition",
                    "class_definition",
                    "decorated_definition",
                    "expression_statement",
                }
            ),
            member_ok=_py_class_member_ok,
            keys=_py_member_keys,
        ),
        # Module-level functions and classes; module-level assignments are not members (later
        # code may read them in order).
        CommutativeRule(
            name="definitions",
            parents=frozenset({"module"}),
            members=frozenset({"function_definition", "class_definition", "decorated_definition"}),
            keys=_py_member_keys,
        ),
        CommutativeRule(
            name="all-entries",
            parents=frozenset({"list", "tuple"}),
            applies=_py_is_all_value,
            members=frozenset({"string"}),
            keys=_own_text,
            fillers=_COMMA_FILLERS,
            separator=",",
        ),
        CommutativeRule(
            name="set-elements",
            parents=frozenset({"set"}),
            members=None,
            keys=_own_text,
            fillers=_COMMA_FILLERS,
            separator=",",
        ),
        CommutativeRule(
            name="dict-entries",
            parents=frozenset({"dictionary"}),
            members=frozenset({"pair"}),
            keys=_py_pair_key,
            fillers=_COMMA_FILLERS,
            separator=",",
        ),
        CommutativeRule(
            name="keyword-arguments",
            parents=frozenset({"argument_list"}),
            members=frozenset({"keyword_argument"}),
            keys=_py_keyword_name,
            fillers=_COMMA_FILLERS,
            separator=",",
        ),
        CommutativeRule(
            name="import-names",
            parents=frozenset({"import_from_statement"}),
            members=frozenset({"dotted_name", "aliased_import"}),
            keys=lambda n: _py_import_keys_of_name(n),
            fillers=_COMMA_FILLERS,
            separator=",",
            deletion_needs_agreement=True,
        ),
        CommutativeRule(
            name="decorators",
            parents=frozenset({"decorated_definition"}),
            members=frozenset({"decorator"}),
            member_ok=_py_decorator_ok,
            keys=_own_text,
        ),
    ),
)


def _py_import_keys_of_name(node: Any) -> frozenset[str]:
    if node.type == "aliased_import":
        alias = node.child_by_field_name("alias")
        return frozenset({_text(alias if alias is not None else node)})
    return frozenset({_text(node)})


PROFILES: tuple[LanguageProfile, ...] = (PYTHON,)


def profile_for_path(path: str | None) -> LanguageProfile | None:
    """The profile for a file name (None, an unknown path, counts as Python like the resolver)."""
    if path is None:
        return PYTHON
    for profile in PROFILES:
        if str(path).endswith(profile.extensions):
            return profile
    return None


# One parser per thread and language: the language server resolves on worker threads.
_local = threading.local()
_languages: dict[str, Any] = {}
_languages_lock = threading.Lock()


def _parser(profile: LanguageProfile) -> Any:
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(profile.name)
    if parser is None:
        from tree_sitter import Parser

        with _languages_lock:
            lang = _languages.get(profile.name)
            if lang is None:
                lang = _languages[profile.name] = profile.load_language()
        parser = parsers[profile.name] = Parser(lang)
    return parser


# --------------------------------------------------------------------------- the merge


class _Conflict(Exception):
    """Raised inside the merge when two changes cannot be combined; the hunk abstains."""


@dataclass
class _Item:
    """A child node with the source between the previous sibling and it (its gap)."""

    node: Any
    gap: bytes
    text: bytes

    @property
    def key(self) -> str:
        # Equality for alignment: the node's type and text, not its gap, so a changed blank line
        # is a whitespace edit of a kept node rather than a different node.
        return self.node.type + "\0" + self.text.decode("utf-8", "surrogatepass")

    @property
    def full(self) -> bytes:
        return self.gap + self.text


@dataclass
class _Edits:
    """How one side changed a base node's children."""

    fate: list[tuple[str, int]]  # per base child: ("keep"|"mod"|"del", side index or -1)
    inserts: dict[int, list[_Item]]  # base gap index (0..n) -> side children inserted there


@dataclass
class _Merge:
    profile: LanguageProfile
    base_src: bytes
    ours_src: bytes
    theirs_src: bytes
    rules: set[str] = field(default_factory=set)
    # Where each rule fired: (rule, context), context being ``scope/node type`` of the node the
    # rule merged (scope: the innermost enclosing function, class or the module).
    sites: list[tuple[str, str]] = field(default_factory=list)

    def note(self, rule: str, node: Any) -> None:
        self.rules.add(rule)
        self.sites.append((rule, f"{_scope(node)}/{node.type}"))

    def items(self, node: Any, src: bytes) -> tuple[list[_Item], bytes]:
        out = []
        pos = node.start_byte
        for child in node.children:
            out.append(
                _Item(child, src[pos : child.start_byte], src[child.start_byte : child.end_byte])
            )
            pos = child.end_byte
        return out, src[pos : node.end_byte]


def _scope(node: Any) -> str:
    """``function``, ``class`` or ``module``: the innermost definition around ``node``."""
    parent = node.parent
    while parent is not None:
        if parent.type in ("function_definition", "lambda"):
            return "function"
        if parent.type == "class_definition":
            return "class"
        parent = parent.parent
    return "module"


def _three_way(base: bytes, ours: bytes, theirs: bytes) -> bytes:
    if ours == base:
        return theirs
    if theirs == base or ours == theirs:
        return ours
    raise _Conflict("both sides changed the same whitespace")


def _align(
    identity: Callable[[Any], frozenset[str]], base: list[_Item], side: list[_Item]
) -> _Edits:
    """Fates of the base children in one side and what the side inserted, by base gap."""
    n = len(base)
    fate: list[tuple[str, int]] = [("del", -1)] * n
    inserts: dict[int, list[_Item]] = {}
    pairs = diff_matches([it.key for it in base], [it.key for it in side])
    bounds = [(-1, -1), *pairs, (n, len(side))]
    for (pb, ps), (nb, ns) in zip(bounds, bounds[1:], strict=False):
        if nb < n:
            fate[nb] = ("keep", ns)
        b_lo, s_lo = pb + 1, ps + 1
        b_region, s_region = list(range(b_lo, nb)), list(range(s_lo, ns))
        if not s_region:
            continue  # base children deleted (fate stays "del")
        paired: dict[int, int] = {}  # side index -> base index
        if len(b_region) == len(s_region) and all(
            base[b].node.type == side[s].node.type for b, s in zip(b_region, s_region, strict=True)
        ):
            paired = dict(zip(s_region, b_region, strict=True))
        elif b_region:
            # Pair by identity (a definition's name, a keyword's name), in order.
            # Names shared are enough: `import x` -> `from pkg import x` is an edit of the
            # import of x, not a deletion plus an unrelated insertion.
            next_s = s_lo
            for b in b_region:
                keys = identity(base[b].node)
                if not keys:
                    continue
                for s in range(next_s, ns):
                    if keys & identity(side[s].node):
                        paired[s] = b
                        next_s = s + 1
                        break
            # Then by type where that is unambiguous (the one block of a def, say): otherwise a
            # changed child would read as deleted here and re-inserted next to it.
            for node_type in {base[b].node.type for b in b_region}:
                bs = [
                    b
                    for b in b_region
                    if base[b].node.type == node_type and b not in paired.values()
                ]
                ss = [s for s in s_region if side[s].node.type == node_type and s not in paired]
                if len(bs) == len(ss) == 1 and _keeps_order(paired, ss[0], bs[0]):
                    paired[ss[0]] = bs[0]
        for s, b in paired.items():
            fate[b] = ("mod", s)
        # Unpaired side children go before the next paired base child (or the region's end).
        for s in s_region:
            if s in paired:
                continue
            later = [paired[x] for x in s_region if x > s and x in paired]
            gap = min(later) if later else nb
            inserts.setdefault(gap, []).append(side[s])
    return _Edits(fate, inserts)


def _member_rule(profile: LanguageProfile, node: Any) -> CommutativeRule | None:
    """The rule under which ``node`` is a keyed member of its container, if any."""
    parent = node.parent
    if parent is None:
        return None
    for rule in profile.rule_for(parent):
        if (rule.members is None or node.type in rule.members) and rule.keys(node):
            return rule
    return None


def _keeps_order(paired: dict[int, int], s: int, b: int) -> bool:
    """Adding the pair (side s, base b) keeps the pairing monotonic."""
    return all((s < s2) == (b < b2) for s2, b2 in paired.items())


def _identity(profile: LanguageProfile) -> Callable[[Any], frozenset[str]]:
    def identity(node: Any) -> frozenset[str]:
        rule = _member_rule(profile, node)
        return frozenset(rule.keys(node)) if rule is not None else frozenset()

    return identity


def _deletion_needs_agreement(profile: LanguageProfile, container: Any, node: Any) -> bool:
    if node.type == "comment":
        return False
    if container.type in profile.statement_containers:
        return True
    rule = _member_rule(profile, node)
    return rule is not None and rule.deletion_needs_agreement


def _check_no_duplicates(
    m: _Merge, container: Any, oe: _Edits, te: _Edits, o_items: list[_Item], t_items: list[_Item]
) -> None:
    """Both sides adding the same code (or code binding the same name) at different places of
    one container would duplicate it: a conflict.  Same place is handled by the insert merge."""

    def added(edits: _Edits, items: list[_Item]) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for gap, run in edits.inserts.items():
            for item in run:
                if item.node.is_named:  # comments too: a comment twice is a duplicate
                    out[_strip(item)] = gap
        for (fate, j), gap in zip(edits.fate, range(len(edits.fate)), strict=True):
            if fate == "mod":
                out.setdefault(_strip(items[j]), -1 - gap)
        return out

    ours, theirs = added(oe, o_items), added(te, t_items)
    for text, gap in ours.items():
        if text in theirs and theirs[text] != gap:
            raise _Conflict("both sides add the same code at different places")

    def keys(edits: _Edits) -> dict[str, int]:
        out: dict[str, int] = {}
        for gap, run in edits.inserts.items():
            for item in run:
                for key in _identity(m.profile)(item.node):
                    out[key] = gap
        return out

    ours_keys, theirs_keys = keys(oe), keys(te)
    for key, gap in ours_keys.items():
        if key in theirs_keys and theirs_keys[key] != gap:
            raise _Conflict(f"both sides add {key!r} at different places")


def _identifiers(node: Any, types: frozenset[str]) -> set[str]:
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.type in types:
            out.add(_text(cur))
        stack.extend(cur.children)
    return out


def _strip(item: _Item) -> bytes:
    return item.text.strip()


def _combine_inserts(
    m: _Merge,
    container: Any,
    ours: list[_Item],
    theirs: list[_Item],
    next_item: _Item | None,
    prev_item: _Item | None,
) -> list[_Item]:
    """Both sides inserted at the same place: keep both when they commute, else conflict."""
    if [i.full for i in ours] == [i.full for i in theirs]:
        m.note("same-change", container)
        return ours
    profile = m.profile
    if container.type in profile.statement_containers:
        # A statement both sides added is kept once (the union of the two runs), as long as the
        # shared statements come in the same order on both sides.
        ours_texts = [_strip(i) for i in ours if i.node.type != "comment"]
        seen = set(ours_texts)
        shared = [_strip(i) for i in theirs if i.node.type != "comment" and _strip(i) in seen]
        if shared:
            if shared != [x for x in ours_texts if x in set(shared)]:
                raise _Conflict("both sides add the same statements in a different order")
            m.note("shared-statements", container)
            theirs = [i for i in theirs if not (i.node.type != "comment" and _strip(i) in seen)]
        if not any(i.node.type != "comment" for i in theirs):
            if theirs:
                raise _Conflict("a comment inserted next to a statement both sides added")
            return ours
    reasons = []
    for rule in profile.rule_for(container):
        merged, reason = _try_rule(m, rule, ours, theirs, next_item, prev_item)
        if merged is not None:
            m.note(rule.name, container)
            return merged
        reasons.append(f"{rule.name}: {reason}")
    if reasons:
        raise _Conflict("both sides insert at one place; " + "; ".join(reasons))
    raise _Conflict(f"both sides insert at one place of a {container.type}, whose order matters")


def _try_rule(
    m: _Merge,
    rule: CommutativeRule,
    ours: list[_Item],
    theirs: list[_Item],
    next_item: _Item | None,
    prev_item: _Item | None,
) -> tuple[list[_Item] | None, str]:
    """The two runs side by side under ``rule``, or None and why not."""

    def is_member(item: _Item) -> bool:
        node = item.node
        if rule.members is None:
            return node.is_named and node.type not in rule.fillers and not node.has_error
        return node.type in rule.members and not node.has_error

    for item in (*ours, *theirs):
        if item.node.type in rule.fillers and not is_member(item):
            continue
        if not is_member(item):
            return None, f"a {item.node.type} is not a member"
        if not rule.member_ok(item.node):
            return None, f"{_text(item.node)[:40]!r} is order-sensitive"
    ours_keys: set[str] = set()
    theirs_keys: set[str] = set()
    for item in ours:
        if is_member(item):
            ours_keys |= rule.keys(item.node)
    for item in theirs:
        if is_member(item):
            theirs_keys |= rule.keys(item.node)
    if ours_keys & theirs_keys:
        return None, f"both sides define {sorted(ours_keys & theirs_keys)}"
    if rule.check_references:
        # Neither side's new code may read a name the other side's new code binds (its
        # meaning could then depend on the order).
        ids = m.profile.identifier_types
        ours_ids = set().union(*(_identifiers(i.node, ids) for i in ours))
        theirs_ids = set().union(*(_identifiers(i.node, ids) for i in theirs))
        crossed = (ours_ids & theirs_keys) | (theirs_ids & ours_keys)
        if crossed:
            return None, f"one side's new code uses {sorted(crossed)} that the other defines"
    combined = [*ours, *theirs]
    if rule.separator is not None and not _alternates(rule, combined, prev_item, next_item):
        return None, "the joined run would not alternate members and separators"
    if rule.sortable:
        combined = _sorted_if_sorted(rule, combined, ours, theirs, prev_item, next_item)
    return combined, ""


def _alternates(
    rule: CommutativeRule, run: list[_Item], prev_item: _Item | None, next_item: _Item | None
) -> bool:
    """In a comma list the joined run must still alternate member, separator, member."""
    sep = rule.separator
    kinds = []
    for item in (
        ([prev_item] if prev_item is not None else [])
        + run
        + ([next_item] if next_item is not None else [])
    ):
        if item.node.type == "comment":
            continue
        kinds.append(
            "sep" if _text(item.node) == sep else "member" if item.node.is_named else "other"
        )
    # Brackets ("other") around are fine; two members or two separators in a row are not.
    for a, b in zip(kinds, kinds[1:], strict=False):
        if a == b and a != "other":
            return False
    return True


def _sort_key(item: _Item) -> str:
    return " ".join(item.text.decode("utf-8", "surrogatepass").split()).lower()


def _sorted_if_sorted(
    rule: CommutativeRule,
    combined: list[_Item],
    ours: list[_Item],
    theirs: list[_Item],
    prev_item: _Item | None,
    next_item: _Item | None,
) -> list[_Item]:
    """Insert in order when the file looks sorted (isort-style): each side's run, with the
    neighbouring members, is in order and some side shows order (two members in sequence);
    otherwise ours then theirs.  Runs with comments or blank lines keep their order."""
    if any(i.node.type == "comment" or i.gap.count(b"\n") > 1 for i in combined):
        return combined
    members = rule.members or frozenset()
    before = [prev_item] if prev_item is not None and prev_item.node.type in members else []
    after = [next_item] if next_item is not None and next_item.node.type in members else []

    def with_neighbours(run: list[_Item]) -> list[str]:
        return [_sort_key(x) for x in before + run + after]

    ours_seq, theirs_seq = with_neighbours(ours), with_neighbours(theirs)
    if max(len(ours_seq), len(theirs_seq)) < 2:
        return combined  # no evidence either way
    if _is_sorted(ours_seq) and _is_sorted(theirs_seq):
        by_key = sorted(combined, key=_sort_key)
        if _is_sorted(with_neighbours(by_key)):
            return by_key
    return combined


def _check_order_kept(
    m: _Merge, container: Any, versions: list[list[_Item]], merged: list[_Item]
) -> None:
    """Members of a sortable container (imports) that all three versions keep sorted must stay
    sorted: a merge that breaks the order is not what the project would write."""
    for rule in m.profile.rule_for(container):
        if not rule.sortable or rule.members is None:
            continue
        members = rule.members

        def sorted_runs(items: list[_Item], members: frozenset[str] = members) -> bool:
            # A run is a block of members without blank lines or other statements between
            # them (isort sorts within sections, which blank lines separate).
            run: list[str] = []
            for item in items:
                if item.node.type not in members or item.gap.count(b"\n") > 1:
                    if not _is_sorted(run):
                        return False
                    run = []
                if item.node.type in members:
                    run.append(_sort_key(item))
            return _is_sorted(run)

        if all(sorted_runs(v) for v in versions) and not sorted_runs(merged):
            raise _Conflict("the merge would leave the imports out of order")


def _is_sorted(keys: list[str]) -> bool:
    return all(a <= b for a, b in zip(keys, keys[1:], strict=False))


def _merge_node(m: _Merge, b: Any, o: Any, t: Any, depth: int = 0) -> bytes:
    bt = m.base_src[b.start_byte : b.end_byte]
    ot = m.ours_src[o.start_byte : o.end_byte]
    tt = m.theirs_src[t.start_byte : t.end_byte]
    if ot == bt:
        return tt
    if tt == bt:
        return ot
    if ot == tt:
        m.note("same-change", b)
        return ot
    if depth > MAX_DEPTH:
        raise _Conflict("too deep")
    if not (b.type == o.type == t.type):
        raise _Conflict(f"both sides changed a {b.type} into different nodes")
    if b.type == "ERROR" or o.is_error or t.is_error:
        raise _Conflict("a change inside a syntax error")
    if not (o.child_count and t.child_count):
        raise _Conflict(f"both sides changed the {b.type} {bt[:40]!r}")
    b_items, b_tail = m.items(b, m.base_src)
    o_items, o_tail = m.items(o, m.ours_src)
    t_items, t_tail = m.items(t, m.theirs_src)
    identity = _identity(m.profile)
    oe = _align(identity, b_items, o_items)
    te = _align(identity, b_items, t_items)
    _check_no_duplicates(m, b, oe, te, o_items, t_items)
    pieces: list[_Item] = []  # the merged children (node: the side's or the base's node)
    n = len(b_items)
    one_sided = False
    for gap in range(n + 1):
        o_ins, t_ins = oe.inserts.get(gap, []), te.inserts.get(gap, [])
        if o_ins and t_ins:
            prev_item = b_items[gap - 1] if gap > 0 else None
            next_item = b_items[gap] if gap < n else None
            pieces.extend(_combine_inserts(m, b, o_ins, t_ins, next_item, prev_item))
        elif o_ins or t_ins:
            one_sided = True
            pieces.extend(o_ins or t_ins)
        if gap == n:
            break
        (of, oi), (tf, ti) = oe.fate[gap], te.fate[gap]
        base_item = b_items[gap]
        if of == "del" or tf == "del":
            other_f, other_i, other_items = (tf, ti, t_items) if of == "del" else (of, oi, o_items)
            if other_f == "mod" and other_items[other_i].full != base_item.full:
                raise _Conflict(f"one side deletes a {base_item.node.type} the other changes")
            if of != tf and _deletion_needs_agreement(m.profile, b, base_item.node):
                # What one side drops (an import, a statement) is usually what its own changes
                # stopped needing; the other side's changes next to it may still need it.
                raise _Conflict(
                    f"one side removes a {base_item.node.type} next to the other's edit"
                )
            if other_f == "keep" and other_items[other_i].gap != base_item.gap:
                raise _Conflict("one side deletes a node whose spacing the other changes")
            one_sided = one_sided or of != tf
            continue
        o_item, t_item = o_items[oi], t_items[ti]
        gap_text = _three_way(base_item.gap, o_item.gap, t_item.gap)
        one_sided = one_sided or (o_item.gap != t_item.gap)
        o_same = o_item.full == base_item.full
        t_same = t_item.full == base_item.full
        if o_same != t_same:
            one_sided = True
        if of == "keep" and tf == "keep":
            pieces.append(_Item(base_item.node, gap_text, base_item.text))
            continue
        merged = _merge_node(m, base_item.node, o_item.node, t_item.node, depth + 1)
        pieces.append(_Item(base_item.node, gap_text, merged))
    tail = _three_way(b_tail, o_tail, t_tail)
    _check_order_kept(m, b, [b_items, o_items, t_items], pieces)
    if one_sided:
        # Both sides changed this node, and at least one change here came from one side only:
        # the two changes touched different children.
        m.note("disjoint-edits", b)
    return b"".join(p.full for p in pieces) + tail


# --------------------------------------------------------------------------- entry points


# --------------------------------------------------------------------------- confidence

# What a structured merge is worth depends on what it had to do.  Each hunk falls in the weakest
# class among its merge steps, and its confidence is that class's precision (exact match with the
# human resolution) on the training repositories only -- the classifier's dev repositories never
# chose these numbers.  Measured by scripts/structured_rule_precision.py, bench layout (hunks of a
# file together, 5 lines of recorded context), 4,786 hunks of ansible, ipython, click, requests,
# poetry, scrapy, sphinx:
#
#   identical    both sides made the same change, or one side's insertion holds the other's
#                (same-change, shared-statements, whitespace, ours-only, theirs-only): 47/51
#   disjoint+same  disjoint edits next to identical ones: 123/146
#   disjoint     the sides changed different children of a node (disjoint-edits): 604/884
#   commutative  both sides inserted at one place of an order-insensitive container (imports,
#                definitions, class members, keyword arguments, __all__, ...): 123/249 (the
#                humans often kept one side only, or another order)
#
# The resolver takes a structured merge by default only when its confidence reaches 0.9 (the
# issue's precision floor), i.e. only the identical class; below that the classifier decides.
CLASS_CONFIDENCE: dict[str, float] = {
    "identical": round(47 / 51, 3),
    "disjoint+same": round(123 / 146, 3),
    "disjoint": round(604 / 884, 3),
    "commutative": round(123 / 249, 3),
}
_IDENTICAL_RULES = frozenset(
    {"same-change", "shared-statements", "whitespace", "ours-only", "theirs-only"}
)


def rule_class(rules: set[str] | frozenset[str]) -> str:
    """The confidence class of a merge that used ``rules`` (see ``CLASS_CONFIDENCE``)."""
    if rules - _IDENTICAL_RULES - {"disjoint-edits"}:
        return "commutative"
    if "disjoint-edits" in rules:
        return "disjoint+same" if rules & _IDENTICAL_RULES else "disjoint"
    return "identical"


@dataclass(frozen=True)
class StructuredResult:
    """The structured stage's answer for one hunk.

    ``text`` is the hunk's resolution (None: abstain, with ``reason``); ``rule`` names the rules
    that produced it, e.g. ``imports`` or ``disjoint-edits+keyword-arguments``; ``confidence``
    is the training-repository precision of its rule class (``CLASS_CONFIDENCE``).
    """

    text: str | None
    rule: str | None
    reason: str = ""
    sites: tuple[tuple[str, str], ...] = ()  # (rule, context) of each merge step
    confidence: float = 0.0

    @property
    def rule_class(self) -> str | None:
        return rule_class({r for r, _ in self.sites}) if self.text is not None else None


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def merge_revisions(
    base: str, ours: str, theirs: str, profile: LanguageProfile = PYTHON
) -> tuple[str | None, str]:
    """Structured merge of three whole texts: ``(merged text or None, rules used or reason)``."""
    text, info, _sites = _merge_revisions(base, ours, theirs, profile)
    return text, info


Sites = tuple[tuple[str, str], ...]


def _merge_revisions(
    base: str, ours: str, theirs: str, profile: LanguageProfile
) -> tuple[str | None, str, Sites]:
    if ours == base or ours == theirs:
        rule = "theirs-only" if ours == base else "same-change"
        return theirs, rule, ((rule, "hunk"),)
    if theirs == base:
        return ours, "ours-only", (("ours-only", "hunk"),)
    srcs = [_enc(base), _enc(ours), _enc(theirs)]
    parser = _parser(profile)
    roots = [parser.parse(s).root_node for s in srcs]
    m = _Merge(profile, *srcs)
    try:
        # The root node need not span the whole text (leading and trailing blank lines).
        lead = _three_way(*(src[: root.start_byte] for src, root in zip(srcs, roots, strict=True)))
        trail = _three_way(*(src[root.end_byte :] for src, root in zip(srcs, roots, strict=True)))
        merged = lead + _merge_node(m, *roots) + trail
    except _Conflict as exc:
        return None, str(exc), ()
    try:
        text = merged.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None, "merged bytes are not text", ()
    if not m.sites:
        m.sites.append(("whitespace", "hunk"))
    return text, "+".join(sorted(m.rules)) or "whitespace", tuple(m.sites)


def merge_hunk(
    before: str,
    base: str,
    ours: str,
    theirs: str,
    after: str,
    profile: LanguageProfile | None = PYTHON,
) -> StructuredResult:
    """Resolve one line-level conflict whose unchanged surroundings are ``before``/``after``.

    Abstains (``text`` None) when there is no profile for the language, when a side does not
    parse around the hunk where the base does, on any conflict, and when the merge would change
    text outside the hunk.
    """
    if profile is None:
        return StructuredResult(None, None, "no structured merge for this language")
    merged, info, sites = _merge_revisions(
        before + base + after, before + ours + after, before + theirs + after, profile
    )
    if merged is None:
        return StructuredResult(None, None, info)
    if not (merged.startswith(before) and merged.endswith(after)) or len(merged) < len(
        before
    ) + len(after):
        return StructuredResult(None, None, "the merge would change text outside the hunk")
    text = merged[len(before) : len(merged) - len(after)]
    cls = rule_class({r for r, _ in sites})
    return StructuredResult(text, info, sites=sites, confidence=CLASS_CONFIDENCE[cls])
