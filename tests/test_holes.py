"""Typed-hole context: expected-type rules, relevant types, relevant headers (holefill.context.holes).

Each test writes a small multi-file workspace into a temporary folder; the document under test is
given as text with `▮` marking the cursor and is never written to disk (like an unsaved buffer).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from holefill.context.holes import (
    MAX_HEADERS,
    MAX_TYPES,
    expected_type_at,
    hole_context,
    relevant_headers,
    relevant_types,
)

MODELS = '''
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, Optional, Protocol, TypedDict


class Role(Enum):
    ADMIN = "admin"
    GUEST = "guest"


@dataclass
class User:
    name: str
    role: Role = Role.GUEST
    email: Optional[str] = None


@dataclass
class Team:
    title: str
    members: list[User] = field(default_factory=list)


@dataclass
class Node:
    label: str
    children: list["Node"] = field(default_factory=list)


class Point(NamedTuple):
    x: int
    y: int


class Settings(TypedDict):
    theme: str
    size: int


class Greeter(Protocol):
    def greet(self, user: User) -> str: ...


class Account:
    """A plain class."""

    def __init__(self, owner: User, balance: int) -> None:
        self.owner = owner
        self.balance = balance
        self._secret = 1

    def deposit(self, amount: int) -> "Account": ...


@dataclass
class Add:
    user: User


@dataclass
class Remove:
    name: str


Msg = Add | Remove


class Shape:
    pass


class Circle(Shape):
    radius: float


class Square(Shape):
    side: float
'''

UTIL = '''
from models import Role, User


def make_user(name: str, role: Role = Role.GUEST) -> User:
    return User(name, role)


def total(*items: int) -> int:
    return sum(items)


def find_user(users: list[User], name: str) -> User | None:
    return None


def count_users(users: list[User]) -> int:
    return len(users)
'''

CHAIN = '''
from dataclasses import dataclass


@dataclass
class E:
    v: int


@dataclass
class D:
    e: E


@dataclass
class C:
    d: D


@dataclass
class B:
    c: C


@dataclass
class A:
    b: B
'''


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "models.py").write_text(textwrap.dedent(MODELS))
    (root / "util.py").write_text(textwrap.dedent(UTIL))
    (root / "chain.py").write_text(textwrap.dedent(CHAIN))
    wide = ["from dataclasses import dataclass\n"]
    for i in range(20):
        wide.append(f"\n@dataclass\nclass W{i}:\n    v: int\n")
    wide.append("\n@dataclass\nclass Wide:\n" + "".join(f"    f{i}: W{i}\n" for i in range(20)))
    (root / "wide.py").write_text("".join(wide))
    return root


def doc(source: str) -> tuple[str, int]:
    source = textwrap.dedent(source).lstrip("\n")
    offset = source.index("▮")
    return source.replace("▮", ""), offset


def expect(ws: Path, source: str):
    text, offset = doc(source)
    return expected_type_at(text, offset, str(ws / "app.py"), str(ws))


def qualnames(exp) -> list[str]:
    return [r.qualname for r in exp.refs]


# --------------------------------------------------------------------------- expected type


def test_call_positional_argument_across_files(ws):
    exp = expect(ws, """
        from util import make_user

        make_user(▮)
    """)
    assert (exp.type, exp.source, exp.param) == ("str", "param", "name")
    assert exp.callee == "util.make_user"


def test_call_second_positional_argument(ws):
    exp = expect(ws, """
        from util import make_user

        make_user("ann", ▮)
    """)
    assert (exp.type, exp.source, exp.param) == ("Role", "param", "role")
    assert qualnames(exp) == ["models.Role"]
    assert exp.refs[0].user and exp.refs[0].path == str(ws / "models.py")


def test_keyword_argument_of_dataclass_constructor(ws):
    exp = expect(ws, """
        from models import User

        u = User(name="a", role=▮)
    """)
    assert (exp.type, exp.source, exp.param) == ("Role", "keyword", "role")
    assert qualnames(exp) == ["models.Role"]


def test_star_args_parameter(ws):
    exp = expect(ws, """
        from util import total

        total(1, 2, ▮)
    """)
    assert (exp.type, exp.source, exp.param) == ("int", "param", "items")


def test_annotated_assignment(ws):
    exp = expect(ws, """
        from models import User

        u: User = ▮
    """)
    assert (exp.type, exp.source) == ("User", "annassign")
    assert qualnames(exp) == ["models.User"]


def test_list_literal_element_of_annotated_target(ws):
    exp = expect(ws, """
        from models import User

        users: list[User] = [
            ▮
    """)
    assert (exp.type, exp.source) == ("User", "element")
    assert qualnames(exp) == ["models.User"]


def test_dict_literal_value(ws):
    exp = expect(ws, """
        from models import Role

        roles: dict[str, Role] = {"ann": ▮
    """)
    assert (exp.type, exp.source) == ("Role", "element")


def test_return_in_nested_function(ws):
    exp = expect(ws, """
        from models import User

        def outer() -> int:
            def inner() -> User:
                return ▮
            return 1
    """)
    assert (exp.type, exp.source) == ("User", "return")
    assert qualnames(exp) == ["models.User"]


def test_return_in_async_def_and_method(ws):
    exp = expect(ws, """
        from models import Role

        async def fetch() -> Role:
            return ▮
    """)
    assert (exp.type, exp.source) == ("Role", "return")
    exp = expect(ws, """
        from models import User

        class Service:
            def current(self) -> User:
                return ▮
    """)
    assert (exp.type, exp.source) == ("User", "return")


def test_optional_return_keeps_text_and_resolves_inner(ws):
    exp = expect(ws, """
        from typing import Optional
        from models import User

        def find(name: str) -> Optional[User]:
            return ▮
    """)
    assert exp.type == "Optional[User]"
    assert "models.User" in qualnames(exp)


def test_partial_identifier_and_parentheses_belong_to_the_hole(ws):
    exp = expect(ws, """
        from models import User

        def f() -> User:
            return Us▮
    """)
    assert (exp.type, exp.source) == ("User", "return")
    exp = expect(ws, """
        from models import User

        def f() -> User:
            return (▮
    """)
    assert (exp.type, exp.source) == ("User", "return")


def test_yield_takes_the_iterator_element(ws):
    exp = expect(ws, """
        from typing import Iterator
        from models import User

        def gen() -> Iterator[User]:
            yield ▮
    """)
    assert (exp.type, exp.source) == ("User", "yield")


def test_conditions_are_bool(ws):
    for source in ("if ▮", "while ready and ▮", "assert ▮", "x = not ▮",
                   "y = 1 if ▮"):
        exp = expect(ws, f"""
            ready = True
            {source}
        """)
        assert (exp.type, exp.source) == ("bool", "condition"), source


def test_comparison_operand_takes_the_left_type(ws):
    exp = expect(ws, """
        from models import User

        def f(user: User) -> None:
            if user.role == ▮
    """)
    assert (exp.type, exp.source) == ("Role", "compare")
    assert qualnames(exp) == ["models.Role"]


def test_default_value_of_annotated_parameter(ws):
    exp = expect(ws, """
        from models import Role

        def f(name: str, role: Role = ▮
    """)
    assert (exp.type, exp.source, exp.param) == ("Role", "default", "role")


def test_assignment_to_a_declared_name(ws):
    exp = expect(ws, """
        count: int = 0
        count = ▮
    """)
    assert (exp.type, exp.source) == ("int", "assign")


def test_case_pattern_takes_the_match_subject_type(ws):
    exp = expect(ws, """
        from models import Msg

        def handle(msg: Msg) -> None:
            match msg:
                case ▮
    """)
    assert (exp.type, exp.source) == ("Msg", "case")
    assert qualnames(exp) == ["models.Msg"] and exp.refs[0].kind == "alias"


def test_dataclasses_replace_keyword_takes_the_field_type(ws):
    exp = expect(ws, """
        from dataclasses import replace
        from models import User

        def promote(user: User) -> User:
            return replace(user, role=▮)
    """)
    assert (exp.type, exp.source, exp.param) == ("Role", "keyword", "role")
    assert exp.callee == "dataclasses.replace"


def test_append_takes_the_element_type(ws):
    exp = expect(ws, """
        from models import Team

        def join(team: Team) -> None:
            team.members.append(▮)
    """)
    assert (exp.type, exp.source) == ("User", "param")
    assert qualnames(exp) == ["models.User"]


@pytest.mark.parametrize("source", [
    "f = lambda x: ▮",
    "▮",
    "x = 1\n▮",
    "name = 'abc▮'",
    "# a comment ▮",
    "print(▮)",
    "xs = [1, 2][▮",
])
def test_unknown(ws, source):
    exp = expect(ws, source)
    assert exp.type is None and exp.source == "unknown"
    assert not exp.known


def test_nothing_of_the_workspace_is_imported(ws, tmp_path):
    # a module with side effects at import time: the analysis must not run it
    marker = tmp_path / "ran"
    (ws / "effects.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n\n\ndef make() -> int:\n    return 1\n")
    exp = expect(ws, """
        from effects import make
        from models import User

        def f() -> User:
            return ▮
    """)
    assert exp.type == "User"
    assert not marker.exists()


# --------------------------------------------------------------------------- relevant types


def types_at(ws: Path, source: str):
    text, offset = doc(source)
    return relevant_types(text, offset, str(ws / "app.py"), str(ws))


def test_types_recurse_through_fields(ws):
    types = types_at(ws, """
        from models import Team

        def f() -> Team:
            return ▮
    """)
    assert [(t.name, t.depth) for t in types] == [("Team", 0), ("User", 1), ("Role", 2)]
    team = types[0]
    assert team.kind == "dataclass" and team.qualname == "models.Team"
    assert team.text.splitlines() == [
        "@dataclass",
        "class Team:",
        "    title: str",
        "    members: list[User] = field(default_factory=list)",
    ]
    role = types[2]
    assert role.kind == "enum"
    assert role.text.splitlines()[1:] == ['    ADMIN = "admin"', '    GUEST = "guest"']
    assert team.path == str(ws / "models.py") and team.line < team.end_line


def test_types_depth_bound(ws):
    types = types_at(ws, """
        from chain import A

        a: A = ▮
    """)
    assert [(t.name, t.depth) for t in types] == [("A", 0), ("B", 1), ("C", 2)]


def test_types_count_bound(ws):
    types = types_at(ws, """
        from wide import Wide

        w: Wide = ▮
    """)
    assert len(types) == MAX_TYPES
    assert types[0].name == "Wide"


def test_recursive_type_appears_once(ws):
    types = types_at(ws, """
        from models import Node

        n: Node = ▮
    """)
    assert [t.name for t in types] == ["Node"]
    assert '    children: list["Node"] = field(default_factory=list)' in types[0].text


def test_alias_is_expanded_at_the_same_depth(ws):
    types = types_at(ws, """
        from models import Msg

        m: Msg = ▮
    """)
    assert [(t.name, t.kind, t.depth) for t in types][:3] == [
        ("Msg", "alias", 0), ("Add", "dataclass", 0), ("Remove", "dataclass", 0)]
    assert types[0].text == "Msg = Add | Remove"
    assert ("User", 1) in [(t.name, t.depth) for t in types]


def test_kinds_and_plain_class_attributes(ws):
    kinds = {}
    for name in ("Point", "Settings", "Greeter", "Account"):
        types = types_at(ws, f"""
            from models import {name}

            v: {name} = ▮
        """)
        kinds[name] = types[0]
    assert kinds["Point"].kind == "namedtuple"
    assert kinds["Settings"].kind == "typeddict"
    assert kinds["Greeter"].kind == "protocol"
    assert "    def greet(self, user: User) -> str: ..." in kinds["Greeter"].text
    account = kinds["Account"].text.splitlines()
    assert account[:5] == ["class Account:", "    owner: User", "    balance: int",
                           '    """A plain class."""',
                           "    def __init__(self, owner: User, balance: int) -> None: ..."]
    assert not any("_secret" in line for line in account)


def test_subclasses_of_a_base_class_goal(ws):
    types = types_at(ws, """
        from models import Shape

        s: Shape = ▮
    """)
    assert [(t.name, t.depth) for t in types] == [("Shape", 0), ("Circle", 1), ("Square", 1)]


def test_types_in_the_current_file_above_the_cursor_are_visible(ws):
    types = types_at(ws, """
        from dataclasses import dataclass

        @dataclass
        class Local:
            x: int

        def f() -> Local:
            return ▮
    """)
    assert [(t.name, t.visible, t.path) for t in types] == [("Local", True, str(ws / "app.py"))]


def test_unknown_hole_falls_back_to_the_signature_types(ws):
    types = types_at(ws, """
        from models import Team

        def f(team: Team) -> None:
            x = ▮
    """)
    assert [(t.name, t.depth) for t in types][:2] == [("Team", 1), ("User", 2)]


# --------------------------------------------------------------------------- relevant headers


HEADERS_DOC = """
    from models import Role, Team, User
    from util import count_users, find_user, make_user


    def pick(team: Team, index: int) -> User:
        return team.members[index]


    def build(name: str, role: Role, active: bool) -> User:
        return User(name, role)


    def names(team: Team) -> list[str]:
        return []


    DEFAULT: User = User("root")


    def current(team: Team, fallback: User) -> User:
        return ▮
"""


def test_headers_rank_and_render(ws):
    text, offset = doc(HEADERS_DOC)
    headers = relevant_headers(text, offset, str(ws / "app.py"), str(ws))
    names = [h.name for h in headers]
    assert names[0] == "fallback"  # a parameter of the goal type, right at the cursor
    assert set(names) == {"fallback", "DEFAULT", "pick", "build", "make_user", "find_user",
                          "current"}
    assert names[-1] == "current"  # the hole's own function (recursion) comes last
    assert "names" not in names and "count_users" not in names  # list[str], int
    by = {h.name: h for h in headers}
    assert by["make_user"].signature == \
        "def make_user(name: str, role: Role = Role.GUEST) -> User: ..."
    assert by["make_user"].path == str(ws / "util.py")
    assert by["find_user"].return_type == "User | None"
    assert by["fallback"].signature == "fallback: User" and by["fallback"].kind == "param"
    # fewer parameters rank higher among same-distance functions of the same file
    assert names.index("pick") < names.index("build")
    assert all(h.score >= by["current"].score for h in headers)


def test_headers_are_stable_and_bounded(ws):
    text, offset = doc(HEADERS_DOC)
    first = relevant_headers(text, offset, str(ws / "app.py"), str(ws))
    again = relevant_headers(text, offset, str(ws / "app.py"), str(ws))
    assert first == again
    many = "from models import User\n\n" + "".join(
        f"def f{i}() -> User:\n    return User('x')\n\n\n" for i in range(15)
    ) + "def g() -> User:\n    return "
    headers = relevant_headers(many, len(many), str(ws / "app.py"), str(ws))
    assert len(headers) == MAX_HEADERS


def test_headers_for_builtin_goal_need_an_exact_match(ws):
    text, offset = doc("""
        from models import User
        from util import count_users

        def size(users: list[User]) -> int:
            return ▮
    """)
    headers = relevant_headers(text, offset, str(ws / "app.py"), str(ws))
    assert [h.name for h in headers] == ["count_users", "size"]


def test_no_headers_for_unknown_holes(ws):
    text, offset = doc(HEADERS_DOC.replace("return ▮", "▮"))
    assert relevant_headers(text, offset, str(ws / "app.py"), str(ws)) == []


# --------------------------------------------------------------------------- entry point


def test_hole_context_is_fast_and_timed(ws):
    text, offset = doc(HEADERS_DOC)
    hole_context(text, offset, str(ws / "app.py"), str(ws))  # warm the jedi project
    hole = hole_context(text, offset, str(ws / "app.py"), str(ws))
    assert hole.expected.type == "User"
    assert [t.name for t in hole.types] == ["User", "Role"]
    assert hole.headers and set(hole.timings_ms) == {"setup", "expected", "types", "headers",
                                                     "total"}
    assert hole.timings_ms["total"] < 2000  # ~30 ms when warm on an idle CPU


def test_hole_context_without_path_or_workspace():
    text, offset = doc("""
        from dataclasses import dataclass

        @dataclass
        class P:
            x: int

        def f() -> P:
            return ▮
    """)
    hole = hole_context(text, offset)
    assert hole.expected.type == "P"
    assert [t.name for t in hole.types] == ["P"]
