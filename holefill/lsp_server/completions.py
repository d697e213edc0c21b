"""LSP results from engine drafts and from jedi: inline items, the model's completion item for
completion-only clients, and jedi's ordinary completion items."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from holefill.lsp_server.documents import Cursor, position_at, word_before

if TYPE_CHECKING:
    from holefill.completion.engine import CompletionResult

log = logging.getLogger(__name__)

JEDI_MAX_CHARS = 1_000_000  # larger files get no jedi items (parsing them takes too long)
JEDI_MAX_ITEMS = 500
MODEL_SORT_TEXT = "0"  # the model's item sorts before every jedi item ("1" + index)
LABEL_CHARS = 60

_JEDI_KINDS = {
    "module": types.CompletionItemKind.Module,
    "class": types.CompletionItemKind.Class,
    "instance": types.CompletionItemKind.Variable,
    "function": types.CompletionItemKind.Function,
    "param": types.CompletionItemKind.Variable,
    "path": types.CompletionItemKind.File,
    "keyword": types.CompletionItemKind.Keyword,
    "property": types.CompletionItemKind.Property,
    "statement": types.CompletionItemKind.Variable,
    "namespace": types.CompletionItemKind.Module,
}


def drafts(result: CompletionResult | None) -> list[str]:
    """The non-blank draft texts of a result, best first."""
    if result is None:
        return []
    return [draft.text for draft in result.items if draft.text and draft.text.strip()]


def inline_list(texts: list[str], text: str, cursor: Cursor, encoding: str | None):
    """Inline items inserted at the cursor (an empty range: nothing before it is replaced)."""
    here = position_at(text, cursor, cursor.column, encoding)
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(insert_text=t, range=types.Range(here, here)) for t in texts
        ]
    )


def model_item(
    suggestion: str, model: str, text: str, cursor: Cursor, encoding: str | None
) -> types.CompletionItem:
    """The model's suggestion as a completion item. Its edit replaces the identifier being typed
    (like jedi's items, so clients agree on where completion starts) with that identifier plus the
    suggestion; `insertText` is the suggestion alone, for clients that ignore edits."""
    word = word_before(text, cursor)
    start = position_at(text, cursor, cursor.column - len(word), encoding)
    end = position_at(text, cursor, cursor.column, encoding)
    new_text = word + suggestion
    lines = [line.strip() for line in new_text.splitlines() if line.strip()]
    label = lines[0] if lines else new_text
    if len(label) > LABEL_CHARS or len(lines) > 1:
        label = label[:LABEL_CHARS] + "…"
    return types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail=f"holefill ({model})" if model else "holefill",
        documentation=suggestion,
        sort_text=MODEL_SORT_TEXT,
        filter_text=new_text,
        preselect=True,
        insert_text=suggestion,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start, end), new_text=new_text),
    )


def jedi_items(
    text: str, cursor: Cursor, path: str | None, root: str | None, encoding: str | None
) -> list[types.CompletionItem]:
    """jedi's completions at the cursor (blocking). jedi only parses and infers: no user code
    is imported or executed, and unsafe extension modules of the project are never loaded."""
    if len(text) > JEDI_MAX_CHARS:
        return []
    try:
        import jedi

        project = jedi.Project(root or ".", smart_sys_path=False, load_unsafe_extensions=False)
        script = jedi.Script(text, path=path, project=project)
        found = script.complete(cursor.line + 1, cursor.column)
    except Exception as exc:  # jedi fails on some inputs; completion must not
        log.warning("jedi failed: %s", type(exc).__name__)
        return []
    end = position_at(text, cursor, cursor.column, encoding)
    items = []
    for index, completion in enumerate(found[:JEDI_MAX_ITEMS]):
        typed = len(completion.name) - len(completion.complete or "")
        start = position_at(text, cursor, max(cursor.column - typed, 0), encoding)
        items.append(
            types.CompletionItem(
                label=completion.name,
                kind=_JEDI_KINDS.get(completion.type, types.CompletionItemKind.Variable),
                sort_text=f"1{index:05d}",
                text_edit=types.TextEdit(types.Range(start, end), completion.name),
            )
        )
    return items


def order_items(
    items: list[types.CompletionItem], names: list[str]
) -> list[types.CompletionItem]:
    """The items in the order of `names` (the LANCE ranking of jedi's labels), with sort texts
    renumbered to match; items whose label is not in `names` follow in their own order."""
    position = {name: i for i, name in enumerate(names)}
    ordered = sorted(items, key=lambda item: position.get(item.label, len(position)))
    for index, item in enumerate(ordered):
        item.sort_text = f"1{index:05d}"
    return ordered


def completion_list(
    model: types.CompletionItem | None, items: list[Any], incomplete: bool = False
) -> types.CompletionList:
    # With a model item the list is incomplete: the suggestion depends on every typed character.
    return types.CompletionList(
        is_incomplete=incomplete or model is not None or len(items) >= JEDI_MAX_ITEMS,
        items=([model] if model else []) + items,
    )
