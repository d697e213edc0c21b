"""LM likelihood of merge candidates (holefill.merge.lmscore)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from holefill.completion.model import embedded_model_dir
from holefill.merge.lmscore import LMScorer

BEFORE = "import os\n\n\ndef load(path):\n    data = open(path).read()\n"
AFTER = "\n\ndef save(path, data):\n    open(path, 'w').write(data)\n"


@pytest.fixture(scope="module")
def tokenizer():
    path, _ = embedded_model_dir(download=False, name="smollm2-135m")
    return AutoTokenizer.from_pretrained(str(path))


def test_shared_prefix_batch_matches_one_forward_per_candidate(tokenizer) -> None:
    """Tensor logic on a tiny random model: the batched, prefix-shared scores equal the log-probs
    of a plain forward over before + candidate + after, for candidates of different lengths."""
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    scorer = LMScorer(model, tokenizer, before_tokens=40, after_tokens=12)
    cands = ["    return data\n", "    return os.path.join(data, 'x')\n    print(data)\n", ""]
    scores = scorer.score(BEFORE, cands, AFTER)
    assert scores is not None and len(scores) == 3
    pre = [tokenizer.bos_token_id] + scorer._encode(BEFORE)[-40:]
    post = scorer._encode(AFTER)[:12]
    for cand, sc in zip(cands, scores, strict=True):
        body = scorer._encode(cand)
        ids = torch.tensor([pre + body + post])
        with torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        lps = [float(logp[len(pre) + j - 1, t]) for j, t in enumerate(body + post)]
        assert sc.n_tokens == len(body)
        assert sc.cand_lp == pytest.approx(sum(lps[: len(body)]), abs=1e-3)
        assert sc.after_lp == pytest.approx(sum(lps[len(body) :]), abs=1e-3)
    assert scores[2].cand_lp == 0.0 and scores[2].n_tokens == 0


def test_too_long_candidate_is_not_scored(tokenizer) -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1,
    )  # fmt: skip
    scorer = LMScorer(LlamaForCausalLM(cfg).eval(), tokenizer, max_candidate_tokens=8)
    assert scorer.score(BEFORE, ["x = 1\n", "y = [" + ", ".join("abcdefgh") + "]\n"], AFTER) is None


@pytest.mark.slow
def test_embedded_model_prefers_the_coherent_candidate() -> None:
    scorer = LMScorer.load()
    good, broken = scorer.score(
        BEFORE, ["    return data\n", "    return data data ) (\n"], AFTER
    ) or (None, None)
    assert good is not None and broken is not None
    assert good.total > broken.total + 5.0
