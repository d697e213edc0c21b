"""The attribute-name constraint after `recv.`, on the embedded model's real tokenizer (slow:
resolves the embedded model's files)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.completion import healing
from holefill.completion.constrain import NameConstraint

pytestmark = pytest.mark.slow

NAMES = ["add_item", "add_items", "remove_item", "total", "lines", "_price"]


@pytest.fixture(scope="module")
def vocab():
    from transformers import AutoTokenizer

    from holefill.completion.model import embedded_model_dir

    path, _ = embedded_model_dir(name="smollm2-135m")
    return healing.TokenTexts(AutoTokenizer.from_pretrained(str(path)))


def spell_greedy(c: NameConstraint, vocab, pick, steps: int = 12) -> str:
    """Follow the constraint, choosing among allowed tokens with `pick`, until it lets go."""
    text = ""
    for _ in range(steps):
        allowed = c.allowed(text)
        if allowed is None:
            break
        text += vocab.text(int(pick(allowed.tolist())))
    return text


def name_of(text: str, lead: str = "", stem: str = "") -> str:
    name = stem + text[len(lead):]
    end = 0
    while end < len(name) and (name[end].isalnum() or name[end] == "_"):
        end += 1
    return name[:end]


def test_every_allowed_token_keeps_a_candidate_reachable(vocab):
    c = NameConstraint(NAMES, vocab)
    allowed = c.allowed("")
    assert allowed is not None and len(allowed) > 0
    for i in allowed.tolist():
        piece = vocab.text(i)
        assert any(n.startswith(piece) or piece.startswith(n) for n in NAMES), piece
    # tokens that would spell a name that is not a candidate are excluded
    bad = [i for i in range(len(vocab.texts)) if vocab.text(i) in ("append", "add_", "tot")]
    allowed_set = set(allowed.tolist())
    assert vocab.texts.index("append") not in allowed_set
    assert any(i in allowed_set for i in bad if vocab.text(i) in ("add_", "tot"))


def test_the_name_may_only_end_on_a_whole_candidate(vocab):
    c = NameConstraint(NAMES, vocab)
    after_add = c.allowed("add_item")
    assert after_add is not None
    texts = {vocab.text(i) for i in after_add.tolist()}
    assert "(" in texts and "s" in texts  # end here, or go on to add_items
    partial = {vocab.text(i) for i in c.allowed("add_it").tolist()}
    assert "(" not in partial
    assert c.allowed("add_item(") is None and c.done("add_item(")  # the rest is free


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_path_through_the_constraint_spells_a_candidate(vocab, rnd):
    c = NameConstraint(NAMES, vocab)
    text = spell_greedy(c, vocab, rnd.choice, steps=16)
    assert name_of(text) in NAMES


@pytest.mark.parametrize("typed, heal", [("", "."), ("ad", ".ad"), ("ad", "ad"), ("rem", "m"),
                                         ("to", "")])
def test_healing_lead_and_typed_stem(vocab, typed, heal):
    names = [n for n in NAMES if n.startswith(typed)]
    c = NameConstraint.at_cursor(names, vocab, typed, heal)
    assert c.lead + typed == heal or (c.stem + heal == typed)
    for seed in range(5):
        import random

        rnd = random.Random(seed)
        text = spell_greedy(c, vocab, rnd.choice, steps=16)
        assert text.startswith(heal[: len(text)]) or text.startswith(heal)
        assert name_of(text, c.lead, c.stem) in names


def test_no_candidate_means_no_constraint(vocab):
    assert NameConstraint([], vocab).allowed("") is None
    assert NameConstraint(["total"], vocab, stem="x").allowed("") is None
    assert NameConstraint(["not an identifier"], vocab).allowed("") is None


def test_bias_is_the_log_prior_mass_each_token_keeps_reachable(vocab):
    import math

    prior = {"remove_item": math.log(8.0), "add_item": math.log(2.0), "add_items": 0.0}
    c = NameConstraint(NAMES, vocab, prior=prior, weight=0.5)
    allowed = c.allowed("")
    bias = dict(zip(allowed.tolist(), c.bias("", allowed).tolist(), strict=True))
    top = 8.0  # masses are relative to the largest prior

    def at(piece: str) -> float:
        return bias[vocab.texts.index(piece)]

    assert at("remove") == pytest.approx(0.5 * math.log(8.0 / top))
    assert at("add") == pytest.approx(0.5 * math.log((2.0 + 1.0) / top))  # add_item + add_items
    assert at("tot") == pytest.approx(0.5 * math.log(1.0 / top))  # no prior: count 0 -> 1
    # where only one name is reachable the bias is the same for every token: it only acts
    # where candidates part ways
    after = c.allowed("remove_")
    assert len(set(c.bias("remove_", after).tolist())) == 1
    # after add_item: ending the name keeps add_item's mass, going on keeps add_items'
    end = c.allowed("add_item")
    endb = dict(zip(end.tolist(), c.bias("add_item", end).tolist(), strict=True))
    assert endb[vocab.texts.index("(")] == pytest.approx(0.5 * math.log(2.0 / top))
    assert endb[vocab.texts.index("s")] == pytest.approx(0.5 * math.log(1.0 / top))


def test_without_model_the_biased_walk_spells_the_prior_favourite(vocab):
    import math

    for favourite in ("lines", "add_items", "_price"):
        prior = {n: (math.log(50.0) if n == favourite else 0.0) for n in NAMES}
        c = NameConstraint.at_cursor(NAMES, vocab, "", ".", prior=prior, weight=1.0)
        text = ""
        for _ in range(16):
            allowed = c.allowed(text)
            if allowed is None:
                break
            bias = c.bias(text, allowed)
            # highest bias; among equals the longest token (a model-free tie-break)
            best = max(zip(bias.tolist(), allowed.tolist(), strict=True),
                       key=lambda p: (p[0], len(vocab.text(p[1]))))[1]
            text += vocab.text(best)
        assert name_of(text, c.lead, c.stem) == favourite


def test_no_prior_no_bias_and_bad_weights(vocab):
    c = NameConstraint(NAMES, vocab)
    assert c.bias("", c.allowed("")) is None
    assert NameConstraint(NAMES, vocab, prior={"total": 3.0}, weight=0.0).bias(
        "", c.allowed("")) is None
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="prior weight"):
            NameConstraint(NAMES, vocab, prior={}, weight=bad)

