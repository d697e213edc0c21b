"""Golden tests for completion post-processing: mode, stopping, cleaning.

Documents mark the cursor with "█". Every expected value below was written from the rule it
illustrates, not copied from the implementation's output.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holefill.completion.postprocess import (
    CursorContext,
    _bracket_depth,
    analyze_cursor,
    clean_suggestion,
    should_stop,
)

CURSOR = "█"


def ctx_at(doc: str, **kw) -> CursorContext:
    offset = doc.index(CURSOR)
    return analyze_cursor(doc.replace(CURSOR, "", 1), offset, **kw)


def clean(doc: str, generated: str, **kw) -> str | None:
    return clean_suggestion(generated, ctx_at(doc, **kw))


def insert(doc: str, text: str) -> str:
    return doc.replace(CURSOR, text, 1)


# ----------------------------------------------------------------- analyze_cursor: mode

BLOCK_DOCS = [
    pytest.param("def f():\n    █\n", id="def"),
    pytest.param("def f():\n    █", id="def-at-eof"),
    pytest.param("async def f():\n    █\n", id="async-def"),
    pytest.param("class A:\n    █\n", id="class"),
    pytest.param("class A(Base):\n    def f(self):\n        █\n", id="method"),
    pytest.param("if x:\n    █\n", id="if"),
    pytest.param("if x:\n    pass\nelif y:\n    █\n", id="elif"),
    pytest.param("if x:\n    pass\nelse:\n    █\n", id="else"),
    pytest.param("for i in range(3):\n    █\n", id="for"),
    pytest.param("for i in range(3):\n    pass\nelse:\n    █\n", id="for-else"),
    pytest.param("while True:\n    █\n", id="while"),
    pytest.param("with open(p) as f, lock:\n    █\n", id="with"),
    pytest.param("try:\n    █\n", id="try"),
    pytest.param("try:\n    pass\nexcept ValueError as e:\n    █\n", id="except"),
    pytest.param("try:\n    pass\nexcept* OSError:\n    █\n", id="except-star"),
    pytest.param("try:\n    pass\nfinally:\n    █\n", id="finally"),
    pytest.param("match cmd:\n    █\n", id="match"),
    pytest.param("match cmd:\n    case [x, y]:\n        █\n", id="case"),
    pytest.param(
        "def f(\n    a: int,\n    b: str,\n) -> dict[str, int]:\n    █\n", id="multiline-def"
    ),
    pytest.param("if x:  # explain: why\n    █\n", id="opener-with-comment"),
    pytest.param("def f():\n    █\n    return 1\n", id="opener-body-below"),
    pytest.param("def f():\n    █    \n", id="inside-whitespace-only-line"),
    pytest.param("def f():\n\t█\n", id="tab"),
    pytest.param("def f():\r\n    █\r\n", id="crlf"),
    pytest.param("def f():\n█\n", id="cursor-col-0"),
    pytest.param('if s == "😀:":\n    █\n', id="non-bmp-before-colon"),
    pytest.param('x = "\udcff"\ndef f():\n    █\n', id="lone-surrogate-above"),
    pytest.param("x = (1,\ndef f():\n    █\n", id="syntax-error-above"),
    # Blank and comment-only lines between the opener and the cursor: the block is still empty.
    pytest.param("if x:\n\n    █\n", id="blank-line-between"),
    pytest.param("def f():\n    # TODO: write it\n    █\n", id="comment-between"),
    # A function whose body is only a docstring (and comments).
    pytest.param('def area(r):\n    """Area of a circle."""\n    █\n', id="docstring-only"),
    pytest.param("def f():\n    '''Doc.\n\n    More.\n    '''\n    █\n", id="multiline-docstring"),
    pytest.param('def f():\n    """Doc."""\n    # note\n    █\n', id="docstring-and-comment"),
    pytest.param(
        'class A:\n    def f(self):\n        """Doc."""\n        █\n', id="method-docstring-only"
    ),
    pytest.param('def f():\n    """Doc."""\n\n    █\n', id="docstring-blank-between"),
]

LINE_DOCS = [
    pytest.param("x = foo(█)\n", id="mid-line"),
    pytest.param("self.ite█\n", id="mid-identifier"),
    pytest.param("x = 1\n█\n", id="after-expression-col-0"),
    pytest.param("def f():\n    x = 1\n    █\n", id="after-statement-in-body"),
    pytest.param("def f():█\n", id="end-of-opener-line"),
    pytest.param("def f():\n    █pass\n", id="text-after-cursor"),
    pytest.param("if x: y = 1\n█\n", id="one-line-if"),
    pytest.param("x = [\n    █\n]\n", id="inside-brackets"),
    pytest.param('x = {\n    "a":\n    █\n', id="dict-colon"),
    pytest.param('x = {"a":\n    █\n', id="dict-colon-same-line"),
    pytest.param("def f(x:\n    █\n", id="annotation-colon-in-open-parens"),
    pytest.param("y = data[1:\n    █\n", id="slice-colon"),
    pytest.param("f = lambda:\n    █\n", id="lambda-colon"),
    pytest.param('s = """\nif x:\n█\n"""\n', id="inside-string"),
    pytest.param('s = """\nif x:\n█\n', id="inside-unterminated-string"),
    pytest.param('def f(x):\n    """Doc.\n\n    █\n    """\n', id="inside-docstring"),
    pytest.param("# if x:\n█\n", id="opener-in-comment"),
    pytest.param("x = 1  # else:\n    █\n", id="colon-in-trailing-comment"),
    pytest.param('def f(x):\n    """Doc."""\n█\n', id="after-docstring-col-0"),
    pytest.param('def f(x):\n    """Doc."""\n    return x\n    █\n', id="body-not-empty"),
    pytest.param('class A:\n    """Doc."""\n    █\n', id="class-docstring-only"),
    pytest.param('def f(x):\n    x = """Doc."""\n    █\n', id="assigned-string-not-docstring"),
    pytest.param("█", id="empty-document"),
    pytest.param("█x = 1\n", id="start-of-document"),
]


