"""Error rounds: check_suggestion's true and false positives (holefill.context.check)."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from holefill.benchmarks.common import package_dir
from holefill.context.check import check_suggestion, format_errors
from holefill.context.holes import expected_type_at

MODELS = '''
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Item:
    name: str
    color: Color = Color.RED


@dataclass
class Basket:
    items: list[Item] = field(default_factory=list)
    owner: Optional[str] = None

    def add(self, item: Item) -> "Basket":
        return Basket(self.items + [item], self.owner)


class Special(Item):
    pass


class Dynamic:
    def __getattr__(self, name):
        return name


def make_item(name: str) -> Item:
    return Item(name)
'''

APP = '''
from dataclasses import replace

from models import Basket, Color, Dynamic, Item, Special, make_item


def first(basket: Basket) -> Item:
    return ▮


def later() -> int:
    return 1
'''


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkws")
    (root / "models.py").write_text(textwrap.dedent(MODELS))
    return root


def check(ws: Path, suggestion: str, source: str = APP, typed: bool = True):
    source = textwrap.dedent(source).lstrip("\n")
    offset = source.index("▮")
    text = source.replace("▮", "")
    path = str(ws / "app.py")
    expected = expected_type_at(text, offset, path, str(ws)) if typed else None
    return check_suggestion(text, offset, suggestion, path, str(ws), expected)


def kinds(errors) -> list[str]:
    return [e.kind for e in errors]


# --------------------------------------------------------------------------- true positives


def test_syntax_error(ws):
    errors = check(ws, "Item(basket.items[0].name")
    assert kinds(errors) == ["syntax"]
    assert "never closed" in errors[0].message and errors[0].line == 7


def test_undefined_name_with_hint(ws):
    errors = check(ws, "baskett.items[0]")
    assert kinds(errors) == ["undefined-name"]
    assert errors[0].message == "name 'baskett' is not defined"
    assert errors[0].hint == "did you mean basket, Basket?"
    assert (errors[0].line, errors[0].column) == (7, 11)
    assert format_errors(errors) == [
        "line 7: name 'baskett' is not defined (did you mean basket, Basket?)"]


def test_unknown_attribute_of_a_workspace_class(ws):
    errors = check(ws, "basket.itemz[0]")
    assert kinds(errors) == ["unknown-attribute"]
    assert errors[0].message == "'Basket' has no attribute 'itemz'"
    assert errors[0].hint == "did you mean items?"
    errors = check(ws, "Item(basket.owner, Color.GREEN)")
    assert kinds(errors) == ["unknown-attribute"] and "class 'Color'" in errors[0].message


def test_type_mismatch(ws):
    assert kinds(check(ws, "basket.owner")) == ["type-mismatch"]
    assert check(ws, "'apple'")[0].message == "expected Item, got str"
    assert kinds(check(ws, "Color.RED")) == ["type-mismatch"]
    assert kinds(check(ws, "basket")) == ["type-mismatch"]
    assert kinds(check(ws, "basket.add(make_item('x'))")) == ["type-mismatch"]


def test_unknown_keyword_arguments(ws):
    errors = check(ws, "Item(name='a', colour=Color.RED)")
    assert kinds(errors) == ["unknown-argument"] and errors[0].hint == "did you mean color?"
    errors = check(ws, "make_item(title='a')")
    assert kinds(errors) == ["unknown-argument"]
    errors = check(ws, "replace(make_item('a'), nam='b')")
    assert kinds(errors) == ["unknown-argument"] and errors[0].hint == "did you mean name?"


# --------------------------------------------------------------------------- no false positives


@pytest.mark.parametrize("suggestion", [
    "basket.items[0]",
    "Item('apple', Color.BLUE)",
    "make_item(name='x')",
    "Special('x')",  # a subclass instance for the base class
    "replace(basket.items[0], name='b')",
    "next(iter(basket.items))",
    "[i for i in basket.items if i.color == Color.RED][0]",
    "item if (item := basket.items[0]) else Item('x')",
    "basket.items[later()]",  # defined further down the file
    "Item(name=str(len(basket.items)))",
    "Item(Dynamic().anything)",  # __getattr__: any attribute
    "basket.items[0]  # the first one",
    "",
])
def test_good_suggestions_pass(ws, suggestion):
    assert check(ws, suggestion) == []


def test_optional_and_numeric_promotion(ws):
    source = """
        from typing import Optional
        from models import Item

        def find(name: str) -> Optional[Item]:
            return ▮

        def ratio() -> float:
            return 1
    """
    assert check(ws, "None", source) == []
    assert check(ws, "Item(name)", source) == []
    assert kinds(check(ws, "name", source)) == ["type-mismatch"]
    source = "def ratio() -> float:\n    return ▮\n"
    assert check(ws, "1", source) == [] and check(ws, "True", source) == []


def test_partial_identifier_and_suffix(ws):
    source = """
        from models import Basket, Item

        def first(basket: Basket) -> Item:
            return bas▮
    """
    assert check(ws, "ket.items[0]", source) == []
    source = """
        from models import Item

        def make(name: str) -> Item:
            return Item(▮)
    """
    assert check(ws, "name", source) == []
    assert kinds(check(ws, "nme", source)) == ["undefined-name"]


def test_star_import_disables_undefined_names(ws):
    source = "from models import *\n\n\ndef f():\n    return ▮\n"
    assert check(ws, "make_item('x')", source, typed=False) == []
    assert check(ws, "whatever_name", source, typed=False) == []


def test_file_broken_elsewhere_only_judges_the_hole_block(ws):
    source = """
        def broken(:
            pass


        def f(x: int) -> int:
            return ▮
    """
    assert check(ws, "x + 1", source) == []
    assert kinds(check(ws, "(x + 1", source)) == ["syntax"]


def test_library_types_are_not_judged(ws):
    source = """
        import collections

        def f() -> collections.OrderedDict:
            d = collections.OrderedDict()
            return ▮
    """
    assert check(ws, "d.not_a_method()", source) == []


def test_false_positive_rate_on_real_code():
    """Splice real lines back into their own files: nothing may be reported."""
    rng = random.Random(7)
    files = sorted(p for pkg in ("json", "email") for p in package_dir(pkg).glob("*.py")
                   if p.stat().st_size < 60_000)
    checked = flagged = 0
    while checked < 40:
        path = rng.choice(files)
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        index = rng.randrange(len(lines))
        line = lines[index]
        body = line.strip()
        if len(body) < 6 or body.startswith(("#", '"', "'")):
            continue
        start = sum(len(s) + 1 for s in lines[:index])
        cut = len(line) - len(body) if checked % 2 else len(line) - len(body) + len(body) // 2
        doc = text[:start + cut] + text[start + len(line):]
        workspace = str(path.parent)
        expected = expected_type_at(doc, start + cut, str(path), workspace)
        errors = check_suggestion(doc, start + cut, line[cut:], str(path), workspace, expected)
        checked += 1
        flagged += bool(errors)
    assert flagged == 0
