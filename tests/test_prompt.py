"""Context block and error feedback (holefill.context.prompt), and the JSON report."""

from __future__ import annotations

import json
import textwrap

import pytest

from holefill.context.check import CheckError
from holefill.context.holes import ExpectedType, Header, HoleContext, TypeDef, hole_context
from holefill.context.prompt import CLOSE, OPEN, context_block, error_feedback
from holefill.context.report import context_report, error_report, estimate_tokens


def words(text: str) -> int:
    return len(text.split())


def typedef(name: str, depth: int, body: str = "x: int", visible: bool = False) -> TypeDef:
    return TypeDef(name=name, qualname=f"models.{name}", kind="dataclass",
                   text=f"@dataclass\nclass {name}:\n    {body}", path="/w/models.py", line=1,
                   end_line=3, depth=depth, visible=visible)


def header(name: str, score: float, kind: str = "function", visible: bool = False) -> Header:
    sig = f"def {name}() -> Model: ..." if kind == "function" else f"{name}: Model"
    return Header(name=name, kind=kind, signature=sig, return_type="Model", path="/w/app.py",
                  line=1, score=score, visible=visible)


def hole(types=(), headers=(), type_: str | None = "Model", source: str = "return") -> HoleContext:
    return HoleContext(expected=ExpectedType(type_, source if type_ else "unknown"),
                       types=list(types), headers=list(headers), timings_ms={"total": 1.0})


FULL = hole(
    types=[typedef("Model", 0), typedef("Todo", 1), typedef("Filter", 1), typedef("Tag", 2)],
    headers=[header("model", 7.0, "param"), header("make", 6.0), header("load", 5.5),
             header("other", 5.0), header("last", 1.0)],
)


def test_layout():
    block = context_block(FULL, 1000, words)
    lines = block.splitlines()
    assert lines[0] == OPEN and lines[-1] == CLOSE and block.endswith("\n")
    assert lines[1] == "# Expected type at the cursor: Model"
    assert lines[2] == "# Definitions from models.py:"
    assert [line for line in lines if line.startswith("class ")] == [
        "class Model:", "class Todo:", "class Filter:", "class Tag:"]
    tail = lines[lines.index("# In scope with a fitting type:") + 1:-1]
    assert tail == ["# model: Model", "def make() -> Model: ...", "def load() -> Model: ...",
                    "def other() -> Model: ...", "def last() -> Model: ..."]


def test_deterministic_and_independent_of_timings():
    a = context_block(FULL, 60, words)
    b = context_block(hole(FULL.types, FULL.headers), 60, words)
    b_hole = hole(FULL.types, FULL.headers)
    b_hole.timings_ms = {"total": 999.0}
    assert a == b == context_block(b_hole, 60, words)


def test_truncation_order():
    size = {n: words(context_block(hole(FULL.types[:k], FULL.headers[:h]), 10_000, words))
            for n, (k, h) in {"t0": (1, 0), "t0h3": (1, 3), "t01h3": (3, 3)}.items()}
    # only the expected type and the depth-0 type fit
    block = context_block(FULL, size["t0"], words)
    assert "class Model:" in block and "class Todo:" not in block and "def make" not in block
    # then the 3 best headers before depth-1 types
    block = context_block(FULL, size["t0h3"], words)
    assert "def load" in block and "class Todo:" not in block and "def other" not in block
    # then depth-1 types before the remaining headers and depth-2 types
    block = context_block(FULL, size["t01h3"], words)
    assert "class Filter:" in block and "def other" not in block and "class Tag:" not in block
    # tighter budgets only ever remove items
    previous = None
    for budget in range(200, 0, -5):
        block = context_block(FULL, budget, words)
        assert words(block) <= budget
        if previous is not None:
            assert set(block.splitlines()) <= set(previous.splitlines())
        previous = block


def test_empty_when_nothing_to_say():
    assert context_block(hole(type_=None), 1000, words) == ""
    assert context_block(FULL, 3, words) == ""  # not even the expected type fits
    condition = hole(type_="bool", source="condition")
    assert context_block(condition, 1000, words) == ""
    assert "Expected type at the cursor: int" in context_block(hole(type_="int"), 1000, words)


def test_unknown_type_with_fallback_types_has_no_expected_line():
    block = context_block(hole(types=[typedef("Model", 1)], type_=None), 1000, words)
    assert "class Model:" in block and "Expected type" not in block


def test_visible_definitions_are_left_out():
    h = hole(types=[typedef("Model", 0, visible=True), typedef("Todo", 1)],
             headers=[header("make", 6.0, visible=True), header("load", 5.0)])
    block = context_block(h, 1000, words)
    assert "class Model:" not in block and "def make" not in block
    assert "class Todo:" in block and "def load" in block


def test_error_feedback():
    errors = [CheckError("undefined-name", "name 'modle' is not defined", 3, 11,
                         "did you mean model?"),
              CheckError("syntax", "syntax error: '(' was never\nclosed", 3, 4)]
    text = error_feedback(errors)
    assert text == (
        "# The previous suggestion for the cursor was rejected:\n"
        "# - name 'modle' is not defined (did you mean model?)\n"
        "# - syntax error: '(' was never closed\n"
        "# Write a corrected version.\n")
    assert error_feedback([]) == ""
    assert error_feedback(["plain text"]).splitlines()[1] == "# - plain text"


@pytest.fixture
def app(tmp_path):
    (tmp_path / "models.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass


        @dataclass
        class Model:
            count: int = 0
    '''))
    text = "from models import Model\n\n\ndef bump(model: Model) -> Model:\n    return "
    return tmp_path, text


def test_real_hole_block_is_byte_identical(app):
    ws, text = app
    path = str(ws / "app.py")
    a = context_block(hole_context(text, len(text), path, str(ws)), 256, estimate_tokens)
    b = context_block(hole_context(text, len(text), path, str(ws)), 256, estimate_tokens)
    assert a == b and "class Model:\n    count: int = 0" in a


def test_context_report_is_json(app):
    ws, text = app
    report = context_report(text, len(text), str(ws / "app.py"), str(ws))
    data = json.loads(json.dumps(report))
    assert data["expectedType"] == {"type": "Model", "source": "return",
                                    "definitions": ["models.Model"], "callee": None,
                                    "param": None}
    assert data["relevantTypes"][0]["name"] == "Model"
    assert data["relevantTypes"][0]["uri"] == (ws / "models.py").resolve().as_uri()
    assert data["relevantTypes"][0]["range"]["start"]["line"] == 4  # 0-based: the decorator
    assert data["relevantHeaders"][0]["signature"] == "model: Model"
    assert data["contextTokens"] == estimate_tokens(data["contextBlock"]) > 0
    assert data["timings_ms"]["total"] > 0


def test_error_report_shape(app):
    ws, text = app
    ok = error_report(text, len(text), "Model(model.count + 1)", str(ws / "app.py"), str(ws))
    assert ok == {"parseErrors": [], "typeErrors": [], "errors": []}
    bad = error_report(text, len(text), "Model(model.cnt", str(ws / "app.py"), str(ws))
    assert bad["parseErrors"] and not bad["typeErrors"]
    bad = error_report(text, len(text), "model.cnt", str(ws / "app.py"), str(ws))
    assert bad["typeErrors"] == ["line 5: 'Model' has no attribute 'cnt' (did you mean count?)"]
    assert bad["errors"][0]["kind"] == "unknown-attribute"
    assert bad["errors"][0]["range"]["start"] == {"line": 4, "character": 17}