@pytest.mark.parametrize("doc", BLOCK_DOCS)
def test_block_mode(doc):
    assert ctx_at(doc).mode == "block"


@pytest.mark.parametrize("doc", LINE_DOCS)
def test_line_mode(doc):
    assert ctx_at(doc).mode == "line"


# ---------------------------------------------------------------- analyze_cursor: fields


def test_fields_mid_line():
    ctx = ctx_at("def f():\n    return foo(a█, b)\n")
    assert ctx == CursorContext(
        mode="line",
        line_prefix="    return foo(a",
        line_suffix=", b)",
        indent="    ",
        indent_unit="    ",
        block_indent_width=4,
        suffix=", b)\n",
        continue_brackets=False,  # the text after the cursor closes the bracket
    )


def test_a_bracket_the_following_text_closes_ends_the_line_at_its_newline():
    open_call = ctx_at("x = call(a=1, █")
    assert open_call.continue_brackets  # nothing closes it: the suggestion goes on
    assert not should_stop("c=3,\n", open_call)
    closed = ctx_at("x = call(a=1, █\n    b=2,\n)\n")  # the next lines close it
    assert not closed.continue_brackets
    assert not should_stop("c=3,", closed) and should_stop("c=3,\n", closed)


def test_fields_block_after_opener():
    ctx = ctx_at("def f():\n    █\n\nx = 1\n")
    assert ctx == CursorContext(
        mode="block",
        line_prefix="    ",
        line_suffix="",
        indent="    ",
        indent_unit="    ",
        block_indent_width=4,
        suffix="\n\nx = 1\n",
    )


def test_fields_crlf_line_suffix_has_no_carriage_return():
    ctx = ctx_at("x = foo(█)\r\ny = 2\r\n")
    assert (ctx.line_prefix, ctx.line_suffix, ctx.suffix) == ("x = foo(", ")", ")\r\ny = 2\r\n")


