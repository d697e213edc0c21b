"""Post-processing of generated completions: single line vs block, stopping, cleaning.

Three functions, used by the engine around its decoding loop:

- `analyze_cursor(text, offset)` looks at the syntax position of the cursor once per request and
  returns a `CursorContext`: whether a single line or a block is wanted, the text around the cursor,
  the indentation of the line being written, the file's indentation unit and the width of the block
  the cursor is in.
- `should_stop(generated, ctx)` is called after every decoded token with the text generated so far
  and says when the suggestion is complete (cheap, pure).
- `clean_suggestion(generated, ctx)` turns the raw text into exactly what is inserted at the cursor
  (or None): cut to one line or to the block, strip text that duplicates what follows the cursor,
  re-indent to the file's indentation unit, strip trailing whitespace.

Indentation widths are measured in columns with tab stops every `TAB_WIDTH` columns, the same in
all three functions, so a model's 4-space levels and a file's tabs compare equal.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import tree_sitter_python
from tree_sitter import Language, Node, Parser

__all__ = ["CursorContext", "TAB_WIDTH", "analyze_cursor", "clean_suggestion", "should_stop"]

TAB_WIDTH = 4  # columns per tab stop when comparing indentation widths

# Statements whose line ends with the ':' that opens an indented block.
_OPENER_PARENTS = frozenset(
    {
        "function_definition",
        "class_definition",
        "if_statement",
        "elif_clause",
        "else_clause",
        "for_statement",
        "while_statement",
        "with_statement",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "match_statement",
        "case_clause",
    }
)
# Fallback for trees with syntax errors, where the ':' may hang under an ERROR node.
_OPENER_LINE = re.compile(
    r"[ \t]*(?:async[ \t]+)?"
    r"(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
_MAX_LINES_BACK = 200  # how far up blank/comment lines are skipped to find the previous code line
_NON_WS = re.compile(r"\S")
_CLOSERS = (("(", ")"), ("[", "]"), ("{", "}"))
_QUOTES = ("'", '"')


@dataclass
class CursorContext:
    mode: str  # "line" or "block"
    line_prefix: str  # text of the cursor line before the cursor
    line_suffix: str  # text of the cursor line after the cursor
    indent: str  # indentation of the line being written at the cursor
    indent_unit: str  # one level of indentation used by the file: "\t" or N spaces
    block_indent_width: int  # columns of the block the cursor is in; block mode stops below it
    suffix: str  # the document text after the cursor (for duplicate-suffix stripping)
    # line mode: a line that leaves a bracket open goes on (up to MAX_CONTINUATION_LINES),
    # except where the text after the cursor closes the brackets itself (arguments on the
    # following lines: going on would write those lines again)
    continue_brackets: bool = True


# --------------------------------------------------------------------------- helpers


def _lead(s: str) -> str:
    """Leading indentation (spaces and tabs) of `s`."""
    return s[: len(s) - len(s.lstrip(" \t"))]


def _width(ws: str) -> int:
    """Column width of an indentation string, tab stops every TAB_WIDTH columns."""
    if "\t" not in ws:
        return len(ws)
    w = 0
    for ch in ws:
        w = w + TAB_WIDTH - w % TAB_WIDTH if ch == "\t" else w + 1
    return w


def _is_blank(s: str) -> bool:
    return not s.strip()


def _ws_only(s: str) -> bool:
    """True when `s` is empty or only spaces/tabs (an indentation)."""
    return not s.strip(" \t")


def _to_unit(width: int, unit: str) -> str:
    """An indentation of `width` columns written in the file's style."""
    if unit.startswith("\t"):
        return "\t" * (width // TAB_WIDTH) + " " * (width % TAB_WIDTH)
    return " " * width


def _unit_of(ctx: CursorContext) -> str:
    unit = ctx.indent_unit
    if not unit or not _ws_only(unit):
        return "    "
    return unit


# ------------------------------------------------------------------------ analyze_cursor

_language: Language | None = None
_local = threading.local()


def _parser() -> Parser:
    global _language
    parser = getattr(_local, "parser", None)
    if parser is None:
        if _language is None:
            _language = Language(tree_sitter_python.language())
        parser = Parser(_language)
        _local.parser = parser
    return parser


def _encode(s: str) -> bytes:
    # surrogatepass keeps one code unit -> a fixed number of bytes, so byte columns stay exact
    # even for text with lone surrogates (invalid UTF-8 is tolerated by tree-sitter).
    return s.encode("utf-8", "surrogatepass")


def _detect_indent_unit(lines: list[str]) -> str:
    """Most common indentation step of the file ("\\t" or N spaces); 4 spaces when unknown."""
    counts: Counter[str] = Counter()
    prev = 0
    for line in lines:
        body = line.lstrip(" \t")
        if not body.strip():
            continue
        lead = line[: len(line) - len(body)]
        w = _width(lead)
        if w > prev:
            if "\t" in lead:
                counts["\t"] += 1
            elif w - prev <= 8:
                counts[" " * (w - prev)] += 1
        prev = w
    if not counts:
        return "    "
    return max(counts.items(), key=lambda kv: (kv[1], kv[0] == "    ", -len(kv[0])))[0]


def _last_code_node(root: Node, line: str, row: int) -> Node | None:
    """The last syntax leaf on `line` (row `row`) that is not a comment; None when it has none."""
    s = line.rstrip()
    while s:
        start = len(_encode(s[:-1]))
        end = start + len(_encode(s[-1]))
        node = root.descendant_for_point_range((row, start), (row, end))
        if node is None:
            return None
        if node.type != "comment":
            return node
        if node.start_point[0] != row:
            return None
        s = _encode(line)[: node.start_point[1]].decode("utf-8", "surrogatepass").rstrip()
    return None


def _balanced_brackets(s: str) -> bool:
    return all(s.count(o) == s.count(c) for o, c in _CLOSERS)


def _after_unterminated_triple_string(colon: Node) -> bool:
    """Whether an unterminated triple-quoted string (an orphan string_start under an ERROR node)
    precedes `colon`: then the ':' is most likely text inside that string."""
    pos = colon.start_byte
    n = colon.parent
    while n is not None:
        if n.type == "ERROR":
            for child in n.children:
                if child.start_byte >= pos:
                    break
                group = child.children if child.type == "ERROR" else (child,)
                for c in group:
                    if c.type == "string_start" and c.start_byte < pos:
                        text = c.text or b""
                        if b'"""' in text or b"'''" in text:
                            return True
        n = n.parent
    return False


def _opens_block(node: Node, line: str, has_error: bool) -> bool:
    """Whether `node` (the last code token of `line`) is the ':' opening a compound statement."""
    if node.type != ":":
        return False
    parent = node.parent
    if parent is not None and parent.type in _OPENER_PARENTS:
        return True
    if not has_error:
        return False
    # Error recovery may have put the ':' under an ERROR node: fall back on the line's text.
    head = _encode(line)[: node.start_point[1]].decode("utf-8", "surrogatepass")
    return (
        _OPENER_LINE.match(line) is not None
        and _balanced_brackets(head)
        and not _after_unterminated_triple_string(node)
    )


def _docstring_only_function(node: Node, row: int) -> tuple[Node, Node] | None:
    """When `node` (the last code token of row `row`) ends the docstring of a function whose body
    is only that docstring (and comments), return (function_definition, docstring statement)."""
    stmt: Node | None = node
    for _ in range(6):
        if stmt is None or stmt.type == "expression_statement":
            break
        stmt = stmt.parent
    if stmt is None or stmt.type != "expression_statement" or stmt.end_point[0] != row:
        return None
    if stmt.named_child_count != 1:
        return None
    value = stmt.named_children[0]
    if value.type not in ("string", "concatenated_string") or value.has_error:
        return None
    block = stmt.parent
    if block is None or block.type != "block":
        return None
    func = block.parent
    if func is None or func.type != "function_definition":
        return None
    statements = [c for c in block.named_children if c.type != "comment"]
    if len(statements) != 1 or statements[0].start_byte != stmt.start_byte:
        return None
    return func, stmt


def analyze_cursor(
    text: str,
    offset: int,
    tab_size: int | None = None,
    insert_spaces: bool | None = None,
) -> CursorContext:
    """Describe the cursor at character `offset` of `text` (clamped into range).

    `tab_size`/`insert_spaces` are the client's formatting options; they override the indentation
    unit detected from the file.
    """
    offset = max(0, min(int(offset), len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    line_prefix = text[line_start:offset]
    line_suffix = text[offset:line_end]
    if line_suffix.endswith("\r"):
        line_suffix = line_suffix[:-1]
    if not line_suffix and line_prefix.endswith("\r"):  # cursor between '\r' and '\n'
        line_prefix = line_prefix[:-1]
    suffix = text[offset:]

    lines = text.split("\n")
    detected = _detect_indent_unit(lines)
    if insert_spaces is False:
        unit = "\t"
    elif insert_spaces:
        if isinstance(tab_size, int) and 1 <= tab_size <= 16:
            unit = " " * tab_size
        else:
            unit = detected if detected != "\t" else "    "
    else:
        unit = detected
    unit_w = _width(unit)

    prefix_ws = _ws_only(line_prefix)
    indent = line_prefix if prefix_ws else _lead(text[line_start:line_end])
    mode = "line"
    block_width = _width(indent)

    if prefix_ws and not line_suffix.strip():
        found = _block_position(text, lines, text.count("\n", 0, offset), line_prefix, unit_w)
        if found is not None:
            mode, block_width = "block", found
    depth = _bracket_depth(line_prefix)
    continue_brackets = not (depth > 0 and depth + _bracket_depth(suffix[:_SUFFIX_SCAN_CHARS]) <= 0)

    return CursorContext(
        mode=mode,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        indent=indent,
        indent_unit=unit,
        block_indent_width=block_width,
        suffix=suffix,
        continue_brackets=continue_brackets,
    )


def _block_position(
    text: str, lines: list[str], row: int, line_prefix: str, unit_w: int
) -> int | None:
    """For a cursor on a blank line: the width of the block to generate, or None for line mode."""
    tree = _parser().parse(_encode(text))
    root = tree.root_node
    prev_row = row - 1
    node: Node | None = None
    while prev_row >= 0 and row - prev_row <= _MAX_LINES_BACK:
        node = _last_code_node(root, lines[prev_row], prev_row)
        if node is not None:
            break
        prev_row -= 1
    if node is None:
        return None
    cursor_w = _width(line_prefix)
    prev_line = lines[prev_row]

    if _opens_block(node, prev_line, root.has_error):
        opener_w = _width(_lead(prev_line))
        if cursor_w > opener_w:
            return cursor_w
        for nxt in lines[row + 1 : row + 1 + _MAX_LINES_BACK]:
            if not _is_blank(nxt):
                w = _width(_lead(nxt))
                if w > opener_w:
                    return w
                break
        return opener_w + unit_w

    found = _docstring_only_function(node, prev_row)
    if found is not None:
        func, stmt = found
        def_w = _width(_lead(lines[func.start_point[0]]))
        if cursor_w > def_w:
            return _width(_lead(lines[stmt.start_point[0]]))
    return None


_SUFFIX_SCAN_CHARS = 2000  # how far analyze_cursor looks for the brackets' closers


# --------------------------------------------------------------------------- should_stop


def should_stop(generated: str, ctx: CursorContext) -> bool:
    """Whether decoding can stop: `generated` (text so far, relative to the cursor) is complete."""
    if "\n" not in generated:
        return False
    if ctx.mode != "block":
        return _line_end(generated, ctx) >= 0
    return _block_end(generated.split("\n")[:-1], ctx) is not None


# A line-mode suggestion that opens a bracket goes on until the bracket closes (`Todo(` alone is
# useless), for at most this many more lines.
MAX_CONTINUATION_LINES = 8
_STRING_OR_COMMENT = re.compile(
    r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|#[^\n]*", re.S
)


def _bracket_depth(text: str) -> int:
    """Open minus closed brackets outside string literals and comments (roughly)."""
    code = _STRING_OR_COMMENT.sub("", text)
    return sum(map(code.count, "([{")) - sum(map(code.count, ")]}"))


def _line_end(generated: str, ctx: CursorContext) -> int:
    """Index of the newline that ends a line-mode suggestion, or -1 when it is not complete: the
    first newline after some code (or any newline when the cursor line has text) at which the
    brackets opened on the cursor line and in the suggestion are closed."""
    start = 0
    if not ctx.line_prefix:
        m = _NON_WS.search(generated)
        if m is None:
            return -1
        start = m.start()
    base = max(0, _bracket_depth(ctx.line_prefix))
    pos = generated.find("\n", start)
    extra_lines = 0
    limit = MAX_CONTINUATION_LINES if ctx.continue_brackets else 0
    while pos >= 0:
        if base + _bracket_depth(generated[:pos]) <= 0 or extra_lines >= limit:
            return pos
        extra_lines += 1
        pos = generated.find("\n", pos + 1)
    return -1


def _block_end(lines: list[str], ctx: CursorContext) -> int | None:
    """Index of the first line of `lines` (lines[0] is at the cursor) that is not part of the
    block: a non-blank line indented below ctx.block_indent_width, or the second of two blank
    lines in a row. None when all lines belong to the block."""
    prefix_ws = _ws_only(ctx.line_prefix)
    limit = ctx.block_indent_width
    blank_run = 0
    for i, line in enumerate(lines):
        if i == 0 and not prefix_ws:
            continue  # the rest of a non-empty cursor line
        if not line.strip():
            blank_run += 1
            if blank_run >= 2:
                return i
            continue
        blank_run = 0
        lead = _lead(line)
        w = _width(ctx.line_prefix + lead) if i == 0 else _width(lead)
        if w < limit:
            return i
    return None


# ----------------------------------------------------------------------- clean_suggestion


def clean_suggestion(generated: str, ctx: CursorContext) -> str | None:
    """Exactly what to insert at the cursor for the raw `generated` text, or None."""
    if not generated:
        return None
    generated = generated.replace("\r\n", "\n")
    block = ctx.mode == "block"
    prefix_ws = _ws_only(ctx.line_prefix)

    # 1. one line, or the block
    first_is_absolute = False  # lines[0] started on a new line (not at the cursor)
    if block:
        lines = generated.split("\n")
        end = _block_end(lines, ctx)
        if end is not None:
            lines = lines[:end]
        if prefix_ws:
            # The cursor line is empty: blank lines before the code are not worth inserting.
            skip = 0
            while skip < len(lines) and _is_blank(lines[skip]):
                skip += 1
            if skip:
                lines = lines[skip:]
                first_is_absolute = True
    else:
        end_i = _line_end(generated, ctx)
        lines = (generated if end_i < 0 else generated[:end_i]).split("\n")
    while lines and _is_blank(lines[-1]):
        lines.pop()
    if not lines:
        return None

    # 3. indentation (before the duplicate checks, which compare whole lines)
    lines = _reindent(lines, ctx, block, prefix_ws, first_is_absolute)

    # 2. text that duplicates what follows the cursor
    if block:
        lines = _drop_duplicate_tail(lines, ctx)
        if not lines:
            return None
    lines[-1] = _strip_suffix_overlap(lines[-1], ctx.line_suffix)

    # 4. trailing whitespace
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    result = "\n".join(lines)
    if not result.strip():
        return None
    return result


def _opens(line: str) -> bool:
    """Whether a generated line (roughly) ends with a block-opening ':'."""
    return line.split("#", 1)[0].rstrip().endswith(":")


def _step(entries: list[tuple[int, str]], unit_w: int) -> int:
    """The model's indentation step: the most common indentation increase after a line ending with
    ':' (hanging indents inside brackets do not count); the file's unit width when there is none."""
    counts: Counter[int] = Counter(
        b - a for (a, line), (b, _) in pairwise(entries) if b > a and _opens(line)
    )
    if not counts:
        return unit_w
    return max(counts.items(), key=lambda kv: (kv[1], kv[0] == unit_w, -kv[0]))[0]


def _reindent(
    lines: list[str],
    ctx: CursorContext,
    block: bool,
    prefix_ws: bool,
    first_is_absolute: bool,
) -> list[str]:
    """Re-indent lines[1:] (and the first line's own indentation) to the file's unit.

    The model's indentation is read relative to the first line: a line `rel` columns deeper than
    the first line is `rel // step` levels deeper, where `step` is the model's own indentation
    step (see `_step`); each level becomes one `indent_unit`, the remainder stays spaces (so
    alignment inside brackets survives). When the model already uses the file's unit this
    leaves the lines as they are.
    """
    unit = _unit_of(ctx)
    unit_w = _width(unit) or TAB_WIDTH
    first = lines[0]
    lead0 = _lead(first)
    rest = [(_width(_lead(x)), x) for x in lines[1:] if not _is_blank(x)]

    if prefix_ws:
        pw = _width(ctx.line_prefix)
        strip_first = pw >= ctx.block_indent_width if block else bool(ctx.line_prefix)
        if strip_first:
            # The cursor is already after the indentation: the first line is not indented again.
            # Its own indentation is read as a re-spelling of the line's indentation.
            model_w = max(pw, _width(lead0))
            first_lead_model = 0
        elif first_is_absolute:
            model_w = _width(lead0)
            first_lead_model = max(0, model_w - pw)
        else:
            first_lead_model = _width(lead0)
            model_w = pw + first_lead_model
        step = _step([(model_w, first), *rest], unit_w)
        new_lead0 = ""
        if first_lead_model:
            new_lead0 = unit * (first_lead_model // step) + " " * (first_lead_model % step)
        out = [new_lead0 + first[len(lead0) :]]
        anchor = ctx.line_prefix + new_lead0
    else:
        # Mid-line: the first line continues the cursor line; later lines are whole lines.
        model_w = _width(ctx.indent)
        step = _step([(model_w, first), *rest], unit_w)
        out = [first]
        anchor = ctx.indent
    anchor_w = _width(anchor)

    for line in lines[1:]:
        if _is_blank(line):
            out.append("")
            continue
        lead = _lead(line)
        rel = _width(lead) - model_w
        if rel >= 0:
            new = anchor + unit * (rel // step) + " " * (rel % step)
        else:
            new = _to_unit(max(0, anchor_w + (rel // step) * unit_w + rel % step), unit)
        out.append(new + line[len(lead) :])
    return out


def _norm_line(line: str) -> tuple[int, str]:
    lead = _lead(line)
    return _width(lead), line[len(lead) :].rstrip()


def _drop_duplicate_tail(lines: list[str], ctx: CursorContext) -> list[str]:
    """Drop the suggestion's last lines when they equal the lines that follow the cursor line
    (blank lines right after the cursor line are skipped; indentation compared by width)."""
    following = ctx.suffix.split("\n")[1:]
    while following and _is_blank(following[0]):
        following.pop(0)
    if not following:
        return lines
    whole = [ctx.line_prefix + lines[0], *lines[1:]]
    norm = [_norm_line(x) for x in whole]
    n = min(len(norm), len(following))
    foll = [_norm_line(x) for x in following[:n]]
    for m in range(n, 0, -1):
        if norm[-m:] == foll[:m]:
            return lines[: len(lines) - m]
    return lines


def _imbalance(s: str, chars: str) -> int:
    """How unbalanced `s` is in the bracket pairs and quotes that occur in `chars`."""
    score = 0
    for o, c in _CLOSERS:
        if o in chars or c in chars:
            score += abs(s.count(o) - s.count(c))
    for q in _QUOTES:
        if q in chars:
            score += s.count(q) % 2
    return score


def _strip_suffix_overlap(last: str, line_suffix: str) -> str:
    """Remove the end of `last` that repeats the start of `line_suffix` (e.g. a closing bracket or
    quote the editor already inserted), when removing it balances the suggestion's brackets and
    quotes, or the overlap is only punctuation, or it is the whole rest of the line."""
    sfx = line_suffix.rstrip()
    if not sfx.strip():
        return last
    body = last.rstrip()
    for k in range(min(len(body), len(sfx)), 0, -1):
        overlap = sfx[:k]
        if not body.endswith(overlap):
            continue
        cut = body[: len(body) - k]
        before, after = _imbalance(body, overlap), _imbalance(cut, overlap)
        if after < before:
            return cut
        if after > before:
            continue
        if k == len(sfx) or not any(ch.isalnum() or ch == "_" for ch in overlap):
            return cut
    return last
