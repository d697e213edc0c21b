"""A KV session for fill-in-the-middle models: the cache holds the FIM prompt of the last cursor.

    [head] PRE [window up to the cursor's line] SUF [window from the cursor] MID [the line up to
    the cursor]      then, per request, the generated middle in scratch slots after it.

Typing on a line appends after MID: the cached prompt is reused as it is, exactly. Moving to
another line is an edit in the middle of the cached sequence (the prefix window gains or loses
lines before SUF): the new tokens are encoded and the suffix window's cached keys move by the
shift with PIE's rotation (KVSession.retarget, with the runs each segment keeps), instead of
re-encoding the suffix. The suffix
keeps values computed before the edit (PIE's approximation); the drift counter sends the session
to an idle-time refresh.

Both windows have ends that stay put while the user types (aligned starts and ends), and the
first request on a fresh document uses small windows near the cursor (a fast first suggestion);
idle time replaces the session with a fully encoded one (CompletionEngine.maintain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from holefill.completion.fim import suffix_window
from holefill.kvcache.session import KVSession, Tokenize, segment_blocks
from holefill.kvcache.window import window_start

# First requests on a fresh document (until idle time widens the windows): ~170 tokens before
# the cursor and ~60 after it, about 0.6 s of prefill for a 0.5B model on our 2-core CPU (the
# first suggestion in under a second: bench latency, first_suggestion_*).
QUICK_PREFIX_CHARS = 600
QUICK_SUFFIX_CHARS = 200


@dataclass
class FimIds:
    prefix: int
    suffix: int
    middle: int


@dataclass
class FimPrompt:
    visible: int  # cached prompt tokens: all but the last, which the completion feeds first
    heal: str  # characters between the prompt's last prefix token and the cursor
    prefix_tail: list[int]  # the last prefix tokens (n-gram context)


class FimSession(KVSession):
    def __init__(self, decoder, tokenize: Tokenize, capacity_tokens: int, scratch_tokens: int,
                 ids: FimIds, prefix_chars: int, suffix_chars: int, mode: str = "pie",
                 pie_ok: bool = True) -> None:
        super().__init__(decoder, tokenize, capacity_tokens, scratch_tokens, mode, pie_ok)
        self.ids = ids
        self.prefix_chars = prefix_chars
        self.suffix_chars = suffix_chars
        self.head: list[int] = []
        self.window_start = 0  # document offset where the cached prefix window starts
        self.segments: list[list[int]] = []  # the cached layout's pieces (segment_blocks)

    # -- document text: the layout follows at the next prepare ------------------------------

    def reset(self, doc: str, cursor: int, quick: bool = False) -> None:
        self.doc = doc
        self.cursor, self.partial = cursor, quick
        self.tokens, self.ends, self.segments = [], [], []
        self.encoded, self.dirty = 0, []
        self.edited_since_refresh = self.refreshed_upto = 0

    def set_text(self, doc: str) -> list:
        self.doc = doc
        return []

    def apply_edit(self, start: int, end: int, text: str) -> None:
        if not 0 <= start <= end <= len(self.doc):
            raise ValueError(f"edit [{start}, {end}) outside a document of {len(self.doc)} chars")
        self.doc = self.doc[:start] + text + self.doc[end:]
        if self.cursor >= end:
            self.cursor += len(text) - (end - start)
        elif self.cursor > start:
            self.cursor = start + len(text)

    def set_header(self, header: str) -> None:  # the head comes with each prepare
        return None

    def covers(self, cursor: int) -> bool:
        return 0 <= cursor <= len(self.doc)

    # -- the FIM prompt ---------------------------------------------------------------------

    def layout(self, cursor: int, head: list[int], can_heal: Callable[[str], bool],
               quick: bool = False) -> tuple[list[list[int]], str, list[int], int]:
        """(segments of the token sequence, heal characters, document tokens before the cursor,
        window start) for a cursor. The prefix ends at the start of the cursor's line; the line's text
        before the cursor comes after MID, as the start of the middle (llama.vim lays out its
        infill prompts the same way): typing on a line only appends after MID, and the
        prefix and suffix windows change only when the cursor changes lines."""
        doc = self.doc
        pchars = min(self.prefix_chars, QUICK_PREFIX_CHARS) if quick else self.prefix_chars
        schars = min(self.suffix_chars, QUICK_SUFFIX_CHARS) if quick else self.suffix_chars
        budget = self.capacity_tokens - len(head) - 3
        for _ in range(12):
            start = window_start(doc, cursor, pchars)
            line = max(start, doc.rfind("\n", 0, cursor) + 1)
            end = suffix_window(doc, cursor, schars, align=256 if quick else 512)
            p_ids, _ = self.tokenize(doc[start:line])
            m_ids, m_ends = self.tokenize(doc[line:cursor])
            s_ids, _ = self.tokenize(doc[cursor:end])
            total = len(p_ids) + len(m_ids) + len(s_ids)
            if total <= budget or (pchars <= 64 and schars <= 64):
                break
            # dense text: shrink the window with more tokens than its share (suffix <= 1/4)
            if len(s_ids) > budget // 4:
                schars //= 2
            else:
                pchars //= 2
        room = budget - len(m_ids)
        if len(p_ids) + len(s_ids) > room:  # still too long (one huge line): cut token-wise
            s_ids = s_ids[:max(0, room // 4)]
            p_ids = p_ids[len(p_ids) - max(0, room - len(s_ids)):]
        heal = ""
        if m_ids:
            last_start = line + (m_ends[-2] if len(m_ends) > 1 else 0)
            candidate = doc[last_start:cursor]
            if candidate and can_heal(candidate):
                heal, m_ids = candidate, m_ids[:-1]
        segments = [head, [self.ids.prefix], p_ids, [self.ids.suffix], s_ids, [self.ids.middle],
                    m_ids]
        return segments, heal, p_ids + m_ids, start

    def prepare(self, cursor: int, head: list[int], can_heal: Callable[[str], bool],
                quick: bool = False) -> FimPrompt:
        """Lay out the FIM prompt for `cursor` and bring the cache to it (encoding happens in
        `sync`). The prompt's last token is not cached: the completion feeds it first, as the
        document-order session does. `quick`: small windows near the cursor (a fresh
        document's first request)."""
        segments, heal, doc_ids, start = self.layout(cursor, head, can_heal, quick)
        tokens = [t for seg in segments for t in seg]
        old_segments, self.segments = self.segments, segments
        # A moved window start changes what every cached token saw before it, far more than
        # an edit does: encode afresh (as the document-order session does for a new window).
        moved = start != self.window_start
        self.cursor, self.head, self.partial, self.window_start = cursor, head, quick, start
        if self.mode == "full" or not self.tokens or moved:
            self.tokens, self.ends, self.encoded, self.dirty = tokens, [], 0, []
            self.refreshed_upto = self.edited_since_refresh = 0
        elif self.mode == "prefix":  # keep the common prefix only (llama.cpp's prompt cache)
            common = 0
            limit = min(self.encoded, len(tokens), self.dirty[0][0] if self.dirty else
                        self.encoded)
            while common < limit and self.tokens[common] == tokens[common]:
                common += 1
            self.tokens, self.encoded, self.dirty = tokens, common, []
            self.refreshed_upto = min(self.refreshed_upto, common)
        else:
            self.retarget(tokens, blocks=segment_blocks(old_segments, segments))
        return FimPrompt(visible=len(tokens) - 1, heal=heal, prefix_tail=doc_ids[-8:])