@pytest.mark.parametrize(
    ("doc", "indent", "width"),
    [
        # The indentation already typed before the cursor is the line's indentation.
        pytest.param("def f():\n    █\n", "    ", 4, id="auto-indented"),
        # Cursor at column 0 after an opener: nothing typed yet; the block is one unit deeper.
        pytest.param("def f():\n█\n", "", 4, id="col-0"),
        pytest.param("class A:\n    def f(self):\n█\n", "", 8, id="col-0-nested"),
        # An existing body below fixes the block's width.
        pytest.param("def f():\n█\n        return 1\n", "", 8, id="col-0-body-below"),
        # The cursor deeper than the opener: the block is where the cursor is.
        pytest.param("if x:\n        █\n", "        ", 8, id="deeper-cursor"),
        pytest.param("class A:\n    def f(self):\n        █\n", "        ", 8, id="method"),
        # Docstring-only function: the block is at the docstring's column.
        pytest.param('def f():\n    """Doc."""\n        █\n', "        ", 4, id="docstring"),
        # Tabs count TAB_WIDTH (4) columns.
        pytest.param("def f():\n\t█\n", "\t", 4, id="tab"),
        # Line mode: the indentation of the cursor line, whatever precedes the cursor.
        pytest.param("def f():\n    x = g(█)\n", "    ", 4, id="line-mode"),
        pytest.param("def f():\n    x = 1\n  █\n", "  ", 2, id="line-mode-partial-indent"),
    ],
)
def test_indent_and_block_width(doc, indent, width):
    ctx = ctx_at(doc)
    assert (ctx.indent, ctx.block_indent_width) == (indent, width)


# ------------------------------------------------------------ analyze_cursor: indent unit


@pytest.mark.parametrize(
    ("doc", "kw", "unit"),
    [
        pytest.param("class A:\n    def f(self):\n        pass\n█", {}, "    ", id="4-spaces"),
        pytest.param("def f():\n  if x:\n    pass\n█", {}, "  ", id="2-spaces"),
        pytest.param("def f():\n\tif x:\n\t\tpass\n█", {}, "\t", id="tabs"),
        pytest.param("x = 1\ny = 2\n█", {}, "    ", id="no-indentation-default"),
        pytest.param("█", {}, "    ", id="empty-default"),
        # Hanging indentation (8) is outvoted by the block steps (4).
        pytest.param(
            "def f():\n    x = foo(\n            1)\n    if x:\n        pass\n█",
            {},
            "    ",
            id="most-common-step",
        ),
        # Formatting options override the detection.
        pytest.param("def f():\n    pass\n█", {"insert_spaces": False}, "\t", id="opts-tabs"),
        pytest.param(
            "def f():\n\tpass\n█",
            {"tab_size": 2, "insert_spaces": True},
            "  ",
            id="opts-2-spaces",
        ),
        pytest.param(
            "def f():\n\tpass\n█", {"insert_spaces": True}, "    ", id="opts-spaces-no-size"
        ),
        pytest.param(
            "def f():\n  pass\n█", {"insert_spaces": True}, "  ", id="opts-spaces-detected-size"
        ),
        pytest.param("def f():\n\tpass\n█", {"tab_size": 8}, "\t", id="opts-size-only"),
    ],
)
def test_indent_unit(doc, kw, unit):
    assert ctx_at(doc, **kw).indent_unit == unit


# -------------------------------------------------------------- analyze_cursor: robustness


@pytest.mark.parametrize(
    ("text", "offset", "prefix", "suffix"),
    [
        ("x = 1\n", -5, "", "x = 1\n"),
        ("x = 1\n", 10_000, "", ""),
        ("x = 1", 10_000, "x = 1", ""),
        ("", 3, "", ""),
    ],
)
def test_offset_is_clamped(text, offset, prefix, suffix):
    ctx = analyze_cursor(text, offset)
    assert (ctx.line_prefix, ctx.suffix, ctx.mode) == (prefix, suffix, "line")


