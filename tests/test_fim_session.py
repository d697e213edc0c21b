"""The fill-in-the-middle KV session: layout, exact reuse while typing on a line, PIE moves
across lines, windows, and the multi-block retarget it is built on (tiny random Qwen2 model on
the SmolLM2 tokenizer; three of its ids stand in for the FIM tokens)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from holefill.completion.decoder import Decoder
from holefill.kvcache.fim_session import FimIds, FimSession
from holefill.kvcache.session import KVSession, segment_blocks

SOURCE = "".join(
    f"def f{i}(values):\n    total = sum(values) + {i}\n    return total / len(values)\n\n\n"
    for i in range(40))


@pytest.fixture(scope="module")
def tok(embedded_tokenizer):
    return embedded_tokenizer


@pytest.fixture(scope="module")
def decoder(tok):
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=8192, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)  # make the qkv biases count
    return Decoder(model, "float32")


IDS = FimIds(prefix=1, suffix=2, middle=3)


def tokenize_of(tok):
    def tokenize(text):
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [e for _, e in enc["offset_mapping"]]

    return tokenize


def session(tok, decoder, mode="pie", prefix_chars=800, suffix_chars=300):
    return FimSession(decoder, tokenize_of(tok), capacity_tokens=1024, scratch_tokens=32,
                      ids=IDS, prefix_chars=prefix_chars, suffix_chars=suffix_chars, mode=mode)


def never(_text: str) -> bool:
    return False


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def fresh(decoder, tokens, n):
    cache = decoder.new_cache(len(tokens) + 8)
    decoder.forward(cache, torch.tensor(tokens[:n]))
    return cache


def prepared(s, doc, cursor, head=(), can_heal=never, quick=False):
    s.set_text(doc) if s.tokens else s.reset(doc, cursor)
    prompt = s.prepare(cursor, list(head), can_heal, quick=quick)
    assert s.sync(prompt.visible)
    return prompt


def test_layout_puts_the_cursor_line_after_middle(tok, decoder):
    s = session(tok, decoder)
    cursor = SOURCE.index("sum(values) + 3") + 4  # inside "sum(" on f3's second line
    line = SOURCE.rfind("\n", 0, cursor) + 1
    prompt = prepared(s, SOURCE, cursor, head=[7, 8])
    tokens = s.tokens
    suf = tokens.index(IDS.suffix)
    mid = tokens.index(IDS.middle)
    assert tokens[:3] == [7, 8, IDS.prefix]
    assert tok.decode(tokens[3:suf]).endswith("def f3(values):\n")  # prefix: up to the line
    assert tok.decode(tokens[suf + 1:mid]).startswith("values) + 3\n    return")  # from cursor
    assert tok.decode(tokens[mid + 1:]) == SOURCE[line:cursor]  # the line before the cursor
    assert prompt.visible == len(tokens) - 1 and prompt.heal == ""
    assert s.encoded == len(tokens) - 1  # everything but the token the completion feeds


def test_heal_backs_off_the_last_token_of_the_line(tok, decoder):
    s = session(tok, decoder)
    cursor = SOURCE.index("total = sum(values) + 3") + len("total = su")
    prompt = prepared(s, SOURCE, cursor, can_heal=lambda text: True)
    mid = s.tokens.index(IDS.middle)
    line = SOURCE.rfind("\n", 0, cursor) + 1
    assert prompt.heal and SOURCE[line:cursor].endswith(prompt.heal)
    assert tok.decode(s.tokens[mid + 1:]) + prompt.heal == SOURCE[line:cursor]


def test_typing_on_a_line_reuses_the_cache_exactly(tok, decoder):
    s = session(tok, decoder)
    at = SOURCE.index("    return total / len(values)\n\n\ndef f5") + 4
    doc = SOURCE[:at] + SOURCE[at:].replace("return total / len(values)", "", 1)
    prepared(s, doc, at)
    typed = "return tot"
    for i in range(1, len(typed) + 1):  # one character at a time, at the cursor
        now = doc[:at] + typed[:i] + doc[at:]
        prompt = prepared(s, now, at + i)
        assert s.last_sync_tokens <= 2  # only the line's last tokens are new
        assert s.drift == 0.0  # nothing moved: no PIE approximation involved
    ref = fresh(decoder, s.tokens, prompt.visible)
    n = prompt.visible
    assert (s.cache.k[:, :, :n] - ref.k[:, :, :n]).abs().max() < 1e-4  # all layers exact
    assert (s.cache.v[:, :, :n] - ref.v[:, :, :n]).abs().max() < 1e-4


def test_moving_to_the_next_line_moves_the_suffix_with_pie(tok, decoder):
    from holefill.completion.fim import suffix_window

    s = session(tok, decoder)
    for i in range(5, 30):  # two lines whose suffix windows end at the same aligned place
        first = SOURCE.index(f"    total = sum(values) + {i}\n")
        second = SOURCE.index("    return", first) + 4
        if suffix_window(SOURCE, first + 4, 300) == suffix_window(SOURCE, second, 300):
            break
    prepared(s, SOURCE, first + 4)
    before = s.encoded
    prompt = prepared(s, SOURCE, second)
    moved_line = encode(tok, SOURCE[SOURCE.rfind("\n", 0, first) + 1:SOURCE.index("\n", first)
                                    + 1])
    assert s.last_sync_tokens <= len(moved_line) + 4  # the line that moved, not the suffix
    assert 0 < s.drift < 0.1 and s.encoded == prompt.visible and before
    ref = fresh(decoder, s.tokens, prompt.visible)
    n = prompt.visible
    # layer 0 depends only on token and position: exact after the move (PIE's rotation)
    assert (s.cache.k[0, :, :n] - ref.k[0, :, :n]).abs().max() < 1e-4
    assert (s.cache.v[0, :, :n] - ref.v[0, :, :n]).abs().max() < 1e-5
    assert s.refresh()  # idle time: the later layers become exact again
    assert (s.cache.k[:, :, :n] - ref.k[:, :, :n]).abs().max() < 1e-4


def test_a_moved_window_start_encodes_afresh(tok, decoder):
    s = session(tok, decoder, prefix_chars=400)
    prepared(s, SOURCE, SOURCE.index("def f5"))
    far = SOURCE.index("def f30")
    prompt = prepared(s, SOURCE, far)
    assert s.last_sync_tokens == prompt.visible  # everything encoded again, nothing stale
    assert s.drift == 0.0


def test_quick_first_windows_are_small_and_stay_while_partial(tok, decoder):
    s = session(tok, decoder, prefix_chars=2000, suffix_chars=800)
    cursor = SOURCE.index("def f20")
    quick = prepared(s, SOURCE, cursor, quick=True)
    assert s.partial and quick.visible < 300
    full = session(tok, decoder, prefix_chars=2000, suffix_chars=800)
    assert prepared(full, SOURCE, cursor).visible > quick.visible + 200
    again = prepared(s, SOURCE, cursor + 4, quick=True)  # typing on: still the small windows
    assert s.partial and again.visible < 300 and s.last_sync_tokens <= 3


@pytest.mark.parametrize("mode", ["prefix", "full"])
def test_exact_modes_equal_a_fresh_encode_after_a_line_change(tok, decoder, mode):
    s = session(tok, decoder, mode=mode)
    prepared(s, SOURCE, SOURCE.index("    total = sum(values) + 9") + 4)
    prompt = prepared(s, SOURCE, SOURCE.index("    return", SOURCE.index("+ 9")) + 4)
    ref = fresh(decoder, s.tokens, prompt.visible)
    n = prompt.visible
    assert (s.cache.k[:, :, :n] - ref.k[:, :, :n]).abs().max() < 1e-4


def test_edits_and_text_changes_keep_the_cursor(tok, decoder):
    s = session(tok, decoder)
    s.reset(SOURCE, 100)
    s.apply_edit(10, 10, "xyz")
    assert s.doc == SOURCE[:10] + "xyz" + SOURCE[10:] and s.cursor == 103
    s.apply_edit(90, 110, "")  # the cursor was inside the deleted text
    assert s.cursor == 90
    with pytest.raises(ValueError):
        s.apply_edit(0, len(s.doc) + 1, "")


def test_segment_blocks_keep_each_segments_common_ends():
    old = [[1, 2], [3], [10, 11, 12, 13], [4], [20, 21, 22]]
    new = [[1, 2], [3], [10, 11, 99, 13], [4], [21, 22]]
    assert segment_blocks(old, new) == [(0, 0, 2), (2, 2, 1), (3, 3, 2), (6, 6, 1), (7, 7, 1),
                                        (9, 8, 2)]


def test_retarget_keeps_layer_zero_exact_for_any_rearrangement(decoder):
    """Random insertions and deletions in random segments, text moved between segments: after
    retarget + sync every cached token sits at its position (layer 0 equals a fresh encode),
    whatever was reused."""
    rng = random.Random(0)
    vocab = decoder.vocab_size
    for _ in range(40):
        s = KVSession(decoder, lambda text: ([], []), capacity_tokens=400, scratch_tokens=8)
        old_segs = [[rng.randrange(vocab) for _ in range(rng.randrange(0, 40))]
                    for _ in range(5)]
        old = [t for seg in old_segs for t in seg]
        s.tokens = old
        s.sync(len(old))
        segs = [list(seg) for seg in old_segs]
        for _ in range(rng.randrange(1, 4)):
            seg = segs[rng.randrange(5)]
            p, n = rng.randrange(len(seg) + 1), rng.randrange(1, 12)
            op = rng.randrange(3)
            if op == 0:
                seg[p:p] = [rng.randrange(vocab) for _ in range(n)]
            elif op == 1:
                del seg[p:p + n]
            else:  # the end of a segment moves to the start of another
                moved = seg[p:]
                del seg[p:]
                segs[rng.randrange(5)][:0] = moved
        new = [t for seg in segs for t in seg]
        s.retarget(new, segment_blocks(old_segs, segs))
        s.sync(len(new))
        ref = fresh(decoder, new, len(new))
        assert (s.cache.k[0, :, :len(new)] - ref.k[0, :, :len(new)]).abs().max() < 1e-4
        assert (s.cache.v[0, :, :len(new)] - ref.v[0, :, :len(new)]).abs().max() < 1e-5
