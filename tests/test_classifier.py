"""Merge-pattern classifier (holefill.merge.classifier) and its shipped weights."""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from holefill.merge.classifier import (
    CAND_FEATURES,
    CLASSES,
    HUNK_FEATURES,
    MergeClassifier,
    featurize,
    load_default,
    make_example,
    train,
)
from holefill.merge.patterns import ALL_PATTERNS, Hunk, normalize

DATA = Path(__file__).resolve().parents[2] / "shared/data/merge/conflicts_train.jsonl"


def test_shipped_weights_are_small_and_consistent() -> None:
    path = resources.files("holefill.merge").joinpath("classifier_weights.json")
    raw = path.read_bytes()
    assert len(raw) < 1_000_000
    weights = json.loads(raw)
    assert weights["classes"] == list(CLASSES)
    assert weights["hunk_features"] == list(HUNK_FEATURES)
    assert weights["cand_features"] == list(CAND_FEATURES)
    clf = load_default()
    assert 0.5 <= clf.threshold < 1.0
    meta = clf.meta
    assert len(meta["dev_repos"]) >= 2
    assert not set(meta["dev_repos"]) & set(meta["train_repos"])  # split by repository


def test_featurize_masks_unavailable_patterns() -> None:
    clean = featurize(Hunk("x = g(a, c)\n", "x = g(a, b)\n", "x = h(a, b)\n"))
    assert clean.hunk.shape == (len(HUNK_FEATURES),)
    assert clean.cand.shape == (len(ALL_PATTERNS), len(CAND_FEATURES))
    assert clean.mask[CLASSES.index("TOKEN_MERGE")] and clean.mask[CLASSES.index("NONE")]
    assert not clean.mask[CLASSES.index("TOKEN_OURS")]
    conflict = featurize(Hunk("x = 1\n", "x = 0\n", "x = 2\n"))
    assert not conflict.mask[CLASSES.index("TOKEN_MERGE")]
    assert conflict.mask[CLASSES.index("TOKEN_OURS")]
    assert np.isfinite(conflict.hunk).all() and np.isfinite(conflict.cand).all()


def test_rank_is_sorted_grouped_and_a_distribution() -> None:
    clf = load_default()
    feats = featurize(Hunk("import os, re\n", "import os\n", "import os, sys\n"))
    ranked = clf.rank(feats)
    confs = [r.confidence for r in ranked]
    assert confs == sorted(confs, reverse=True)
    assert 0.0 < sum(confs) <= 1.0 + 1e-9
    keys = [normalize(r.text) for r in ranked]
    assert len(keys) == len(set(keys))
    assert all(feats.texts[r.pattern] == r.text for r in ranked)
    p = clf.probabilities(feats)
    assert p[~feats.mask].sum() == 0.0 and abs(p.sum() - 1.0) < 1e-9


def _toy_examples() -> list:
    rng = random.Random(0)
    recs = []
    for i in range(40):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        base, ours, theirs = f"x = f({i})\n", f"x = f({i}, {a})\n", f"x = g({i})\n"
        resolution = [ours, theirs, f"x = g({i}, {a})\n"][i % 3]
        recs.append(
            {"base": base, "ours": ours, "theirs": theirs, "resolution": resolution,
             "repo": f"r{i % 2}", "label": "OTHER"}
        )  # fmt: skip
        if b > 7:
            recs[-1]["resolution"] = f"x = h({b})\n"  # not expressible -> NONE
    return [make_example(r) for r in recs]


def test_training_is_deterministic_and_loadable() -> None:
    examples = _toy_examples()
    assert any(e.target[CLASSES.index("NONE")] for e in examples)
    w1 = train(examples, epochs=40)
    w2 = train(examples, epochs=40)
    assert json.dumps(w1) == json.dumps(w2)
    clf = MergeClassifier({**w1, "threshold": 0.5})
    ranked = clf.rank(examples[2].feats)
    assert ranked and ranked[0].confidence > 0
    with pytest.raises(ValueError):
        MergeClassifier({**w1, "classes": ["OURS"]})


def test_dev_repositories_beat_always_ours_and_are_precise() -> None:
    """A sample of the held-out repositories: the pipeline's numbers stay in their range."""
    if not DATA.exists():
        pytest.skip("shared merge data not available")
    clf = load_default()
    dev = set(clf.meta["dev_repos"])
    with DATA.open(encoding="utf-8") as f:
        recs = [r for r in map(json.loads, f) if r["repo"] in dev]
    recs = random.Random(1).sample(recs, 150)
    top1 = ours = resolved = correct = 0
    for rec in recs:
        ex = make_example(rec)
        ranked = clf.rank(ex.feats)
        want = normalize(rec["resolution"])
        ok = normalize(ranked[0].text) == want
        top1 += ok
        ours += normalize(rec["ours"]) == want
        if ranked[0].confidence >= clf.threshold:
            resolved += 1
            correct += ok
    assert top1 > ours + 20  # well above always-ours
    assert resolved >= 20 and correct / resolved >= 0.8