def test_lone_surrogates_do_not_crash():
    text = 'def f():\n    s = "\ud800"\n    \n'
    ctx = analyze_cursor(text, len(text) - 1)
    assert ctx.mode == "line"  # the previous line is a statement, not an opener
    assert ctx.line_prefix == "    "


def _big_file(n_lines: int) -> str:
    chunk = [
        "class Thing{i}:",
        '    """A thing."""',
        "",
        "    def method(self, a, b=None):",
        "        if a and b:",
        "            return {'a': a, 'b': [b, (a, b)]}",
        "        for i in range(10):",
        "            print(i, a)",
        "        return None",
        "",
    ]
    lines: list[str] = []
    i = 0
    while len(lines) < n_lines:
        lines.extend(x.replace("{i}", str(i)) for x in chunk)
        i += 1
    return "\n".join(lines[:n_lines]) + "\n"


def test_fast_on_a_2000_line_file():
    text = _big_file(1995) + "def tail(x):\n    \n" + _big_file(5)
    offset = text.index("def tail(x):\n    ") + len("def tail(x):\n    ")
    assert len(text.split("\n")) >= 2000
    assert analyze_cursor(text, offset).mode == "block"
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        analyze_cursor(text, offset)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.050, f"analyze_cursor took {best * 1000:.1f} ms"


# -------------------------------------------------------------------- should_stop: line


@pytest.mark.parametrize(
    ("doc", "generated", "stop"),
    [
        ("x = █\n", "foo", False),
        ("x = █\n", "foo(1, ", False),
        ("x = █\n", "foo()\n", True),
        ("x = █\n", "foo()\nbar", True),
        # A leading newline ends the line when the line prefix is non-empty...
        ("x = █\n", "\n", True),
        ("def f():\n    x = 1\n    █\n", "\n", True),  # whitespace counts as non-empty
        # ...but not at column 0: the line starts after the leading blank lines.
        ("x = 1\n█\n", "\n", False),
        ("x = 1\n█\n", "\n\n   ", False),
        ("x = 1\n█\n", "\n  y = 2", False),
        ("x = 1\n█\n", "\n  y = 2\n", True),
        ("x = 1\n█\n", "y = 2\n", True),
    ],
)
def test_should_stop_line_mode(doc, generated, stop):
    ctx = ctx_at(doc)
    assert ctx.mode == "line"
    assert should_stop(generated, ctx) is stop


# ------------------------------------------------------------------- should_stop: block

DEF_BLOCK = "def f(x):\n    █\n"  # block at width 4, cursor after the indentation


@pytest.mark.parametrize(
    ("generated", "stop"),
    [
        ("y = 1", False),
        ("y = 1\n", False),
        ("y = 1\n    return y", False),
        ("y = 1\n    return y\n", False),
        ("y = 1\n    if y:\n        return y\n", False),
        ("    y = 1\n", False),  # re-spelled indentation: width 8, still inside
        ("y = 1\nprint(1)", False),  # the dedented line is not complete yet
        ("y = 1\nprint(1)\n", True),
        ("y = 1\n  z = 2\n", True),  # 2 < 4
        ("y = 1\n\n", False),  # one blank line
        ("y = 1\n\n    z = 2\n", False),
        ("y = 1\n\n\n", True),  # two blank lines in a row
        ("y = 1\n   \n\t\n", True),  # whitespace-only lines are blank
        ("\n", False),  # the cursor line left blank: one blank line
        ("\n\n", True),
        ("\n    return x\n", False),
        ("return x\n\ndef g():\n", True),
    ],
)
def test_should_stop_block_mode(generated, stop):
    ctx = ctx_at(DEF_BLOCK)
    assert (ctx.mode, ctx.block_indent_width) == ("block", 4)
    assert should_stop(generated, ctx) is stop


@pytest.mark.parametrize(
    ("generated", "stop"),
    [
        ("y = 1\n\tz = 2\n", False),
        ("y = 1\n    z = 2\n", False),  # 4 spaces are as wide as one tab
        ("y = 1\nz = 2\n", True),
    ],
)
def test_should_stop_block_mode_tabs(generated, stop):
    ctx = ctx_at("def f(x):\n\t█\n")
    assert (ctx.mode, ctx.block_indent_width) == ("block", 4)
    assert should_stop(generated, ctx) is stop


