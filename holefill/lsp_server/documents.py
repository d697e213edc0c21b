"""Documents and positions: LSP (line, column in the negotiated code units) <-> character offsets.

LSP lines end at "\\n", "\\r\\n" or "\\r" (not at the other characters `str.splitlines` knows),
and columns count UTF-16 code units unless the client negotiated UTF-8 or UTF-32. Positions past
the end of a line or of the document are clamped, as the specification asks; a column inside a
character (between the halves of a UTF-16 surrogate pair) means after it.

Document edits (didChange) are applied here too, with the same positions, so that the text the
server holds, the engine's cache edits and every request's cursor agree with the client's buffer.
(pygls' own edits split lines like `str.splitlines`, at form feeds and U+2028 too, and clamp a
column past the end of the last line to before its last character.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

_LINE_END = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Cursor:
    offset: int  # character (code point) offset into the text
    line: int  # 0-based line
    column: int  # 0-based column in code points
    line_start: int  # offset of the first character of the line


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The document the client opened, or None (never read an unopened file from disk)."""
    return workspace.text_documents.get(unquote(uri))


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (valid JSON escapes, not Unicode) replaced by U+FFFD, one
    character for one, so offsets stay the same; tokenizers reject them."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def units(text: str, encoding: str | None) -> int:
    """Length of `text` in the client's position units."""
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _column_to_chars(line: str, column: int, encoding: str | None) -> int:
    if encoding == types.PositionEncodingKind.Utf32:
        return min(column, len(line))
    seen = 0
    for index, ch in enumerate(line):
        if seen >= column:
            return index
        code = ord(ch)
        if encoding == types.PositionEncodingKind.Utf8:
            seen += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
        else:
            seen += 2 if code > 0xFFFF else 1
    return len(line)


def _line_bounds(text: str, line: int) -> tuple[int, int] | None:
    """(start, end) offsets of a line without its line end; None when past the last line."""
    start = 0
    for _ in range(line):
        match = _LINE_END.search(text, start)
        if match is None:
            return None
        start = match.end()
    match = _LINE_END.search(text, start)
    return start, match.start() if match else len(text)


def cursor_at(text: str, position: types.Position, encoding: str | None) -> Cursor:
    """The cursor for an LSP position, clamped into the document."""
    line = max(position.line, 0)
    bounds = _line_bounds(text, line)
    if bounds is None:  # past the last line: the end of the document
        ends = list(_LINE_END.finditer(text))
        last_start = ends[-1].end() if ends else 0
        return Cursor(len(text), len(ends), len(text) - last_start, last_start)
    start, end = bounds
    column = _column_to_chars(text[start:end], max(position.character, 0), encoding)
    return Cursor(start + column, line, column, start)


def change_offsets(
    text: str, change: types.TextDocumentContentChangeEvent, encoding: str | None
) -> tuple[int, int]:
    """The character offsets a content change replaces: the whole text without a range; a range
    whose end comes before its start is taken from end to start (like VS Code's Range)."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return 0, len(text)
    start = cursor_at(text, change.range.start, encoding).offset
    end = cursor_at(text, change.range.end, encoding).offset
    return (start, end) if start <= end else (end, start)


def apply_changes(
    text: str, changes: Sequence[types.TextDocumentContentChangeEvent], encoding: str | None
) -> tuple[str, list[tuple[int, int, str]]]:
    """The text after the changes (in order, each on the text the previous one left) and the
    edits as (start, end, new text) character offsets, in the same order."""
    edits = []
    for change in changes:
        start, end = change_offsets(text, change, encoding)
        edits.append((start, end, change.text))
        text = text[:start] + change.text + text[end:]
    return text, edits


def position_at(text: str, cursor: Cursor, column: int, encoding: str | None) -> types.Position:
    """The LSP position of code-point `column` on the cursor's line."""
    prefix = text[cursor.line_start : cursor.line_start + column]
    return types.Position(cursor.line, units(prefix, encoding))


def word_before(text: str, cursor: Cursor) -> str:
    """The identifier characters right before the cursor on its line."""
    start = cursor.offset
    while start > cursor.line_start and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return text[start : cursor.offset]


def end_position(text: str, encoding: str | None) -> types.Position:
    """The LSP position of the end of the document."""
    end = cursor_at(text, types.Position(len(text) + 1, 0), encoding)
    return position_at(text, end, end.column, encoding)
