"""Constrained decoding of the attribute name after `recv.` (LANCE, RESEARCH §5.4).

While the model spells the name after the dot, only tokens that keep the text on a path of the
candidates' prefix trie are allowed; once a whole candidate is spelled, the name may end (the
next character is not an identifier character) and the rest of the line is free.

The trie is over the names' characters and each vocabulary token is walked through it, which is
the prefix trie of *every* token sequence that spells a candidate, not only the tokenizer's
canonical one: after token healing the first generated token often starts with the backed-off
"." or with letters already typed (".append", "end("), and a greedy model may pick a
non-canonical split. The characters before the name that healing backed off (`lead`) must be
re-spelled first, exactly as the healing constraint demands.

A prior over the names (api.rank_scores: what the workspace and the buffer say) can bias the
choice: each allowed token gets `weight * log(prior mass of the names still reachable after
it)` added to its logit, a product of the model and the prior over the names (the same mass at
every token of one name's path, so the bias only acts where candidates part ways). At weight 1
the model's distribution over the names is multiplied by the prior's, itself a fitted
log-linear model of the evidence (BENCHMARKS.md "api").
"""

from __future__ import annotations

import math

import torch

from holefill.completion.healing import TokenTexts


def _ident(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Node:
    __slots__ = ("children", "end", "mass", "end_mass")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.end = False
        self.mass = 0.0  # prior mass of the names in this subtree (this node's name included)
        self.end_mass = 0.0  # prior mass of the name that ends here


class NameConstraint:
    """Allowed next tokens while the name after the dot is being generated.

    `lead`: characters the generated text must start with before the name (backed off by
    token healing, e.g. "."); `stem`: name characters already in the prompt (typed before the
    cursor and not backed off). `allowed(generated)` takes the text generated so far.
    `prior`: unnormalised log prior per name (missing names: 0), used with `weight` > 0 by
    `bias`."""

    def __init__(self, names: list[str], vocab: TokenTexts, lead: str = "", stem: str = "",
                 prior: dict[str, float] | None = None, weight: float = 0.0) -> None:
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"the prior weight must be a finite number >= 0, not {weight}")
        self.vocab = vocab
        self.lead = lead
        self.stem = stem
        self.weight = weight if prior is not None else 0.0
        self.root = _Node()
        prior = prior or {}
        top = max(prior.values(), default=0.0)
        for name in dict.fromkeys(names):
            if name and all(_ident(c) for c in name) and name.startswith(stem):
                mass = math.exp(prior.get(name, 0.0) - top)  # shifted: no overflow
                node = self.root
                node.mass += mass
                for ch in name:
                    node = node.children.setdefault(ch, _Node())
                    node.mass += mass
                node.end = True
                node.end_mass = mass
        self.empty = not self.root.children
        self._terminators: torch.Tensor | None = None

    @classmethod
    def at_cursor(cls, names: list[str], vocab: TokenTexts, typed: str, heal: str,
                  prior: dict[str, float] | None = None, weight: float = 0.0
                  ) -> NameConstraint:
        """For a cursor after `recv.` + `typed`, where healing backed off `heal` (a suffix of
        the text before the cursor, "" when healing is off)."""
        if len(heal) >= len(typed):
            return cls(names, vocab, lead=heal[: len(heal) - len(typed)], stem="",
                       prior=prior, weight=weight)
        return cls(names, vocab, lead="", stem=typed[: len(typed) - len(heal)], prior=prior,
                   weight=weight)

    def _walk(self, text: str) -> _Node | None:
        node = self.root
        for ch in text:
            node = node.children.get(ch)
            if node is None:
                return None
        return node

    def _name_of(self, text: str) -> tuple[str, bool]:
        """(the identifier spelled so far after the lead, whether something else followed it:
        the name ended) for generated `text` longer than the lead."""
        name = self.stem + text[len(self.lead):]
        i = 0
        while i < len(name) and _ident(name[i]):
            i += 1
        return name[:i], i < len(name)

    def done(self, generated: str) -> bool:
        """The name is complete and ended (or the text left the constraint): decode freely."""
        return len(generated) > len(self.lead) and self._name_of(generated)[1]

    def valid(self, text: str) -> bool:
        """Can `text` (generated so far) still become lead + candidate (+ anything after it)?"""
        if len(text) <= len(self.lead):
            return self.lead.startswith(text)
        if not text.startswith(self.lead):
            return False
        name, ended = self._name_of(text)
        node = self._walk(name)
        if node is None:
            return False
        return node.end if ended else True

    def allowed(self, generated: str) -> torch.Tensor | None:
        """Ids of the tokens allowed next, or None when the constraint no longer applies (the
        name has ended) or cannot apply (no candidate, no token fits)."""
        if self.empty or self.done(generated):
            return None
        texts = self.vocab.texts
        if len(generated) < len(self.lead):
            firsts = {self.lead[len(generated)]}
            node = None
        else:
            node = self._walk(self.stem + generated[len(self.lead):])
            if node is None:
                return None
            firsts = set(node.children)
        ids = [i for ch in firsts for i in self.vocab._by_first.get(ch, ())
               if self.valid(generated + texts[i])]
        if node is not None and node.end:  # a whole name: it may end here
            ids.extend(self.terminators().tolist())
        if not ids:
            return None
        return torch.tensor(sorted(set(ids)), dtype=torch.long)

    def _mass_after(self, text: str) -> float:
        """Prior mass of the candidates `text` (generated, valid) can still become."""
        if len(text) <= len(self.lead):
            return self.root.mass
        name, ended = self._name_of(text)
        node = self._walk(name)
        if node is None:
            return 0.0
        return node.end_mass if ended else node.mass

    def bias(self, generated: str, ids: torch.Tensor) -> torch.Tensor | None:
        """What to add to the logits of the allowed `ids` after `generated`: weight * log of
        the prior mass each token keeps reachable; None without a prior (weight 0)."""
        if self.weight == 0.0 or self.empty:
            return None
        texts = self.vocab.texts
        masses = [self._mass_after(generated + texts[i]) for i in ids.tolist()]
        return torch.tensor([self.weight * math.log(m) if m > 0 else -math.inf for m in masses])

    def terminators(self) -> torch.Tensor:
        """Tokens that start with a non-identifier character (they end the name)."""
        if self._terminators is None:
            ids = [i for ch, group in self.vocab._by_first.items() if not _ident(ch)
                   for i in group]
            self._terminators = torch.tensor(sorted(ids), dtype=torch.long)
        return self._terminators