def test_should_stop_block_mode_cursor_at_col_0():
    ctx = ctx_at("def f(x):\n█\n")
    assert (ctx.mode, ctx.block_indent_width) == ("block", 4)
    assert should_stop("    return x\n", ctx) is False
    assert should_stop("return x\n", ctx) is True  # the first line itself dedents


# -------------------------------------------------------------- clean_suggestion: line


@pytest.mark.parametrize(
    ("doc", "generated", "expected"),
    [
        # Rule 1: only the first line.
        pytest.param("self.ite█\n", "ms.append(x)\nfoo()\n", "ms.append(x)", id="first-line"),
        pytest.param("x = █\n", "compute(1, 2)", "compute(1, 2)", id="no-newline"),
        pytest.param("x = 1█\n", "\ny = 2\n", None, id="leading-newline-after-text"),
        pytest.param(
            "import os\n█\n",
            "\ndef main():\n    pass\n",
            "\ndef main():",
            id="leading-newline-at-col-0-kept",
        ),
        # Rule 4: trailing whitespace and empty results.
        pytest.param("x = █\n", "1   \n", "1", id="trailing-space"),
        pytest.param("x = █\n", "   ", None, id="whitespace-only"),
        pytest.param("x = █\n", "", None, id="empty"),
        pytest.param("x = █\n", "\t\n", None, id="blank-first-line"),
        # Rule 3: the cursor is already after the indentation.
        pytest.param(
            "def f():\n    x = 1\n    █\n", "    return x\n", "return x", id="no-double-indent"
        ),
        pytest.param(
            "def f():\n\tx = 1\n█\n", "    return x\n", "\treturn x", id="col-0-spaces-to-tab"
        ),
        pytest.param(
            "def f():\n    x = 1\n█\n", "\treturn x\n", "    return x", id="col-0-tab-to-spaces"
        ),
    ],
)
def test_clean_line_mode(doc, generated, expected):
    assert ctx_at(doc).mode == "line"
    assert clean(doc, generated) == expected


@pytest.mark.parametrize(
    ("doc", "generated", "expected"),
    [
        # A bracket opened in the suggestion keeps the line going until it closes.
        pytest.param(
            "def f():\n    todo = █\n",
            "Todo(\n        title='a',\n        done=False,\n    )\n    return todo\n",
            "Todo(\n        title='a',\n        done=False,\n    )",
            id="call-over-lines",
        ),
        # A bracket opened on the cursor line counts too.
        pytest.param(
            "items = [█\n",
            "1,\n    2,\n]\nprint(items)\n",
            "1,\n    2,\n]",
            id="open-bracket-in-prefix",
        ),
        # Brackets inside strings and comments do not count.
        pytest.param('x = █\n', '"(" + y  # (\nz = 1\n', '"(" + y  # (', id="string-bracket"),
        # Closing a bracket of the prefix ends the line as usual.
        pytest.param("f(a, █\n", "b)\nnext()\n", "b)", id="closes-prefix"),
    ],
)
def test_line_mode_continues_while_a_bracket_is_open(doc, generated, expected):
    ctx = ctx_at(doc)
    assert ctx.mode == "line"
    assert clean(doc, generated) == expected
    cut = generated.index(expected.split("\n")[-1]) + len(expected.split("\n")[-1]) + 1
    assert should_stop(generated[:cut], ctx) and not should_stop(generated[: cut - 2], ctx)


