"""The window of a document a KV session encodes (no torch here: the CLI's `context` uses it)."""

from __future__ import annotations

WINDOW_ALIGN_CHARS = 4096


def window_start(doc: str, cursor: int, max_chars: int) -> int:
    """Where a window of at most `max_chars` before `cursor` starts: at a line start inside an
    aligned block, so that the start does not move on every keystroke (a moving start would
    defeat the cache)."""
    start = max(0, cursor - max_chars)
    if start == 0:
        return 0
    # Round up to a multiple of `align`: the start then stays put for `align` characters of
    # typing and the window keeps at least max_chars - align characters before the cursor.
    align = max(1, min(WINDOW_ALIGN_CHARS, max_chars // 2))
    start = -(-start // align) * align
    newline = doc.find("\n", start, cursor)
    return newline + 1 if newline >= 0 else start


def chars_before_cursor(capacity_tokens: int) -> int:
    """Characters of a session's window before the cursor. Code averages ~3.5-4 characters a
    token: about two thirds of the window lie before the cursor, the rest after it (edits above
    and below the cursor both stay cached)."""
    return capacity_tokens * 8 // 3


def window_chars(max_prompt_tokens: int) -> tuple[int, int]:
    """(session capacity in tokens, characters of the window before the cursor)."""
    capacity = max_prompt_tokens + max_prompt_tokens // 2
    return capacity, chars_before_cursor(capacity)


def prompt_window(text: str, offset: int, max_prompt_tokens: int) -> str:
    """The file text before the cursor that a completion sees."""
    return text[window_start(text, offset, window_chars(max_prompt_tokens)[1]):offset]
