"""Error rounds: check_suggestion's true and false positives (holefill.context.check)."""

from __future__ import annotations

import random
import sys
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


# --------------------------------------------------------------------------- scopes of names

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def undefined(ws, suggestion: str, source: str) -> list[str]:
    """The names check_suggestion reports as undefined (no type check)."""
    return [e.message.split("'")[1] for e in check(ws, suggestion, source, typed=False)
            if e.kind == "undefined-name"]


def test_parameter_of_another_method_is_not_defined():
    """The bug seen in examples/inventory.py:33:9: `name` is only a parameter of `remove`."""
    path = EXAMPLES / "inventory.py"
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    offset = sum(len(line) + 1 for line in lines[:32]) + 8  # line 33, column 9 (1-based)
    assert lines[32][:8] == " " * 8 and "def total_value(self)" in lines[30]
    workspace = str(path.parent)
    bad = "return self.items[name] * self.items[name].quantity"
    errors = check_suggestion(text, offset, bad, str(path), workspace)
    assert [(e.kind, e.message, e.line, e.column) for e in errors] == [
        ("undefined-name", "name 'name' is not defined", 33, 26)]
    good = "return sum(item.price * item.quantity for item in self.items.values())"
    assert check_suggestion(text, offset, good, str(path), workspace) == []


def test_class_attribute_read_unqualified_in_a_method(ws):
    source = """
        class Pricing:
            rate = 0.2

            def tax(self, amount: float) -> float:
                return ▮
    """
    errors = check(ws, "amount * rate", source, typed=False)
    assert kinds(errors) == ["undefined-name"] and errors[0].hint == "did you mean self.rate?"
    assert undefined(ws, "amount * self.rate", source) == []
    assert undefined(ws, "amount * Pricing.rate", source) == []
    # the class body itself sees its names
    source = "class Pricing:\n    rate = 0.2\n    double = ▮\n"
    assert undefined(ws, "rate * 2", source) == []
    assert undefined(ws, "ratio * 2", source) == ["ratio"]


def test_closure_reads_the_enclosing_function(ws):
    source = """
        def make_counter(start: int):
            total = start

            def bump(step):
                return ▮
            return bump


        def other(offset):
            return offset
    """
    assert undefined(ws, "total + step + start", source) == []  # free variables, a parameter
    assert undefined(ws, "(lambda: total + step)()", source) == []  # free in the suggestion
    assert undefined(ws, "total + offset", source) == ["offset"]  # another function's parameter
    # a class inside a function sees the function's names (not the class's from its methods)
    source = """
        def build(size):
            class Box:
                width = ▮
            return Box
    """
    assert undefined(ws, "size * 2", source) == []
    assert undefined(ws, "depth * 2", source) == ["depth"]


def test_module_names_and_globals_in_a_function(ws):
    source = """
        import os

        LIMIT = 10


        def setup():
            global CACHE
            CACHE = {}


        def use(key):
            return ▮


        def later():
            pass
    """
    assert undefined(ws, "CACHE.get(key, LIMIT) or os.sep or later()", source) == []
    assert undefined(ws, "CACHES.get(key)", source) == ["CACHES"]
    source = """
        def use():
            global COUNT
            COUNT = ▮
    """
    assert undefined(ws, "COUNT + 1", source) == []


def test_name_bound_later_in_the_same_function(ws):
    source = """
        def f(items):
            for item in items:
                if ▮:
                    break
            result = len(items)
            del gone
            return result
    """
    assert undefined(ws, "result and gone", source) == []  # local (conservatively: bound later)
    assert undefined(ws, "results", source) == ["results"]


def test_comprehension_variables(ws):
    source = """
        def f(rows):
            ▮
    """
    assert undefined(ws, "return [cell for row in rows for cell in row if cell]", source) == []
    assert undefined(ws, "return {k: v for k, v in rows}", source) == []
    assert undefined(ws, "return sum(x for x in rows)", source) == []


@pytest.mark.skipif((3, 12) <= sys.version_info < (3, 16),
                    reason="PEP 709: symtable merges a comprehension's names into the function's")
def test_comprehension_variable_outside_the_comprehension(ws):
    source = """
        def f(rows):
            total = [row for row in rows]
            ▮
    """
    assert undefined(ws, "return row", source) == ["row"]
    assert undefined(ws, "return [r for r in rows], r", source) == ["r"]


def test_generator_variable_outside_the_generator(ws):
    source = """
        def f(rows):
            total = sum(row for row in rows)
            ▮
    """
    assert undefined(ws, "return row", source) == ["row"]


def test_lambda_parameters(ws):
    source = """
        def cheapest(items):
            return ▮
    """
    assert undefined(ws, "min(items, key=lambda item: item.price)", source) == []
    assert undefined(ws, "min(items, key=lambda item: item.price) or item", source) == ["item"]
    assert undefined(ws, "(lambda a, b=items: a + b)(1)", source) == []
    assert undefined(ws, "(lambda a, b=a: a + b)(1)", source) == ["a"]  # defaults: outside


def test_nonlocal(ws):
    source = """
        def counter():
            count = 0

            def bump():
                nonlocal count
                ▮
            return bump


        def other():
            seen = 1
            return seen
    """
    assert undefined(ws, "count += 1\n    return count", source) == []
    assert undefined(ws, "return count + seen", source) == ["seen"]


def test_parameter_of_the_enclosing_function(ws):
    source = """
        def outer(prefix, *rest, sep=", ", **extra):
            def inner(word):
                return ▮
            return inner
    """
    assert undefined(ws, "prefix + sep.join(rest) + word + str(extra)", source) == []
    assert undefined(ws, "prefix + suffix", source) == ["suffix"]