@pytest.mark.parametrize(
    ("doc", "generated", "expected"),
    [
        # Auto-inserted closers after the cursor are not doubled.
        pytest.param("x = foo(█)\n", "a, b)\nprint(x)\n", "a, b", id="paren"),
        pytest.param("x = [█]\n", "1, 2, 3]", "1, 2, 3", id="bracket"),
        pytest.param("d = {█}\n", "'a': 1}", "'a': 1", id="brace"),
        pytest.param('print("█")\n', 'hello")', "hello", id="quote-paren"),
        pytest.param('print("█")\n', 'hello"', "hello", id="partial-overlap"),
        pytest.param('print("█")\n', "don't\")", "don't", id="apostrophe-inside"),
        pytest.param(
            'if check("█"):\n    pass\n', 'abc"):\n    return 1', "abc", id="quote-paren-colon"
        ),
        pytest.param('def f():\n    """█"""\n', 'Do it."""', "Do it.", id="triple-quote"),
        pytest.param("x = foo(bar(█))\n", "1))", "1", id="two-closers"),
        pytest.param("x = foo(bar(█))\n", "1)", "1", id="one-of-two-closers"),
        pytest.param("foo(a█, b)\n", "bc, ", "bc", id="comma"),
        pytest.param("def f(x)█:\n", " -> int:", " -> int", id="colon"),
        pytest.param("foo(█bar)\n", "bar)", None, id="whole-suffix-repeated"),
        pytest.param("x = 1█  # note\n", "  # note", None, id="whole-comment-repeated"),
        # Closers that belong to the suggestion stay.
        pytest.param("x = foo(█)\n", "bar(1)", "bar(1)", id="own-closer"),
        pytest.param("x = foo(█)\n", "bar(1))", "bar(1)", id="own-and-duplicate-closer"),
        pytest.param("x = foo(█)\n", "bar()", "bar()", id="own-empty-call"),
        pytest.param('x = "█"\n', 'a" + "b"', 'a" + "b', id="quotes-balanced-by-suffix"),
        # An identifier that only happens to match the start of the suffix stays.
        pytest.param("y = █x + 1\n", "2 * x", "2 * x", id="identifier-not-stripped"),
        pytest.param("foo(█)\n", "", None, id="empty"),
    ],
)
def test_clean_duplicate_line_suffix(doc, generated, expected):
    assert clean(doc, generated) == expected


def test_clean_duplicate_suffix_document():
    doc = 'if check("█"):\n    pass\n'
    assert insert(doc, clean(doc, 'abc"):')) == 'if check("abc"):\n    pass\n'


# ------------------------------------------------------------- clean_suggestion: block


@pytest.mark.parametrize(
    ("doc", "generated", "expected"),
    [
        # Rule 1: lines until one dedents below the block; trailing blank lines dropped.
        pytest.param(
            "def f(x):\n    █\n",
            "y = x + 1\n    return y\n\nprint(f(1))\n",
            "y = x + 1\n    return y",
            id="stop-at-dedent",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "a = 1\n\n\n    b = 2\n",
            "a = 1",
            id="stop-at-two-blank-lines",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "a = 1   \n\n    b = 2  \n",
            "a = 1\n\n    b = 2",
            id="inner-blank-line-kept-trailing-space-stripped",
        ),
        pytest.param(
            "class A:\n    def f(self):\n        █\n",
            "if self.x:\n            return 1\n        return 0\n    def g(self):\n",
            "if self.x:\n            return 1\n        return 0",
            id="method-stops-at-next-method",
        ),
        pytest.param(
            'def area(r):\n    """Area of a circle."""\n    █\n',
            "return 3.14159 * r * r\n\n\ndef other():\n",
            "return 3.14159 * r * r",
            id="docstring-only-function",
        ),
        pytest.param("def f(x):\n    █\n", "return x\nx = 1", "return x", id="dedent-no-newline"),
        pytest.param("def f(x):\n    █\n", "\n\n", None, id="only-blank-lines"),
        pytest.param("def f(x):\n    █\n", "print(x)\n", "print(x)", id="single-line"),
        # Rule 3: the first line is not indented again; leading blank lines are dropped.
        pytest.param("def f(x):\n    █\n", "    return x\n", "return x", id="respelled-indent"),
        pytest.param(
            "def f(x):\n    █\n",
            "    y = x\n    return y\n",
            "y = x\n    return y",
            id="respelled-indent-two-lines",
        ),
        pytest.param("def f(x):\n    █\n", "\n    return x\n", "return x", id="leading-blank-line"),
        pytest.param("def f(x):\n█\n", "    return x\n", "    return x", id="col-0-keeps-indent"),
        pytest.param(
            "class A:\n\tx = 1\n\ndef f(x):\n█\n",
            "    return x\n",
            "\treturn x",
            id="col-0-tab-file",
        ),
        # Rule 3: the model's indentation is rewritten in the file's unit.
        pytest.param(
            "def g():\n\tpass\n\ndef f(x):\n\t█\n",
            "if x:\n        return 1\n    return 2\n",
            "if x:\n\t\treturn 1\n\treturn 2",
            id="spaces-to-tabs",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "for i in x:\n\t\tprint(i)\n",
            "for i in x:\n        print(i)",
            id="tabs-to-spaces",
        ),
        pytest.param(
            "def g():\n  pass\n\n\ndef f(x):\n  █\n",
            "if x:\n      return 1\n  return 2\n",
            "if x:\n    return 1\n  return 2",
            id="4-space-levels-to-2",
        ),
        pytest.param(
            "def g():\n    pass\n\n\ndef f(x):\n    █\n",
            "if x:\n      return 1\n    return 2\n",
            "if x:\n        return 1\n    return 2",
            id="2-space-levels-to-4",
        ),
        pytest.param(
            "def g():\n\tpass\n\ndef f(x):\n\t█\n",
            "if x:\n\t\treturn 1\n\treturn 2\n",
            "if x:\n\t\treturn 1\n\treturn 2",
            id="tabs-unchanged",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "y = foo(a,\n            b)\n    return y\n",
            "y = foo(a,\n            b)\n    return y",
            id="hanging-alignment-kept",
        ),
        pytest.param(
            "def g():\n\tpass\n\ndef f(x):\n\t█\n",
            "y = foo(a,\n            b)\n    return y\n",
            "y = foo(a,\n\t\t\tb)\n\treturn y",
            id="hanging-alignment-in-tab-file",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "if x:\n        y = [\n            1,\n        ]\n",
            "if x:\n        y = [\n            1,\n        ]",
            id="nested-unchanged",
        ),
        pytest.param(
            "def f(x):\n    █\n",
            "if x:\n\n        return 1\n",
            "if x:\n\n        return 1",
            id="blank-line-inside-has-no-indent",
        ),
    ],
)
def test_clean_block_mode(doc, generated, expected):
    assert ctx_at(doc).mode == "block"
    assert clean(doc, generated) == expected


def test_clean_block_mode_uses_formatting_options():
    # A file with no indentation to learn from; the client asks for 2 spaces.
    doc = "def f(x):\n█\n"
    generated = "    if x:\n        return 1\n"
    assert clean(doc, generated) == "    if x:\n        return 1"
    assert clean(doc, generated, tab_size=2, insert_spaces=True) == "  if x:\n    return 1"
    assert clean(doc, generated, insert_spaces=False) == "\tif x:\n\t\treturn 1"


@pytest.mark.parametrize(
    ("doc", "generated", "expected"),
    [
        pytest.param(
            "def f(x):\n    █\n    return y\n",
            "y = x * 2\n    return y\n",
            "y = x * 2",
            id="last-line-repeats-next-line",
        ),
        pytest.param(
            "def f(x):\n    █\n    y = x * 2\n    return y\n",
            "z = 1\n    y = x * 2\n    return y\n",
            "z = 1",
            id="two-lines",
        ),
        pytest.param(
            "def f(x):\n    █\n    return y\n", "return y\n", None, id="whole-suggestion-repeated"
        ),
        pytest.param(
            "def f(x):\n    █\n\n    return y\n",
            "y = x * 2\n    return y\n",
            "y = x * 2",
            id="blank-line-before-next-line",
        ),
        pytest.param(
            "def f(x):\n\t█\n\treturn y\n",
            "y = x\n    return y\n",
            "y = x",
            id="compared-after-reindent",
        ),
        pytest.param(
            "def f(x):\n    █\n    return y\n",
            "y = 1\n    return y + 1\n",
            "y = 1\n    return y + 1",
            id="different-line-kept",
        ),
        pytest.param(
            "def f(x):\n    █\n    return y\n",
            "return y\n    y = 1\n",
            "return y\n    y = 1",
            id="only-the-tail-is-compared",
        ),
    ],
)
def test_clean_block_duplicate_following_lines(doc, generated, expected):
    assert ctx_at(doc).mode == "block"
    assert clean(doc, generated) == expected


def test_clean_block_document():
    doc = "def f(x):\n    █\n    return y\n"
    text = clean(doc, "    y = x * 2\n    return y\n\nprint(f(2))\n")
    assert insert(doc, text) == "def f(x):\n    y = x * 2\n    return y\n"


# ------------------------------------------------------------------ properties


CODE_PIECES = [
    "def f(x):",
    "class A:",
    "if x:",
    "else:",
    "return x",
    "pass",
    "\n",
    "\n",
    "    ",
    "\t",
    " ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    '"',
    "'",
    '"""',
    "#",
    "\r\n",
    "x",
    "😀",
    "\ud800",
]
code_text = st.lists(st.sampled_from(CODE_PIECES), max_size=40).map("".join)
any_text = st.one_of(
    code_text,
    st.text(max_size=60),
    st.text(alphabet=st.characters(categories=["Cs", "Zs", "Cc", "Ll"]), max_size=40),
)

contexts_from_documents = st.builds(
    lambda text, pos, size, spaces: analyze_cursor(text, pos, size, spaces),
    any_text,
    st.integers(min_value=-5, max_value=80),
    st.one_of(st.none(), st.integers(min_value=-1, max_value=9)),
    st.one_of(st.none(), st.booleans()),
)
arbitrary_contexts = st.builds(
    CursorContext,
    mode=st.sampled_from(["line", "block", "other"]),
    line_prefix=any_text,
    line_suffix=any_text,
    indent=any_text,
    indent_unit=st.sampled_from(["", "\t", " ", "  ", "    ", "x", " \t"]),
    block_indent_width=st.integers(min_value=-4, max_value=16),
    suffix=any_text,
)
any_context = st.one_of(contexts_from_documents, arbitrary_contexts)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=any_text, offset=st.integers(min_value=-10, max_value=100))
def test_analyze_cursor_never_raises(text, offset):
    ctx = analyze_cursor(text, offset)
    assert ctx.mode in ("line", "block")
    assert "\n" not in ctx.line_prefix and "\n" not in ctx.line_suffix
    assert ctx.indent_unit == "\t" or set(ctx.indent_unit) == {" "}
    assert ctx.block_indent_width >= 0


@SETTINGS
@given(generated=any_text, ctx=any_context)
def test_clean_suggestion_never_raises(generated, ctx):
    result = clean_suggestion(generated, ctx)
    assert should_stop(generated, ctx) in (True, False)
    if result is None:
        return
    assert result.strip()
    assert all(line == line.rstrip() for line in result.split("\n"))
    if ctx.mode != "block" and ctx.line_prefix:
        # One line, unless a bracket opened on the cursor line or in the suggestion is still
        # open where the line breaks.
        base = max(0, _bracket_depth(ctx.line_prefix))
        for i, ch in enumerate(result):
            if ch == "\n":
                assert base + _bracket_depth(result[:i]) > 0


@SETTINGS
@given(generated=code_text, ctx=contexts_from_documents)
def test_stopping_then_cleaning_equals_cleaning(generated, ctx):
    """Decoding char by char until should_stop, then cleaning, gives what cleaning the whole text
    gives: the stop rule and the cut rule agree."""
    for end in range(1, len(generated) + 1):
        if should_stop(generated[:end], ctx):
            assert clean_suggestion(generated[:end], ctx) == clean_suggestion(generated, ctx)
            return
